"""The sweeper: what the service does for runs that nobody's request moves on.

* A run waiting for the response to a recorded API request that nobody in this process is
  performing (the process died with the request in flight, or the request timed out after
  it was written) is *in doubt*: the request is never resent. After the grace period
  (`CALLFLOW_IN_DOUBT_SECONDS`, default 60) with no callback proving it went through, the
  sweeper feeds `Response(in_doubt=True)` and the node takes its `failed` outcome.
* A run whose call has been silent for `CALLFLOW_RECONCILE_SECONDS` has the call looked up
  at the provider (engine/service/reconcile.py): a call that ended unheard is delivered as
  its hangup, so such runs finish within about a minute, not at the run timeout.
* A run that waited longer than the run timeout (`CALLFLOW_RUN_TIMEOUT`) for a provider
  callback gets `Expired`: no run waits forever.

`sweep_forever` runs from the app's lifespan (engine/service/app.py).
"""

from __future__ import annotations

import asyncio
import logging

from engine.errors import StoreError
from engine.events import Expired, Response
from engine.service.reconcile import reconcile
from engine.service.runs import Service
from engine.state import WaitReason

logger = logging.getLogger("callflow.server")  # one logger name for the whole service


async def sweep(service: Service) -> int:
    """Feed `Response(in_doubt=True)` to runs whose recorded request has gone unanswered
    for the grace period with nobody here performing it, then expire stale runs. Returns
    how many runs moved. (Reconciliation runs beside it: `sweep_forever`.)"""
    grace = service.settings.in_doubt_seconds
    cutoff = service.clock() - grace
    done = 0
    for run_id in await service.store.in_doubt(cutoff):
        if service.locks.busy(run_id):
            continue  # being worked on in this process (e.g. its request is in flight)
        async with service.locks.hold(run_id):
            stored = await service.store.load(run_id)
            if stored is None:
                continue
            state = stored.state
            waiting = state.waiting
            if waiting is None or waiting.reason is not WaitReason.RESPONSE or state.updated_at >= cutoff:
                continue
            entry = service.flows.get(state.flow_id)
            if entry is None:
                continue
            logger.warning("run %s: request of node %s in doubt for %g s: not resent, taking failed",
                           run_id, waiting.node, grace)
            event = Response(error=f"no response recorded within {grace:g} s",
                             in_doubt=True)
            state, version, effects = await service.advance(entry, stored, event)
            await service.perform(entry, state, version, effects)
            done += 1
    return done + await expire_stale(service)


async def expire_stale(service: Service) -> int:
    """Give up on runs that waited longer than the run timeout for a provider callback."""
    limit = service.settings.run_timeout_seconds
    cutoff = service.clock() - limit
    done = 0
    for run_id in await service.store.stale(cutoff):
        if service.locks.busy(run_id):
            continue
        async with service.locks.hold(run_id):
            stored = await service.store.load(run_id)
            if stored is None or stored.state.updated_at >= cutoff:
                continue
            entry = service.flows.get(stored.state.flow_id)
            if entry is None:
                continue
            logger.warning("run %s: no callback for %g s; giving up", run_id, limit)
            state, version, effects = await service.advance(entry, stored, Expired(limit))
            await service.perform(entry, state, version, effects)
            done += 1
    return done


async def sweep_forever(service: Service) -> None:
    """Sweep every quarter of the shorter deadline (between 50 ms and 5 s), until cancelled;
    reconciliation on the same beat in a loop of its own, so that a slow provider API
    answering its lookups never holds up the in-doubt rule and the run timeout."""
    settings = service.settings
    deadlines = [settings.in_doubt_seconds, settings.run_timeout_seconds]
    if settings.reconcile_seconds > 0:
        deadlines.append(settings.reconcile_seconds)
    interval = min(max(min(deadlines) / 4, 0.05), 5.0)
    loops = [_every(interval, sweep, service, "in-doubt sweep")]
    if settings.reconcile_seconds > 0:
        loops.append(_every(interval, reconcile, service, "reconciliation"))
    await asyncio.gather(*loops)


async def _every(interval: float, job, service: Service, what: str) -> None:
    while True:
        try:
            await job(service)
        except asyncio.CancelledError:
            raise
        except StoreError as e:  # the store is down (disk full...): try again next time, quietly
            logger.warning("in-doubt sweep: %s", e)
        except Exception:
            logger.exception("%s failed", what)
        await asyncio.sleep(interval)
