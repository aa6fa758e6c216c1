"""The SQLite side of the trigger API's idempotency keys and of GET /metrics' scans, for
`SQLiteStore` (engine/service/sqlite_store.py): the keys' table, the keyed create, and
the count of waiting runs on a reader connection of its own."""

from __future__ import annotations

import sqlite3
import threading

from engine.service.store import (
    Claim,
    IdempotencyKey,
    KeyedRun,
    inbound_call_uuid,
    number_columns,
)
from engine.state import RunState

# Idempotency keys of the trigger API: one row per (scope, key), written in the transaction
# that creates the run (the primary key makes the second of two concurrent uses lose).
KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_age ON idempotency_keys (created_at);
"""
PURGE_BATCH = 100  # expired idempotency keys deleted per keyed create


def create_run_once(db: sqlite3.Connection, create_run, state: RunState, key: IdempotencyKey) -> KeyedRun:
    """`create_run(state)` and the key in one savepoint (inside the group commit's
    transaction, or a transaction of its own): both are written, or neither. See
    `Store.create_run_once` (engine/service/store.py)."""
    db.execute("SAVEPOINT keyed")
    try:
        row = db.execute("SELECT run_id, fingerprint, created_at FROM idempotency_keys WHERE scope = ? AND key = ?",
                         (key.scope, key.key)).fetchone()
        if row is not None and row[2] >= key.expires_before:
            db.execute("RELEASE keyed")
            return KeyedRun(row[0], False, row[1])
        db.execute("DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key FROM idempotency_keys"
                   " WHERE created_at < ? LIMIT ?)", (key.expires_before, PURGE_BATCH))
        create_run(state)
        db.execute("INSERT OR REPLACE INTO idempotency_keys (scope, key, fingerprint, run_id, created_at)"
                   " VALUES (?, ?, ?, ?, ?)", (key.scope, key.key, key.fingerprint, state.run_id, key.created_at))
    except BaseException:
        db.execute("ROLLBACK TO keyed")
        db.execute("RELEASE keyed")
        raise
    db.execute("RELEASE keyed")
    return KeyedRun(state.run_id, True, key.fingerprint)


def waiting_counts(db: sqlite3.Connection, in_doubt_before: float) -> dict[str, int]:
    """Runs waiting, by what they wait for, plus `in_doubt`: waiting for the response to a
    request recorded before `in_doubt_before` (one scan of the runs_waiting index: ~30 ms
    for 100,000 waiting runs, so `SQLiteStore` runs it on a reader connection of its own)."""
    rows = db.execute("SELECT waiting_for, count(*), sum(updated_at < ?) FROM runs WHERE waiting_for IS NOT NULL"
                      " GROUP BY waiting_for", (in_doubt_before,)).fetchall()
    counts = {r[0]: r[1] for r in rows}
    counts["in_doubt"] = next((r[2] for r in rows if r[0] == "response"), 0)
    return counts


class Reader:
    """A read-only connection for the scans behind GET /metrics, used from a worker thread
    (sqlite3 lets go of the GIL while it steps): WAL readers never block the writer, so the
    store thread's commits, and the callbacks waiting on them, go on meanwhile."""

    def __init__(self, path: str):
        self._path, self._db, self._lock = path, None, threading.Lock()

    def waiting_counts(self, in_doubt_before: float) -> dict[str, int]:
        with self._lock:
            if self._db is None:
                self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA query_only = 1")
            return waiting_counts(self._db, in_doubt_before)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


# -- leases and claims (`Store.claim` and friends, engine/service/store.py) ----------------------
# Version 4 of the schema: the columns the claims read, written from the state on every save.
LEASE_COLUMNS = (("waiting_seq", "INTEGER"), ("sent_seq", "INTEGER"), ("lease_owner", "TEXT"),
                 ("lease_until", "REAL"), ("wake_at", "REAL"))
LEASE_INDEXES = """
CREATE INDEX IF NOT EXISTS runs_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_lease ON runs (lease_owner) WHERE lease_owner IS NOT NULL;
"""
_FREE = "(lease_until IS NULL OR lease_until < :now)"
CLAIMS = {  # Claim kind -> (which rows, in what order); every kind also needs a free lease
    Claim.UNSENT: ("waiting_for = 'response' AND waiting_seq IS NOT NULL AND sent_seq IS NOT waiting_seq",
                   "updated_at"),
    Claim.IN_DOUBT: ("waiting_for = 'response' AND (waiting_seq IS NULL OR sent_seq IS waiting_seq)"
                     " AND updated_at < :older_than", "updated_at"),
    Claim.QUIET: ("waiting_for IN ('call', 'input', 'hangup') AND updated_at < :older_than", "updated_at"),
    # `+waiting_for`: not the runs_waiting index (it would walk every waiting timer, ~70 ms for
    # 100,000) but runs_wake, which finds the due ones alone (bench/timer_bench.py).
    Claim.TIMER: ("+waiting_for = 'timer' AND wake_at <= :now", "wake_at"),
}


def add_lease_columns(db: sqlite3.Connection) -> None:
    """Schema 3 -> 4. A run stored before waits on a request nobody can tell sent or not:
    it counts as sent (in doubt: never resent)."""
    have = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    for name, kind in LEASE_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
    if "waiting_seq" not in have:
        db.execute("UPDATE runs SET waiting_seq = json_extract(state, '$.waiting.seq'),"
                   " sent_seq = json_extract(state, '$.waiting.seq') WHERE waiting_for IS NOT NULL")
    db.executescript(LEASE_INDEXES)


def claim(db: sqlite3.Connection, kind: Claim, now: float, older_than: float, owner: str, lease_until: float,
          limit: int) -> list[str]:
    """`Store.claim`: one UPDATE ... RETURNING (one writer: nobody else can take the same rows)."""
    where, order = CLAIMS[kind]
    rows = db.execute(
        f"UPDATE runs SET lease_owner = :owner, lease_until = :until WHERE id IN (SELECT id FROM runs WHERE {where}"
        f" AND {_FREE} ORDER BY {order} LIMIT :limit) RETURNING run_id",
        {"now": now, "older_than": older_than, "owner": owner, "until": lease_until, "limit": limit}).fetchall()
    return [r[0] for r in rows]


def mark_sent(db: sqlite3.Connection, run_id: str, seq: int, owner: str, sent: bool) -> bool:
    cur = db.execute("UPDATE runs SET sent_seq = ? WHERE run_id = ? AND lease_owner = ?",
                     (seq if sent else None, run_id, owner))
    return cur.rowcount == 1


def renew(db: sqlite3.Connection, owner: str, lease_until: float, run_ids: list[str]) -> int:
    return _by_ids(db, "UPDATE runs SET lease_until = ? WHERE lease_owner = ?", (lease_until, owner), run_ids)


def _by_ids(db: sqlite3.Connection, sql: str, args: tuple, run_ids: list[str]) -> int:
    """`sql ... AND run_id IN (run_ids)`, 500 ids per statement (SQLite's variable limit)."""
    done = 0
    for start in range(0, len(run_ids), 500):
        part = run_ids[start:start + 500]
        done += db.execute(f"{sql} AND run_id IN ({','.join('?' * len(part))})", (*args, *part)).rowcount
    return done


def release(db: sqlite3.Connection, owner: str | None, run_ids: list[str] | None) -> int:
    """Clear `owner`'s leases (those of `run_ids`, or all); `owner` None: everybody's (at open:
    the file lock proves no other process holds any)."""
    if owner is None:
        return db.execute("UPDATE runs SET lease_owner = NULL, lease_until = NULL"
                          " WHERE lease_owner IS NOT NULL").rowcount
    if run_ids is None:
        return db.execute("UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                          (owner,)).rowcount
    return _by_ids(db, "UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", (owner,),
                   run_ids)


# -- flow revisions (`Store.save_revision`/`load_revision`) ---------------------------------------
# Version 5 of the schema: the source of each flow revision runs may still need, so that any
# process (or this one after a reload or a restart) can rebuild the flow a run started on.
REVISIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS flow_revisions (
    revision TEXT PRIMARY KEY,
    flow_id  TEXT NOT NULL,
    source   TEXT NOT NULL,
    saved_at REAL NOT NULL
) WITHOUT ROWID;
"""


def save_revision(db: sqlite3.Connection, flow_id: str, revision: str, source: str, now: float) -> None:
    """Idempotent: a revision is its source's hash, so a second save only marks it current."""
    db.execute("INSERT INTO flow_revisions (revision, flow_id, source, saved_at, current_at) VALUES (?, ?, ?, ?, ?)"
               " ON CONFLICT (revision) DO UPDATE SET current_at = excluded.current_at",
               (revision, flow_id, source, now, now))


def load_revision(db: sqlite3.Connection, revision: str) -> str | None:
    row = db.execute("SELECT source FROM flow_revisions WHERE revision = ?", (revision,)).fetchone()
    return row[0] if row else None


def unfinished_by_revision(db: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """(flow id, revision) -> how many runs not finished (waiting) started on it; a scan of the
    waiting runs only (the runs_waiting index)."""
    rows = db.execute("SELECT flow_id, json_extract(state, '$.flow_revision'), count(*) FROM runs"
                      " WHERE waiting_for IS NOT NULL GROUP BY 1, 2").fetchall()
    return {(flow_id, revision or ""): n for flow_id, revision, n in rows}


_UNFINISHED_REVISIONS = ("SELECT json_extract(state, '$.flow_revision') FROM runs WHERE status IN ('running', 'waiting')"
                         " AND json_extract(state, '$.flow_revision') IS NOT NULL")


def prune_revisions(db: sqlite3.Connection, current: list[str], now: float, older_than: float) -> int:
    """`Store.prune_revisions`: mark `current`, delete the old ones no unfinished run needs."""
    for start in range(0, len(current), 500):
        part = current[start:start + 500]
        db.execute(f"UPDATE flow_revisions SET current_at = ? WHERE revision IN ({','.join('?' * len(part))})",
                   (now, *part))
    return db.execute(f"DELETE FROM flow_revisions WHERE coalesce(current_at, saved_at) < ?"
                      f" AND revision NOT IN ({_UNFINISHED_REVISIONS})", (older_than,)).rowcount


# -- schema 7: the number search, inbound dedupe, revisions' last use ------------------------------
SEARCH_COLUMNS = (("from_number", "TEXT"), ("to_number", "TEXT"), ("inbound_call_uuid", "TEXT"))
SEARCH_INDEXES = """
CREATE INDEX IF NOT EXISTS runs_from_number ON runs (from_number) WHERE from_number IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_to_number ON runs (to_number) WHERE to_number IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS runs_inbound_call ON runs (inbound_call_uuid) WHERE inbound_call_uuid IS NOT NULL;
"""


def add_search_columns(db: sqlite3.Connection) -> None:
    """Schema 6 -> 7, in one transaction: the columns, filled from the stored states of the
    runs that have a call, then the indexes; `flow_revisions.current_at` (their last use,
    `prune_revisions`), the save time for those saved before."""
    have = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    missing = [(name, kind) for name, kind in SEARCH_COLUMNS if name not in have]
    revisions = {r[1] for r in db.execute("PRAGMA table_info(flow_revisions)")}
    db.execute("BEGIN IMMEDIATE")
    try:
        for name, kind in missing:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        if missing:
            _fill_search_columns(db)
        if "current_at" not in revisions:
            db.execute("ALTER TABLE flow_revisions ADD COLUMN current_at REAL")
            db.execute("UPDATE flow_revisions SET current_at = saved_at")
        for statement in filter(str.strip, SEARCH_INDEXES.split(";")):
            db.execute(statement)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _fill_search_columns(db: sqlite3.Connection) -> None:
    """The numbers of every stored run with a call, and the inbound CallUUID: of runs stored
    before that share one (nothing refused it then), the newest keeps it, as `find_by_call`
    picks it and as PostgreSQL's migration 2 did; the others stay found by `call_uuid`."""
    numbers, inbound = [], {}
    for row_id, text in db.execute("SELECT id, state FROM runs WHERE json_extract(state, '$.call') IS NOT NULL"
                                   " ORDER BY id"):
        try:
            state = RunState.from_json(text)
        except (ValueError, TypeError, KeyError):  # a state this version cannot read: left unsearchable
            continue
        numbers.append((*number_columns(state), row_id))
        uuid = inbound_call_uuid(state)
        if uuid:
            inbound[uuid] = row_id
    db.executemany("UPDATE runs SET from_number = ?, to_number = ? WHERE id = ?", numbers)
    db.executemany("UPDATE runs SET inbound_call_uuid = ? WHERE id = ?", inbound.items())
