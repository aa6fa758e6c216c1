"""A small pool of asyncpg connections for the PostgreSQL run store (`PostgresStore`).

Why not `asyncpg.create_pool`: measured (bench/store_bench.py, docs/design.md), its acquire
and release cost ~50 us of CPU per statement, this one ~25 us, and the store makes one
statement per call, 8 per run. It does only what the store needs: up to `size` connections
made on demand, handed out last-in first-out (a warm connection with its prepared
statements), waiters served in order, and a connection that failed (or was left inside a
transaction) closed and forgotten, so the next acquire connects afresh (the server restarted,
say). It belongs to the event loop it was made on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import asyncpg

# The statement kinds `PostgresStore._run` takes (a connection's unbound method).
EXECUTE, FETCH, FETCHROW, FETCHVAL = (asyncpg.Connection.execute, asyncpg.Connection.fetch,
                                     asyncpg.Connection.fetchrow, asyncpg.Connection.fetchval)


class ConnectionPool:
    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int, wait_timeout: float):
        self._connect, self.size, self._wait_timeout = connect, size, wait_timeout
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future] = deque()
        self._count = 0  # connections open or being opened
        self._closed = False

    async def acquire(self) -> asyncpg.Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._count -= 1  # the server closed it while idle (a restart): not a 503 for the next caller
        if self._count >= self.size:
            conn = await self._wait()
            if conn is not None:
                return conn
        self._count += 1  # a slot: ours to connect
        try:
            return await self._connect()
        except BaseException:
            self._count -= 1
            self._hand_on(None)
            raise

    async def _wait(self) -> asyncpg.Connection | None:
        """Wait for a released connection (or None: a slot freed, connect yourself)."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self._wait_timeout)
        except BaseException:
            if fut.done() and not fut.cancelled():  # handed a connection as we gave up: pass it on
                conn = fut.result()
                if conn is None:
                    self._hand_on(None)
                else:
                    self.release(conn)
            else:
                fut.cancel()
            raise

    def release(self, conn: asyncpg.Connection, broken: bool = False) -> None:
        """Give `conn` back; `broken` (a driver error on it), closed, or still in a
        transaction: it is dropped (terminated) and its slot freed."""
        if broken or self._closed or conn.is_closed() or conn.is_in_transaction():
            conn.terminate()
            self._count -= 1
            self._hand_on(None)
            return
        if not self._hand_on(conn):
            self._idle.append(conn)

    def _hand_on(self, conn: asyncpg.Connection | None) -> bool:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return True
        return False

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError, asyncio.TimeoutError):
                conn.terminate()

    def terminate(self) -> None:
        """Close without waiting (the pool's loop is gone)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.terminate()
