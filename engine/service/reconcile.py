"""Reconciliation: a run whose call went quiet asks the provider about the call.

A run waiting for a callback of its call (the answer, digits, the hangup) that has heard
nothing for `CALLFLOW_RECONCILE_SECONDS` (default 60; 0 turns it off) has its call looked
up in the provider's Call API, the lookups the official SDK makes (`queued_calls.get`,
`live_calls.get`/`list_ids`, `calls.get`), instead of waiting for the run timeout (4 h):

* by `request_uuid` while the call has no known CallUUID (Plivo shows a call it placed
  under its request_uuid; failing that, the live calls from our number to the callee are
  listed and matched by their `request_uuid`), by CallUUID once a callback brought it;
* queued, ringing or in progress: the call goes on, the run keeps waiting (its wait counts
  from this lookup, so the run timeout does not cut a live call short). A call in progress
  whose answer callback never came is not "answered" here: the document the flow would
  build could never be played, so the run waits for the call's end instead;
* ended: its record (CDR) becomes the hangup callback that went missing (status and cause
  from the record, `CallflowReconciled=true` among the params), so the node takes busy,
  no_answer or failed, or the run completes with the call's duration and cause;
* found nowhere twice, `CALLFLOW_RECONCILE_SECONDS` apart: a hangup with status `failed`.

The results go into the executor as the `Callback` events it already understands
(`Service.advance`), so the pure core stays the one path. The lookups are made here, by the
sweeper, not as `Request` effects: they belong to no node's step, must not enter the run's
record of intent (`state.requests`) nor its in-doubt rule, and when to look is the shell's
clock, like the run timeout.

Not looked up: a request in doubt (no request_uuid came back, and a call's lookups return
neither its answer_url nor anything else that names our run, so a matching call cannot be
told from another run's call to the same number): today's in-doubt rule stays (a callback
proves the request went through, else `failed` after CALLFLOW_IN_DOUBT_SECONDS). Calls to
several destinations at once are left to their callbacks and the run timeout.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from engine.errors import Conflict, ProviderError
from engine.events import Callback, CallbackKind
from engine.service.call_records import hangup_params
from engine.service.runs import Service
from engine.service.store import Claim, StoredRun
from engine.state import RunState, WaitReason

logger = logging.getLogger("callflow.server")

CALL_WAITS = (WaitReason.CALL, WaitReason.INPUT, WaitReason.HANGUP)
MAX_LOOKUPS_PER_TICK = 20  # runs looked up per sweep: bounded traffic to the provider's API
LIVE_MATCHES = 20  # live calls examined when matching by request_uuid (one page of Plivo's list)
LOOKUP_SECONDS = 10.0  # all the lookups for one run; each GET within the provider's request timeout


@dataclass
class Finding:
    """What the provider says about a call: queued, live, ended or missing, with its JSON."""

    state: str
    data: dict = field(default_factory=dict)


class Unknown(Exception):
    """The provider gave no usable answer; look again later."""


async def _get(service: Service, path: str, params: dict | None = None) -> dict | None:
    """A lookup's JSON for a 200, None for a 404; Unknown otherwise."""
    try:
        status, body = await service.provider.lookup(path, params)
    except ProviderError as e:
        raise Unknown(str(e)) from None
    if status == 404:
        return None
    if status != 200 or not isinstance(body, dict):
        raise Unknown(f"the Call API answered {status}")
    return body


async def find_call(service: Service, call_uuid: str | None, request_uuid: str | None,
                    src: str, dst: str) -> Finding:
    """Where the call is, by its CallUUID if known, else by its request_uuid."""
    ident = call_uuid or request_uuid
    if not call_uuid:
        queued = await _get(service, f"Call/{request_uuid}/", {"status": "queued"})
        if queued is not None:
            return Finding("queued", queued)
    live = await _get(service, f"Call/{ident}/", {"status": "live"})
    if live is not None:
        return Finding("live", live)
    if not call_uuid:
        listed = await _get(service, "Call/", {"status": "live", "from_number": src, "to_number": dst}) or {}
        for uuid in (listed.get("calls") or [])[:LIVE_MATCHES]:
            detail = await _get(service, f"Call/{uuid}/", {"status": "live"})
            if detail is not None and detail.get("request_uuid") == request_uuid:
                return Finding("live", detail)
    ended = await _get(service, f"Call/{ident}/")
    if ended is not None and (not call_uuid or ended.get("call_uuid") in (None, call_uuid)):
        return Finding("ended", ended)
    return Finding("missing")


def _call_facts(state: RunState) -> tuple[str | None, str | None, str, str] | None:
    """(call_uuid, request_uuid, from, to) of the run's call, None when it cannot be looked up."""
    call = state.call
    if call is None or call.ended or call.legs != 1:
        return None
    outputs = state.variables.get(call.node)
    outputs = outputs if isinstance(outputs, dict) else {}
    request_uuid = outputs.get("request_uuid")
    request_uuid = request_uuid if isinstance(request_uuid, str) and request_uuid else None
    if not (call.uuid or request_uuid):
        return None
    return call.uuid, request_uuid, str(outputs.get("from") or ""), str(outputs.get("to") or "")


async def reconcile(service: Service) -> int:
    """Look up the calls of runs that heard nothing from them for the grace period; returns
    how many runs moved (an event fed). The lookups are made without holding the run's
    lock (a callback arriving meanwhile is answered at once); what they found is applied
    only if the run did not move in the meantime."""
    grace = service.settings.reconcile_seconds
    if grace <= 0:
        return 0
    now = service.clock()
    moved = looked = 0
    run_ids = await service.claim(Claim.QUIET, now - grace, limit=MAX_LOOKUPS_PER_TICK * 5)
    try:
        for run_id in run_ids:
            if looked >= MAX_LOOKUPS_PER_TICK:
                break
            if service.reconcile_after.get(run_id, 0.0) > now:
                continue
            tried, applied = await _reconcile_one(service, run_id, now, grace)
            looked, moved = looked + tried, moved + applied
    finally:
        await service.release(run_ids)
    return moved


async def _reconcile_one(service: Service, run_id: str, now: float, grace: float) -> tuple[int, int]:
    """(looked up?, moved?) for one claimed run."""
    stored = await service.store.load(run_id)
    if stored is None:
        return 0, 0
    state = stored.state
    waiting, facts = state.waiting, _call_facts(state)
    entry = await service.flow_of(state)
    if waiting is None or waiting.reason not in CALL_WAITS or facts is None or entry is None \
            or state.updated_at >= now - grace:
        return 0, 0
    finding = await _look_up(service, run_id, facts, now, grace)
    if finding is None:
        return 1, 0
    async with service.locks.hold(run_id):
        fresh = await service.store.load(run_id)
        if fresh is not None and fresh.version == stored.version:  # nothing happened meanwhile
            return 1, await _apply(service, entry, fresh, finding, facts[0], now, grace)
    return 1, 0


async def _look_up(service: Service, run_id: str, facts, now: float, grace: float) -> Finding | None:
    """The provider's answer about the run's call, None (and a later retry) when none came."""
    try:
        async with asyncio.timeout(LOOKUP_SECONDS):
            finding = await find_call(service, *facts)
        service.observe.metrics.reconciled(finding.state)
        return finding
    except (TimeoutError, Unknown) as e:
        error = str(e) or f"no answer within {LOOKUP_SECONDS:g} s"
    service.observe.metrics.reconciled("unknown")
    logger.warning("run %s: looking up its call failed (%s); trying again in %g s", run_id, error, grace)
    service.reconcile_after[run_id] = now + grace
    return None


async def _apply(service: Service, entry, stored: StoredRun, finding: Finding, call_uuid: str | None,
                 now: float, grace: float) -> int:
    """What the finding means for the run: keep waiting (0), or its call's hangup fed (1)."""
    run_id = stored.state.run_id
    if finding.state in ("queued", "live"):
        service.missing_since.pop(run_id, None)
        await _touch(service, stored, now)
        return 0
    if finding.state == "missing":
        first = service.missing_since.setdefault(run_id, now)
        if now - first < grace:
            service.reconcile_after[run_id] = now + grace
            return 0
        params = {"CallUUID": call_uuid or "", "CallStatus": "failed", "Event": "Hangup", "Duration": "0",
                  "HangupCause": "the provider has no record of this call", "CallflowReconciled": "true"}
    else:
        params = hangup_params(finding.data, call_uuid)
    service.missing_since.pop(run_id, None)
    service.reconcile_after.pop(run_id, None)
    logger.warning("run %s: no callback from its call for %g s; the provider says it %s (%s): delivering its hangup",
                   run_id, grace, "ended" if finding.state == "ended" else "is unknown", params["HangupCause"])
    event = Callback(CallbackKind.HANGUP, stored.state.call.seq, params)
    state, version, effects = await service.advance(entry, stored, event)
    await service.perform(entry, state, version, effects)
    return 1


async def _touch(service: Service, stored: StoredRun, now: float) -> None:
    """The call goes on: its wait counts from now (the run timeout does not cut it short),
    within twice the run timeout of the run's start."""
    state = stored.state
    if now - state.created_at >= service.settings.run_timeout_seconds:
        return
    state.updated_at = now
    try:
        await service.store.save(state, stored.version)
    except Conflict:
        pass  # something else moved the run meanwhile: nothing to add
