"""Durable timers in `callflow serve`: fire the `wait` nodes (outside a call) that are due.

A run waiting on a timer is only a row: `waiting_for = 'timer'` and `wake_at` (its
`Waiting.until`), written with every save; nothing of it stays in memory, so runs waiting
for days cost the process nothing until they are due, and a restart loses none. One tick,
`fire_timers`, claims the due runs (`store.claim(Claim.TIMER)`: each leased to this process
alone), then per run, under its lock: load, check that it still waits on that timer and is
due, `advance(TimerFired(seq))`, perform the effects (the run goes on: a call, an SMS...).
The save that records the fired timer clears the lease.

Exactly once: the lease keeps other processes off a claimed run (the sweeper renews the
leases of runs this process holds a lock for), and should a lease expire while its holder
still works (a stall longer than `CALLFLOW_LEASE_SECONDS`), the store's version check lets
one save win; the other re-applies `TimerFired` to the newer state, where it changes
nothing (the run no longer waits on that step).
"""

from __future__ import annotations

import asyncio
import logging

from engine.errors import StoreError
from engine.events import TimerFired
from engine.service.runs import Service
from engine.service.store import Claim
from engine.state import WaitReason

logger = logging.getLogger("callflow.server")  # one logger name for the whole service

BATCH = 100  # timers claimed per tick; the next tick takes the rest


async def fire_timers(service: Service, limit: int = BATCH) -> int:
    """Fire the timers due now (at most `limit`); returns how many runs moved on. The runs
    fire concurrently: their loads and saves share the store's commits."""
    due = await service.claim(Claim.TIMER, service.clock(), limit)  # leased for CALLFLOW_LEASE_SECONDS
    if not due:
        return 0
    moved = await asyncio.gather(*(_fire_claimed(service, run_id) for run_id in due))
    return sum(moved)


async def _fire_claimed(service: Service, run_id: str) -> bool:
    try:
        moved = await _fire(service, run_id)
    except StoreError:
        raise  # the store is down: the lease runs out and a later tick tries again
    except Exception:  # one run's trouble must not hold up the others' timers
        logger.exception("firing a timer failed", extra={"event": "run.error", "run_id": run_id})
        return False
    if not moved:  # nothing to fire after all: hand the run back rather than hold it for the lease
        await service.release([run_id])
    return moved


async def _fire(service: Service, run_id: str) -> bool:
    async with service.locks.hold(run_id):
        stored = await service.store.load(run_id)
        if stored is None:
            return False
        state = stored.state
        waiting = state.waiting
        if waiting is None or waiting.reason is not WaitReason.TIMER or (waiting.until or 0) > service.clock():
            return False  # fired already (another process, an earlier tick), or not due yet
        entry = await service.flow_of(state)
        if entry is None:
            return False
        state, version, effects = await service.advance(entry, stored, TimerFired(waiting.seq))
        if not effects.changed:
            return False
        logger.info("run %s: timer of node %s fired", run_id, waiting.node,
                    extra={"event": "run.timer_fired", "run_id": run_id, "flow": state.flow_id})
        await service.perform(entry, state, version, effects)
        return True

