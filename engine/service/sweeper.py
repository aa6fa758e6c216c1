"""The sweeper: what the service does for runs that nobody's request moves on. Each job
claims its runs first (`Store.claim`: leased to this process, so that of several processes
exactly one acts on each; a dead process's leases are taken over once they expire):

* a request recorded and never sent (its process died or stopped with it queued): sent now
  (`Service.send_unsent`), by whichever process claims it;
* a request sent whose answer never came (the process died with it in flight, or it timed
  out after it was written) is *in doubt*. After the grace period
  (`CALLFLOW_IN_DOUBT_SECONDS`, default 60) with no callback proving it went through, a
  Call request is looked for at the provider (engine/service/in_doubt.py): absent on two
  looks, it is sent again, once; found, the run adopts the call; else, after a bound, and
  for any other request at once, the sweeper feeds `Response(in_doubt=True)` and the node
  takes its `failed` outcome;
* a run whose call has been silent for `CALLFLOW_RECONCILE_SECONDS` has the call looked up
  at the provider (engine/service/reconcile.py): a call that ended unheard is delivered as
  its hangup, so such runs finish within about a minute, not at the run timeout;
* a run that waited longer than the run timeout (`CALLFLOW_RUN_TIMEOUT`) for a provider
  callback gets `Expired`: no run waits forever;
* a run waiting on a durable timer that is due is resumed (engine/service/timers.py);
* running campaigns start their next rows (engine/service/campaigns.py);
* every minute, the stored flow revisions this process serves are marked served, and those
  no process served for `CALLFLOW_REVISION_KEEP_SECONDS` that no unfinished run needs are
  deleted (engine/service/deploy.py `prune_revisions`: one idempotent DELETE, so processes
  pruning at once agree);
* the leases of the runs this process works on are renewed every third of
  `CALLFLOW_LEASE_SECONDS`.

`sweep_forever` runs from the app's lifespan (engine/service/app.py).
"""

from __future__ import annotations

import asyncio
import logging

from engine.errors import StoreError
from engine.events import Expired
from engine.service.campaigns import TICK, pace_campaigns
from engine.service.deploy import prune_revisions
from engine.service.in_doubt import Shared, settle
from engine.service.reconcile import reconcile
from engine.service.runs import Service
from engine.service.store import Claim
from engine.service.timers import fire_timers

logger = logging.getLogger("callflow.server")  # one logger name for the whole service
PRUNE_INTERVAL = 60.0  # seconds between two markings (and prunings) of the stored revisions
IN_DOUBT_PER_TICK = 20  # runs in doubt settled at once (their lookups share LOOKUP_CONNECTIONS)


async def send_unsent(service: Service) -> int:
    """Claim the runs whose recorded request nobody sent and send them, side by side (each
    waits for a connection like any other request; the trigger's queue bound counts them)."""
    room = service.settings.max_queued - service.unanswered
    if room <= 0 or service.stopping:
        return 0
    run_ids = await service.claim(Claim.UNSENT, limit=min(room, 100))
    for run_id in run_ids:
        service.background(service.send_unsent(run_id))
    return len(run_ids)


async def sweep(service: Service) -> int:
    """One pass of every sweep but the timers and reconciliation: settle the runs in doubt,
    send what was never sent (a request resent just now too), expire stale runs. Returns
    how many runs moved."""
    settled = await settle_in_doubt(service)
    return settled + await sweep_queues(service)


async def sweep_queues(service: Service) -> int:
    """Send what was never sent, then expire stale runs (no provider lookup: never slowed
    down by the provider's API)."""
    return await send_unsent(service) + await expire_stale(service)


async def settle_in_doubt(service: Service) -> int:
    """Settle the runs whose sent request has gone unanswered for the grace period
    (engine/service/in_doubt.py: looked up, resent once, adopted, or failed)."""
    grace = service.settings.in_doubt_seconds
    now = service.clock()
    run_ids = await service.claim(Claim.IN_DOUBT, now - grace, limit=IN_DOUBT_PER_TICK)
    try:  # side by side: each may wait seconds for the provider's lookups
        shared = Shared(service)  # the queued calls, looked up once for all of them
        results = await asyncio.gather(*(settle(service, run_id, now, grace, shared) for run_id in run_ids),
                                       return_exceptions=True)  # one failing must not cut the others short
        for run_id, result in zip(run_ids, results):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # a cancellation (the stop)
            if isinstance(result, Exception):
                logger.error("run %s: settling its request in doubt failed: %s", run_id, result,
                             extra={"event": "run.in_doubt_failed", "run_id": run_id})
        return sum(result is True for result in results)
    finally:
        await service.release(run_ids)


async def expire_stale(service: Service) -> int:
    """Give up on runs that waited longer than the run timeout for a provider callback."""
    limit = service.settings.run_timeout_seconds
    cutoff = service.clock() - limit
    done = 0
    run_ids = await service.claim(Claim.QUIET, cutoff)
    for run_id in run_ids:
        async with service.locks.hold(run_id):
            stored = await service.store.load(run_id)
            if stored is None or stored.state.updated_at >= cutoff:
                continue
            entry = await service.flow_of(stored.state)
            if entry is None:
                continue
            logger.warning("run %s: no callback for %g s; giving up", run_id, limit)
            state, version, effects = await service.advance(entry, stored, Expired(limit))
            await service.perform(entry, state, version, effects)
            done += 1
    await service.release(run_ids)
    return done


async def sweep_forever(service: Service) -> None:
    """Sweep every quarter of the shorter deadline (between 50 ms and 5 s), until cancelled;
    reconciliation on the same beat in a loop of its own, so that a slow provider API
    answering its lookups never holds up the in-doubt rule and the run timeout."""
    settings = service.settings
    deadlines = [settings.in_doubt_seconds, settings.run_timeout_seconds]
    if settings.reconcile_seconds > 0:
        deadlines.append(settings.reconcile_seconds)
    interval = min(max(min(deadlines) / 4, 0.05), 1.0)  # a stopped process's queue is sent within 1 s
    loops = [_every(interval, sweep_queues, service, "sweep"),
             _every(interval, settle_in_doubt, service, "in-doubt sweep"),  # provider lookups: a loop of its own
             _every(interval, fire_timers, service, "timers"),  # its own loop: a slow provider never delays it
             _every(settings.lease_seconds / 3, renew, service, "lease renewal"),
             _every(TICK, pace_campaigns, service, "campaigns"),  # engine/service/campaigns.py
             _every(PRUNE_INTERVAL, prune_revisions, service, "revision pruning")]
    if settings.reconcile_seconds > 0:
        loops.append(_every(interval, reconcile, service, "reconciliation"))
    await asyncio.gather(*loops)


async def renew(service: Service) -> int:
    """Extend the leases of the runs this process is working on (those it holds a lock for)."""
    run_ids = service.locks.held()
    if not run_ids:
        return 0
    return await service.store.renew(service.owner, service.clock() + service.settings.lease_seconds, run_ids)


async def _every(interval: float, job, service: Service, what: str) -> None:
    while True:
        try:
            await job(service)
        except asyncio.CancelledError:
            raise
        except StoreError as e:  # the store is down (disk full...): try again next time, quietly
            logger.warning("%s: %s", what, e)
        except Exception:
            logger.exception("%s failed", what)
        await asyncio.sleep(interval)
