"""The PostgreSQL backend of the run store (`Store` in engine/service/store.py), for several
`callflow serve` processes on one database.

asyncpg (Apache-2.0) with a small pool of its own (engine/service/pg_pool.py; `pool_size`
in the URL, default 10): every call is one statement (or one short transaction) on a pooled
connection, prepared once per connection by asyncpg's statement cache. The state is a
`json` column holding `RunState.to_json()`'s text as it is (a text codec both ways: no
decode to dict and back). Not `jsonb`: jsonb refuses `\\u0000`, which a webhook's answer or
a callback parameter can carry (the run could never be saved again: a 503 forever, where
SQLite stores it), and it costs the server a parse on every save and a rendering on every
load; callflow never queries inside the state. The columns the sweeps, claims and listing
read are written from the state on every save.

Concurrency across processes: `save` is optimistic (`version` in the WHERE clause; 0 rows ->
`Conflict`), `claim` hands each run to one process (`FOR UPDATE SKIP LOCKED`), an idempotency
key is a primary key, and an incoming call's CallUUID is unique (`inbound_call_uuid`): of two
processes receiving one answer request, one starts the run and the other gets `RunExists`.

Errors: a driver error while serving (server gone, connection dropped, statement timeout)
is `StoreUnavailable` (the service answers 503); the database is checked and migrated at open
(engine/service/pg_connect.py), where problems are `StoreUnusable`.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from engine.errors import Conflict, RunExists, StoreUnavailable
from engine.service.pg_batch import Batcher
from engine.service.pg_campaigns import PgCampaigns
from engine.service.pg_connect import (
    CONNECT_TIMEOUT,
    DRIVER_ERRORS,
    connect,
    open_database,
    parse_url,
    unavailable,
)
from engine.service.pg_pool import EXECUTE, FETCH, FETCHROW, FETCHVAL, ConnectionPool
from engine.service.pg_sql import (
    CLAIM_KEY,
    CLAIM_SQL,
    CLAIMS,
    INSERT,
    INSERT_MANY,
    MARK_CURRENT,
    MARK_SENT,
    MARK_SENT_MANY,
    PRUNE_REVISIONS,
    PURGE_BATCH,
    PURGE_KEYS,
    SAVE,
    SAVE_MANY,
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


def _columns(state: RunState) -> tuple:
    """(status, error, updated_at, waiting_for, waiting_seq, wake_at, call_uuid, state, from_number, to_number)."""
    return (state.status, state.error, state.updated_at, *sweep_columns(state), state.to_json(), *number_columns(state))


class PostgresStore(PgCampaigns):
    """`Store` on PostgreSQL; `url` as `open_store` takes it (postgresql://...)."""

    def __init__(self, url: str):
        self._target = parse_url(url)
        self.where = self._target.where
        self.schema_version = open_database(self._target)  # StoreUnusable here, not while serving
        self._pool: ConnectionPool | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.statements = 0  # statements sent (bench/store_bench.py)

    def _get_pool(self) -> ConnectionPool:
        """The pool of the running loop (made on first use: a connection belongs to one loop;
        a store used from a later loop, as tests do, gets a new pool there)."""
        if self._closed:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool_loop is not loop:
            if self._pool is not None:
                self._pool.terminate()
            self._pool, self._pool_loop = ConnectionPool(self._connect, self._target.pool_size, CONNECT_TIMEOUT), loop
            self._loads = Batcher(self._load_one, self._load_many)
            self._saves = Batcher(self._save_one, self._save_many)
            self._creates = Batcher(self._create_one, self._create_many)
            self._marks = Batcher(self._mark_one, self._mark_many)
        return self._pool

    async def _connect(self) -> asyncpg.Connection:
        conn = await connect(self._target)
        # The state's JSON text goes in and comes out as text: RunState parses it once.
        await conn.set_type_codec("json", encoder=str, decoder=str, schema="pg_catalog", format="text")
        return conn

    async def _acquire(self) -> tuple[ConnectionPool, asyncpg.Connection]:
        pool = self._get_pool()
        try:
            return pool, await pool.acquire()
        except DRIVER_ERRORS as e:
            raise unavailable(e) from None

    async def _run(self, method, sql: str, *args):
        """One statement on a pooled connection (`method`: asyncpg.Connection.execute, fetch...)."""
        pool, conn = await self._acquire()
        self.statements += 1
        try:
            result = await method(conn, sql, *args)
        except asyncpg.UniqueViolationError:
            pool.release(conn)
            raise
        except DRIVER_ERRORS as e:
            pool.release(conn, broken=not isinstance(e, asyncpg.PostgresError))
            raise unavailable(e) from None
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            pool.release(conn, broken=True)
            raise
        pool.release(conn)
        return result

    # -- runs ----------------------------------------------------------------------------------
    @staticmethod
    def _insert_args(state: RunState, lease: Lease | None) -> tuple:
        status, error, updated, waiting, seq, wake, call_uuid, text, src, dst = _columns(state)
        return (state.run_id, state.flow_id, status, error, state.created_at, updated, waiting, seq, wake, call_uuid,
                text, src, dst, lease.owner if lease else None, lease.until if lease else None,
                inbound_call_uuid(state))

    async def create_run(self, state: RunState, lease: Lease | None = None) -> int:
        self._get_pool()  # this loop's pool and batchers
        return await self._creates.call(state.run_id, state, lease)

    async def _create_one(self, state: RunState, lease: Lease | None) -> int:
        try:
            await self._run(EXECUTE, INSERT, *self._insert_args(state, lease))
        except asyncpg.UniqueViolationError as e:
            raise _exists(state, e) from None
        return 1

    async def _create_many(self, calls: list[tuple]) -> list:
        rows = [self._insert_args(state, lease) for state, lease in calls]
        try:
            await self._run(EXECUTE, INSERT_MANY, *(list(column) for column in zip(*rows)))
        except asyncpg.UniqueViolationError:  # which one? each alone (rare: run ids are UUIDs)
            return [await _outcome(self._create_one(state, lease)) for state, lease in calls]
        return [1] * len(calls)

    async def create_run_once(self, state: RunState, key: IdempotencyKey, lease: Lease | None = None) -> KeyedRun:
        """The key and the run in one transaction; see `Store.create_run_once`."""
        pool, conn = await self._acquire()
        self.statements += 4
        held = None  # a live key's (run id, fingerprint)
        try:
            async with conn.transaction():
                won = await conn.fetchval(CLAIM_KEY, key.scope, key.key, key.fingerprint, state.run_id,
                                          key.created_at, key.expires_before)
                if won is None:  # a live key: the run that holds it (the connection is released
                    # after the transaction ends: released inside it, its end found the connection gone)
                    held = await conn.fetchrow("SELECT run_id, fingerprint FROM idempotency_keys"
                                               " WHERE scope = $1 AND key = $2", key.scope, key.key)
                else:
                    await conn.execute(INSERT, *self._insert_args(state, lease))
                    await conn.execute(PURGE_KEYS, key.expires_before, PURGE_BATCH)
        except asyncpg.UniqueViolationError as e:
            pool.release(conn)
            raise _exists(state, e) from None
        except DRIVER_ERRORS as e:
            pool.release(conn, broken=not isinstance(e, asyncpg.PostgresError))
            raise unavailable(e) from None
        except BaseException:
            pool.release(conn, broken=True)
            raise
        pool.release(conn)
        if held is not None:
            return KeyedRun(held[0], False, held[1])
        return KeyedRun(state.run_id, True, key.fingerprint)

    async def load(self, run_id: str) -> StoredRun | None:
        self._get_pool()  # this loop's pool and batchers
        return await self._loads.call(run_id, run_id)

    async def _load_one(self, run_id: str) -> StoredRun | None:
        row = await self._run(FETCHROW, "SELECT state, version FROM runs WHERE run_id = $1", run_id)
        return None if row is None else StoredRun(RunState.from_json(row[0]), row[1])

    async def _load_many(self, calls: list[tuple]) -> list:
        rows = await self._run(FETCH, "SELECT run_id, state, version FROM runs WHERE run_id = ANY($1::text[])",
                               [run_id for run_id, in calls])
        found = {r[0]: r for r in rows}
        return [StoredRun(RunState.from_json(found[run_id][1]), found[run_id][2]) if run_id in found else None
                for run_id, in calls]

    async def save(self, state: RunState, version: int, lease: Lease | None = None) -> int:
        self._get_pool()
        args = (state.run_id, *_columns(state), lease.owner if lease else None, lease.until if lease else None,
                version)
        return await self._saves.call(state.run_id, *args)

    async def _save_one(self, *args) -> int:
        if await self._run(EXECUTE, SAVE, *args) != "UPDATE 1":
            raise Conflict(args[0])
        return args[-1] + 1

    async def _save_many(self, calls: list[tuple]) -> list:
        saved = {r[0] for r in await self._run(FETCH, SAVE_MANY, *(list(column) for column in zip(*calls)))}
        return [args[-1] + 1 if args[0] in saved else Conflict(args[0]) for args in calls]

    # -- leases and claims ---------------------------------------------------------------------
    async def mark_sent(self, run_id: str, seq: int, owner: str, sent: bool = True) -> bool:
        self._get_pool()
        return await self._marks.call(run_id, run_id, seq if sent else None, owner)

    async def _mark_one(self, run_id: str, seq: int | None, owner: str) -> bool:
        return await self._run(EXECUTE, MARK_SENT, run_id, seq, owner) == "UPDATE 1"

    async def _mark_many(self, calls: list[tuple]) -> list:
        marked = {r[0] for r in await self._run(FETCH, MARK_SENT_MANY, *(list(column) for column in zip(*calls)))}
        return [run_id in marked for run_id, _, _ in calls]

    async def claim(self, kind: Claim, *, now: float, older_than: float, owner: str, lease_until: float,
                    limit: int = 100) -> list[str]:
        kind = Claim(kind)
        args = (owner, lease_until, limit, now, older_than) if CLAIMS[kind][2] else (owner, lease_until, limit, now)
        rows = await self._run(FETCH, CLAIM_SQL[kind], *args)
        return [r[0] for r in rows]

    async def renew(self, owner: str, lease_until: float, run_ids: list[str]) -> int:
        status = await self._run(EXECUTE, "UPDATE runs SET lease_until = $1 WHERE lease_owner = $2"
                                 " AND run_id = ANY($3::text[])", lease_until, owner, list(run_ids))
        return _count(status)

    async def release(self, owner: str, run_ids: list[str] | None = None) -> int:
        if run_ids is None:
            status = await self._run(EXECUTE, "UPDATE runs SET lease_owner = NULL, lease_until = NULL"
                                     " WHERE lease_owner = $1", owner)
        else:
            status = await self._run(EXECUTE, "UPDATE runs SET lease_owner = NULL, lease_until = NULL"
                                     " WHERE lease_owner = $1 AND run_id = ANY($2::text[])", owner, list(run_ids))
        return _count(status)

    # -- reads ---------------------------------------------------------------------------------
    async def list_runs(self, *, flow_id: str | None = None, status: str | None = None,
                        limit: int = DEFAULT_PAGE, cursor: str | None = None,
                        number: str | None = None) -> tuple[list[dict], str | None]:
        limit = max(1, min(int(limit), MAX_PAGE))
        if cursor is not None and not str(cursor).isdigit():
            raise ValueError("cursor: not a cursor this service handed out")
        where, args = [], []
        if number:
            args.append(number)
            where.append("(from_number = $1 OR to_number = $1)")
        for column, value in (("flow_id", flow_id), ("status", status), ("id", cursor)):
            if value:
                args.append(int(value) if column == "id" else value)
                where.append(f"{column} {'<' if column == 'id' else '='} ${len(args)}")
        sql = "SELECT id, run_id, flow_id, status, error, created_at, updated_at FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._run(FETCH, f"{sql} ORDER BY id DESC LIMIT ${len(args) + 1}", *args, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return [run_summary(r) for r in rows], (str(rows[-1][0]) if more else None)

    async def find_by_call(self, call_uuid: str, flow_id: str | None = None) -> str | None:
        if flow_id:
            return await self._run(FETCHVAL, "SELECT run_id FROM runs WHERE call_uuid = $1 AND flow_id = $2"
                                   " ORDER BY id DESC LIMIT 1", call_uuid, flow_id)
        return await self._run(FETCHVAL, "SELECT run_id FROM runs WHERE call_uuid = $1 ORDER BY id DESC LIMIT 1",
                               call_uuid)

    async def waiting_counts(self, in_doubt_before: float) -> dict[str, int]:
        rows = await self._run(FETCH, "SELECT waiting_for, count(*), count(*) FILTER (WHERE updated_at < $1)"
                               " FROM runs WHERE waiting_for IS NOT NULL GROUP BY waiting_for", in_doubt_before)
        counts = {r[0]: r[1] for r in rows}
        counts["in_doubt"] = next((r[2] for r in rows if r[0] == "response"), 0)
        return counts

    # -- flow revisions (`Store.save_revision` and friends) -------------------------------------
    async def save_revision(self, flow_id: str, revision: str, source: str) -> None:
        """Idempotent: a revision is its source's hash, so a second save only marks it current."""
        await self._run(EXECUTE, "INSERT INTO flow_revisions (revision, flow_id, source, saved_at, current_at)"
                        " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (revision) DO UPDATE SET current_at = $4",
                        revision, flow_id, source, time.time())

    async def load_revision(self, revision: str) -> str | None:
        return await self._run(FETCHVAL, "SELECT source FROM flow_revisions WHERE revision = $1", revision)

    async def unfinished_by_revision(self) -> dict[tuple[str, str], int]:
        """(flow id, revision) -> runs waiting that started on it (the waiting runs only)."""
        rows = await self._run(FETCH, "SELECT flow_id, state->>'flow_revision', count(*) FROM runs"
                               " WHERE waiting_for IS NOT NULL GROUP BY 1, 2")
        return {(flow_id, revision or ""): n for flow_id, revision, n in rows}

    async def prune_revisions(self, current: list[str], now: float, older_than: float) -> int:
        """Mark `current`, then delete (one statement each: see `Store.prune_revisions`)."""
        if current:
            await self._run(EXECUTE, MARK_CURRENT, now, list(current))
        return _count(await self._run(EXECUTE, PRUNE_REVISIONS, older_than))

    async def ping(self) -> None:
        await self._run(FETCHVAL, "SELECT 1")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            if self._pool_loop is asyncio.get_running_loop():
                await pool.close()
            else:
                pool.terminate()


async def _outcome(call) -> object:
    """The result of awaiting `call`, or the store error it raised (one caller's outcome)."""
    try:
        return await call
    except (RunExists, StoreUnavailable) as e:
        return e


def _count(status: str) -> int:
    """The row count of a command status ("UPDATE 3" -> 3)."""
    return int(status.rsplit(" ", 1)[-1])


def _exists(state: RunState, error: asyncpg.UniqueViolationError) -> RunExists:
    if getattr(error, "constraint_name", None) == "runs_inbound_call":
        return RunExists(f"{state.run_id}: a run already answers the incoming call {inbound_call_uuid(state)}")
    return RunExists(state.run_id)
