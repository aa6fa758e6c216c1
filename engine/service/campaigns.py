"""Pacing outbound campaigns in `callflow serve`: a sweeper job (`pace_campaigns`, every
`TICK`), never an in-memory loop, so a campaign goes on across restarts and processes.

Each tick claims the running campaigns (`claim_campaigns`: a lease on the campaign row, as
on run rows; one process paces a campaign at a time, a dead process's lease expires and
another takes over), then for each: inside its calling window (in its time zone), it counts
the rows in flight (marking done those whose run finished) and the starts of the last second,
asks `starts_allowed` (engine/campaign_pace.py) how many may start now, and starts that many
pending rows in line order through `Service.trigger`, side by side; a row refused with
`QueueFull` waits for a later tick.

No row starts twice: each start goes through `trigger` under an idempotency key of its own
(the campaign and the CSV line), written with the run in one transaction, and the row is
marked started with the run id right after. A crash between the two leaves the row pending;
the next tick's trigger under the same key creates nothing and returns the same run, which
is then recorded. Two processes pacing one campaign at once (a lease that expired under a
stalled holder) get the same runs the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import weakref

from engine.campaign_pace import (
    next_start,
    parse_window,
    starts_allowed,
    window_seconds,
)
from engine.errors import QueueFull
from engine.service.campaign_store import PacedCampaign
from engine.service.runs import Service
from engine.service.store import IdempotencyKey

logger = logging.getLogger("callflow.server")  # one logger name for the whole service

TICK = 0.05  # seconds between pacing ticks: at 100 starts/s, five a tick
IDLE_TICK = 1.0  # with no campaign running, look again this often (a new one here: `wake`)
_idle_until: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # service -> when to look again


def wake(service: Service) -> None:
    """A campaign was created or resumed through this process: pace from the next tick on."""
    _idle_until.pop(service, None)
KEY_TTL = 24 * 3600.0  # the row's key only has to outlive the moment between the start and its record


def row_key(campaign_id: str, line: int, payload: dict, now: float) -> IdempotencyKey:
    """The idempotency key of a row's start: scoped to the campaign, one per CSV line."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return IdempotencyKey(f"campaign/{campaign_id}", str(line), hashlib.sha256(body.encode()).hexdigest(), now,
                          now - KEY_TTL)


async def pace_campaigns(service: Service) -> int:
    """One tick: claim the running campaigns and start what each may start now."""
    claim = getattr(service.store, "claim_campaigns", None)  # a store without campaigns (a test's)
    if service.stopping or claim is None or service.clock() < _idle_until.get(service, 0.0):
        return 0
    now = service.clock()
    claimed = await claim(now=now, owner=service.owner,
                                                  lease_until=now + service.settings.lease_seconds)
    if not claimed:  # nothing to pace: no store call every 50 ms while no campaign runs
        _idle_until[service] = now + IDLE_TICK
    started = 0
    for campaign in claimed:
        started += await pace(service, campaign)
    return started


async def pace(service: Service, campaign: PacedCampaign) -> int:
    """Start the rows `campaign` may start now; returns how many started."""
    store = service.store
    entry = service.flows.get(campaign.flow_id)
    if entry is None:  # this process does not serve the flow (any more): nothing to start it with
        return 0
    now = service.clock()
    if campaign.window and not parse_window(campaign.window, campaign.timezone).is_open(now):
        return 0
    in_flight, recent, pending = await store.pace_counts(campaign.id, now - window_seconds(campaign.rate))
    if not pending:
        if not in_flight:
            await store.set_campaign_status(campaign.id, "done", ("running",))
        return 0
    allowed = starts_allowed(campaign.rate, campaign.next_at, now, recent, in_flight, campaign.max_in_flight)
    if allowed <= 0:
        return 0
    rows = await store.pending_rows(campaign.id, allowed)
    # Side by side: their creates and records share the store's group commits (one after the
    # other, a tick's starts took a commit each, ~40 starts/s at most).
    outcomes = await asyncio.gather(*(_start_row(service, campaign, line, payload, now) for line, payload in rows))
    started = sum(outcomes)
    await store.set_next_at(campaign.id, next_start(campaign.rate, campaign.next_at, now, started))
    return started


async def _start_row(service: Service, campaign: PacedCampaign, line: int, payload: dict, now: float) -> bool:
    try:
        keyed = await service.trigger(campaign.flow_id, payload, row_key(campaign.id, line, payload, now))
    except QueueFull:  # this process has enough requests unanswered: a later tick starts it
        return False
    # Recorded after the run exists (its start time then bounds the run's creation from above).
    await service.store.mark_started(campaign.id, line, keyed.run_id, service.clock())
    return True
