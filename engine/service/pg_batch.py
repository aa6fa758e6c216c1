"""Group statements for the PostgreSQL run store: what the SQLite store's group commit does
for SQLite (engine/service/sqlite_store.py `_StoreThread`), for loads and saves.

Measured (bench/store_bench.py, docs/design.md): per statement, serve's cost is mostly the
round trip (a `write` to the socket and waking the server's backend, the kernel's loopback
work billed to serve), and the server's is mostly the transaction. A `Batcher` sends the
first call at once; calls made while `max_in_flight` statements of its kind are out wait and
go together in the next one (`WHERE run_id = ANY($1)` for loads, one `UPDATE ... FROM
unnest(...)` for saves). Under load that is several runs per round trip and per
transaction; alone, a call costs what it did.

A batch fails or succeeds as one statement: a driver error fails every call in it (each
caller gets `StoreUnavailable`, as for SQLite's group commit); a save whose version did not
match gets `Conflict`, the others in its batch are saved. One run appears at most once per
batch (a second call for it waits for the next), so "which of two saves of one run won" is
never a question.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Batcher:
    """Calls keyed by run id, sent one by one (`run_one(args)`) or together
    (`run_many([args...])` -> one result or exception per call, in order)."""

    def __init__(self, run_one: Callable[..., Awaitable], run_many: Callable[[list], Awaitable[list]],
                 max_in_flight: int = 2, max_batch: int = 200):
        self._run_one, self._run_many = run_one, run_many
        self._max_in_flight, self._max_batch = max_in_flight, max_batch
        self._pending: list[tuple[str, tuple, asyncio.Future]] = []
        self._in_flight = 0

    async def call(self, key: str, *args):
        if self._in_flight < self._max_in_flight and not self._pending:
            self._in_flight += 1
            try:
                return await self._run_one(*args)
            finally:
                self._in_flight -= 1
                self._start_next()
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((key, args, fut))
        return await fut

    def _start_next(self) -> None:
        if not self._pending or self._in_flight >= self._max_in_flight:
            return
        batch, rest, keys = [], [], set()
        for item in self._pending:
            if item[2].done():  # its caller gave up (cancelled)
                continue
            if item[0] in keys or len(batch) >= self._max_batch:
                rest.append(item)
            else:
                keys.add(item[0])
                batch.append(item)
        self._pending = rest
        if batch:
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._flush(batch))

    async def _flush(self, batch: list) -> None:
        try:
            if len(batch) == 1:
                try:
                    results = [await self._run_one(*batch[0][1])]
                except Exception as e:
                    results = [e]
            else:
                try:
                    results = await self._run_many([args for _, args, _ in batch])
                except Exception as e:  # each caller its own exception (tracebacks are per raise)
                    results = [_copy(e) for _ in batch]
            for (_, _, fut), result in zip(batch, results):
                if fut.done():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        finally:
            self._in_flight -= 1
            self._start_next()


def _copy(error: Exception) -> Exception:
    try:
        return type(error)(*error.args)
    except Exception:
        return error
