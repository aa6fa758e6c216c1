"""The SQLite backend of the run store (`Store` in engine/service/store.py).

SQLite (`SQLiteStore`) runs in WAL mode with `synchronous=NORMAL`: a commit is durable
against a process crash (`kill -9`), the fsync happens at checkpoints, readers never block
the writer. All SQLite calls run on one dedicated thread with one connection (SQLite has
one writer anyway), never on the event loop, with group commit: what the loop queued while
the thread was busy runs in one transaction, and one loop wake-up resolves it all
(`_StoreThread`). Measured (`bench/e2e.py --db-mode inline` calls SQLite on the loop
instead): the same CPU per run, and the loop never waits on a checkpoint's fsync. Set
`synchronous=FULL` (`?synchronous=full` in the URL) to survive power loss too, at the cost
of an fsync per commit.

A sqlite3 error while serving (disk full, I/O error) fails the whole batch it was in and
reaches the caller as `StoreUnavailable` (the service answers 503); a file that cannot be
used is refused at open with `StoreUnusable` (the checks: engine/service/db_check.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time

from engine.errors import Conflict, RunExists, StoreUnavailable, StoreUnusable
from engine.service import sqlite_campaigns, sqlite_ops
from engine.service.db_check import (
    ELSEWHERE,
    check_database,
    check_path,
    lock_exclusively,
    unusable,
)
from engine.service.sqlite_ops import (
    KEYS_SCHEMA,
    Reader,
    add_lease_columns,
    create_run_once,
    waiting_counts,
)
from engine.service.store import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Claim,
    IdempotencyKey,
    KeyedRun,
    Lease,
    StoredRun,
    inbound_call_uuid,
    number_columns,
    run_summary,
    sweep_columns,
)
from engine.state import RunState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL UNIQUE,
    flow_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    waiting_for TEXT,
    version     INTEGER NOT NULL,
    state       TEXT NOT NULL,
    call_uuid   TEXT
);
CREATE INDEX IF NOT EXISTS runs_flow ON runs (flow_id, id);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, id);
CREATE INDEX IF NOT EXISTS runs_waiting ON runs (waiting_for, updated_at) WHERE waiting_for IS NOT NULL;
"""
_INDEX_CALL = "CREATE INDEX IF NOT EXISTS runs_call ON runs (call_uuid) WHERE call_uuid IS NOT NULL"
SCHEMA_VERSION = 7  # 2: call_uuid (inbound hangups find their run); 3: idempotency_keys; 4: leases;
# 5: flow_revisions; 6: campaigns; 7: from_number/to_number (the number search), inbound_call_uuid
# (unique: inbound dedupe, as on PostgreSQL), flow_revisions.current_at (pruning)


class _SQLite:
    """The synchronous part: one connection, used from one thread at a time."""

    def __init__(self, path: str, sync: str = "NORMAL"):
        self.path = path
        self.lock = None
        if path != ":memory:":
            check_path(path)  # engine/service/db_check.py: one line naming the path, not a traceback
            self.lock = lock_exclusively(path)
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._open(path, sync)
        except BaseException as e:
            if self.lock is not None:
                self.lock.close()
            if isinstance(e, sqlite3.Error):
                raise unusable(path, e) from None
            raise

    def _open(self, path: str, sync: str) -> None:
        self.db.execute("PRAGMA busy_timeout = 10000")
        version = check_database(self.db, path, SCHEMA_VERSION)
        if path != ":memory:":
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreUnusable(f"{path}: SQLite refused WAL mode (got {mode}); {ELSEWHERE}")
        self.db.execute(f"PRAGMA synchronous = {sync}")
        self.db.executescript(_SCHEMA)
        if version == 1:
            self.db.execute("ALTER TABLE runs ADD COLUMN call_uuid TEXT")
        self.db.execute(_INDEX_CALL)
        self.db.executescript(KEYS_SCHEMA)  # 3 (from 1 or 2: a new table, nothing to move)
        add_lease_columns(self.db)  # 4
        self.db.executescript(sqlite_ops.REVISIONS_SCHEMA)  # 5 (a new table, nothing to move)
        sqlite_campaigns.create_tables(self.db)  # 6 (new tables)
        sqlite_ops.add_search_columns(self.db)  # 7 (columns filled from the stored states)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # One process per file (the lock, `FileLock`): a lease left by an earlier process is void.
        sqlite_ops.release(self.db, None, None)

    @staticmethod
    def _columns(state: RunState, lease: Lease | None) -> tuple:
        waiting_for, waiting_seq, wake_at, call_uuid = sweep_columns(state)
        return (state.flow_id, state.status, state.error, state.created_at, state.updated_at, waiting_for,
                state.to_json(), call_uuid, waiting_seq, wake_at, *number_columns(state),
                lease.owner if lease else None, lease.until if lease else None)

    def create_run(self, state: RunState, lease: Lease | None = None) -> int:
        try:
            self.db.execute(
                "INSERT INTO runs (run_id, flow_id, status, error, created_at, updated_at, waiting_for, state,"
                " call_uuid, waiting_seq, wake_at, from_number, to_number, lease_owner, lease_until,"
                " inbound_call_uuid, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (state.run_id, *self._columns(state, lease), inbound_call_uuid(state)))
        except sqlite3.IntegrityError as e:
            if "inbound_call_uuid" in str(e):
                raise RunExists(f"{state.run_id}: a run already answers the incoming call "
                                f"{inbound_call_uuid(state)}") from None
            raise RunExists(state.run_id) from None
        return 1

    def create_run_once(self, state: RunState, key: IdempotencyKey, lease: Lease | None) -> KeyedRun:
        return create_run_once(self.db, lambda s: self.create_run(s, lease), state, key)

    def ping(self) -> None:
        self.db.execute("SELECT 1").fetchone()

    def waiting_counts(self, in_doubt_before: float) -> dict[str, int]:
        return waiting_counts(self.db, in_doubt_before)

    def load(self, run_id: str) -> StoredRun | None:
        row = self.db.execute("SELECT state, version FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        return StoredRun(RunState.from_json(row[0]), row[1])

    def save(self, state: RunState, version: int, lease: Lease | None) -> int:
        _flow, status, error, _created, updated, *rest = self._columns(state, lease)
        cur = self.db.execute(
            "UPDATE runs SET status = ?, error = ?, updated_at = ?, waiting_for = ?, state = ?, call_uuid = ?,"
            " waiting_seq = ?, wake_at = ?, from_number = ?, to_number = ?, lease_owner = ?, lease_until = ?,"
            " version = version + 1"
            " WHERE run_id = ? AND version = ?", (status, error, updated, *rest, state.run_id, version))
        if cur.rowcount != 1:
            raise Conflict(state.run_id)
        return version + 1

    def list_runs(self, flow_id, status, limit, cursor, number) -> tuple[list[dict], str | None]:
        where, args = [], []
        if number:
            where.append("(from_number = ? OR to_number = ?)")
            args += [number, number]
        if flow_id:
            where.append("flow_id = ?")
            args.append(flow_id)
        if status:
            where.append("status = ?")
            args.append(status)
        if cursor is not None:
            where.append("id < ?")
            args.append(int(cursor))
        sql = "SELECT id, run_id, flow_id, status, error, created_at, updated_at FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self.db.execute(sql, (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [run_summary(r) for r in rows], (str(rows[-1][0]) if more else None)

    def find_by_call(self, call_uuid: str, flow_id: str | None) -> str | None:
        sql, args = "SELECT run_id FROM runs WHERE call_uuid = ?", [call_uuid]
        if flow_id:
            sql += " AND flow_id = ?"
            args.append(flow_id)
        row = self.db.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self.db.close()
        if self.lock is not None:
            self.lock.close()


class _StoreThread(threading.Thread):
    """The one thread that touches the SQLite connection, with group commit.

    The event loop puts (function, args, future) on a queue; the thread takes everything
    queued, runs it in one transaction, commits, then resolves all the futures with one
    `call_soon_threadsafe`. A future resolves only after its transaction committed, so
    "saved before answering" holds. Under load one commit and one loop wake-up serve many
    operations; `loop.run_in_executor` per call cost ~3x the SQLite work itself (measured:
    ~220 us CPU per load+save through a ThreadPoolExecutor, ~60 us inline).
    """

    MAX_BATCH = 256

    def __init__(self, path: str, sync: str):
        super().__init__(name="callflow-store", daemon=True)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._path, self._sync = path, sync
        self.db: _SQLite | None = None
        self.error: BaseException | None = None
        self.start()
        self._ready.wait()
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        try:
            self.db = _SQLite(self._path, self._sync)
        except BaseException as e:
            self.error = e
            return
        finally:
            self._ready.set()
        q, db = self.queue, self.db.db
        while True:
            item = q.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self.MAX_BATCH:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    q.put(None)  # stop after this batch
                    break
                batch.append(item)
            results = []
            grouped = len(batch) > 1  # one operation alone commits by itself
            try:
                if grouped:
                    db.execute("BEGIN")
                for fn, args, fut in batch:
                    try:
                        results.append((fut, fn(*args), None))
                    except sqlite3.Error:  # SQLite may have rolled back already: fail the whole batch
                        raise
                    except Exception as e:  # this operation only (a Conflict, a RunExists...)
                        results.append((fut, None, e))
                if grouped:
                    db.execute("COMMIT")
            except Exception as e:  # the transaction itself failed: nothing in it was stored
                with contextlib.suppress(Exception):
                    db.execute("ROLLBACK")
                results = [(fut, None, unavailable(e)) for _, _, fut in batch]
            loops: dict = {}
            for entry in results:
                loops.setdefault(entry[0].get_loop(), []).append(entry)
            for loop, entries in loops.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_resolve, entries)
        self.db.close()


def unavailable(error: Exception) -> Exception:
    """A sqlite3 error (disk full, I/O error, locked, corrupt page) as `StoreUnavailable`:
    the service answers 503 and the same operation may succeed later; others unchanged."""
    if isinstance(error, sqlite3.Error):
        return StoreUnavailable(f"the run store is unavailable ({error})")
    return error


def _resolve(entries) -> None:
    for fut, result, error in entries:
        if fut.done():  # the waiter was cancelled
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)


class SQLiteStore(sqlite_campaigns.SQLiteCampaigns):
    """`Store` on SQLite. `inline=True` runs the calls on the caller's thread (the event
    loop): only for measuring what the store thread buys (bench/e2e.py --db-mode)."""

    def __init__(self, path: str = "callflow.db", *, sync: str = "NORMAL", inline: bool = False):
        self.path = path
        self._inline = inline
        if inline:
            self._thread = None
            self._db = _SQLite(path, sync)
        else:
            self._thread = _StoreThread(path, sync)
            self._db = self._thread.db
        self._closed = False
        self._reader = Reader(path) if path != ":memory:" and not inline else None

    def _call(self, fn, *args):
        if self._closed:
            raise RuntimeError("the store is closed")
        if self._inline:
            fut = asyncio.get_running_loop().create_future()
            try:
                fut.set_result(fn(*args))
            except Exception as e:
                fut.set_exception(unavailable(e))
            return fut
        fut = asyncio.get_running_loop().create_future()
        self._thread.queue.put((fn, args, fut))
        return fut

    async def create_run(self, state: RunState, lease: Lease | None = None) -> int:
        return await self._call(self._db.create_run, state, lease)

    async def create_run_once(self, state: RunState, key: IdempotencyKey, lease: Lease | None = None) -> KeyedRun:
        return await self._call(self._db.create_run_once, state, key, lease)

    async def ping(self) -> None:
        await self._call(self._db.ping)

    async def waiting_counts(self, in_doubt_before: float) -> dict[str, int]:
        if self._reader is None:  # in memory (no second connection sees it), or inline
            return await self._call(self._db.waiting_counts, in_doubt_before)
        if self._closed:
            raise RuntimeError("the store is closed")
        try:
            return await asyncio.to_thread(self._reader.waiting_counts, in_doubt_before)
        except sqlite3.Error:  # a second connection cannot read (locked, say): the store thread may
            return await self._call(self._db.waiting_counts, in_doubt_before)

    async def load(self, run_id: str) -> StoredRun | None:
        return await self._call(self._db.load, run_id)

    async def save(self, state: RunState, version: int, lease: Lease | None = None) -> int:
        return await self._call(self._db.save, state, version, lease)

    async def mark_sent(self, run_id: str, seq: int, owner: str, sent: bool = True) -> bool:
        return await self._call(sqlite_ops.mark_sent, self._db.db, run_id, seq, owner, sent)

    async def claim(self, kind: Claim, *, now: float, older_than: float, owner: str, lease_until: float,
                    limit: int = 100) -> list[str]:
        return await self._call(sqlite_ops.claim, self._db.db, kind, now, older_than, owner, lease_until, limit)

    async def renew(self, owner: str, lease_until: float, run_ids: list[str]) -> int:
        return await self._call(sqlite_ops.renew, self._db.db, owner, lease_until, run_ids)

    async def release(self, owner: str, run_ids: list[str] | None = None) -> int:
        return await self._call(sqlite_ops.release, self._db.db, owner, run_ids)

    async def list_runs(self, *, flow_id: str | None = None, status: str | None = None,
                        limit: int = DEFAULT_PAGE, cursor: str | None = None,
                        number: str | None = None) -> tuple[list[dict], str | None]:
        limit = max(1, min(int(limit), MAX_PAGE))
        if cursor is not None and not str(cursor).isdigit():
            raise ValueError("cursor: not a cursor this service handed out")
        return await self._call(self._db.list_runs, flow_id, status, limit, cursor, number)

    async def find_by_call(self, call_uuid: str, flow_id: str | None = None) -> str | None:
        return await self._call(self._db.find_by_call, call_uuid, flow_id)

    async def save_revision(self, flow_id: str, revision: str, source: str) -> None:
        await self._call(sqlite_ops.save_revision, self._db.db, flow_id, revision, source, time.time())

    async def load_revision(self, revision: str) -> str | None:
        return await self._call(sqlite_ops.load_revision, self._db.db, revision)

    async def unfinished_by_revision(self) -> dict[tuple[str, str], int]:
        return await self._call(sqlite_ops.unfinished_by_revision, self._db.db)

    async def prune_revisions(self, current: list[str], now: float, older_than: float) -> int:
        return await self._call(sqlite_ops.prune_revisions, self._db.db, list(current), now, older_than)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.close()
        if self._inline:
            self._db.close()
        else:
            self._thread.queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
