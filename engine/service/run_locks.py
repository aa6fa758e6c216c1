"""`RunLocks`: the in-process serialiser of the service's handlers, one asyncio lock per run
that something in this process is working on (across processes the store's version check
and leases do that job; engine/service/runs.py)."""

from __future__ import annotations

import asyncio
import contextlib


class RunLocks:
    """One asyncio lock per run id that something in this process is working on."""

    def __init__(self):
        self._locks: dict[str, list] = {}  # run_id -> [lock, users]

    async def acquire(self, run_id: str) -> None:
        entry = self._locks.get(run_id)
        if entry is None:
            entry = self._locks[run_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            await entry[0].acquire()
        except BaseException:
            self._drop(run_id, entry)
            raise

    def release(self, run_id: str) -> None:
        entry = self._locks[run_id]
        entry[0].release()
        self._drop(run_id, entry)

    def _drop(self, run_id: str, entry: list) -> None:
        entry[1] -= 1
        if entry[1] == 0:
            del self._locks[run_id]

    def busy(self, run_id: str) -> bool:
        return run_id in self._locks

    def held(self) -> list[str]:
        """The run ids something here works on (keys like "inbound:..." are not runs)."""
        return [k for k in self._locks if ":" not in k]

    @contextlib.asynccontextmanager
    async def hold(self, run_id: str):
        """`async with locks.hold(run_id) as held:` the run's lock, released at the end unless
        `held.hand_over()` passed it on (to a task that releases it)."""
        await self.acquire(run_id)
        held = Held()
        try:
            yield held
        finally:
            if not held.handed:
                self.release(run_id)

    def __len__(self) -> int:
        return len(self._locks)


class Held:
    """A lock `RunLocks.hold` holds; `hand_over()`: whoever it went to releases it."""

    __slots__ = ("handed",)

    def __init__(self):
        self.handed = False

    def hand_over(self) -> None:
        self.handed = True
