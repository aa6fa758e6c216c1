"""The SQLite side of the trigger API's idempotency keys and of GET /metrics' scans, for
`SQLiteStore` (engine/service/sqlite_store.py): the keys' table, the keyed create, and
the count of waiting runs on a reader connection of its own."""

from __future__ import annotations

import sqlite3
import threading

from engine.service.store import IdempotencyKey, KeyedRun
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
