"""In doubt, reconciled by absence: a Call request that may have been written but got no
answer (its process was killed between the sent mark and the response) is settled by
asking the provider, instead of failing the node.

After `CALLFLOW_IN_DOUBT_SECONDS` with no callback proving the call (a callback of it would
have moved the run on), the sweeper (engine/service/sweeper.py) looks for calls from the
request's `from` to its `to` placed since the request was recorded (which is before its sent
mark: the window only errs towards finding more), with the Call API's lookups the official
SDK makes (`queued_calls.list_ids`/`get`, `live_calls.list_ids(from_number, to_number)`/`get`,
`calls.list(from_number, to_number, end_time__gte)`):

* none, on two looks `LOOK_APART` seconds apart (a call placed is queued at once; the second
  look gives a slow provider's queue time to show it): the request never reached the
  provider; it is sent again, **once**: the wait is saved as `resent` (under the version
  check, so of two processes only one resends) and the request handed back as unsent, so
  the usual path sends it (rebuilt exactly as recorded, engine/resend.py). A resent request
  that is in doubt again and absent again fails the node: never a second resend;
* exactly one call that no other run holds (`Store.find_by_call`): the request went through;
  the run adopts the call (its uuid becomes the Call's `request_uuid`, as if the 201 had
  come) and goes on; its callbacks, or reconciliation, tell the rest;
* several such calls (two runs calling one number from one caller id at once cannot be told
  apart: the lookups name no answer URL): the node fails as before (`Response(in_doubt=True)`:
  "not resent");
* no usable answer from the provider (an error, no answer in time, or a list too long to read
  to its end: absence is only concluded from complete lists): it stays in doubt and is looked
  at again; after `BOUND` (6) grace periods in doubt the node fails as before.

Each decision is logged and counted (`callflow_reconciliations{found}`: absent, resent,
adopted, ambiguous, unknown, gave_up). Requests other than a Call (http_request, send_sms)
cannot be asked about: they fail after the grace period, as before.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from engine.events import Response
from engine.service.reconcile import LOOKUP_SECONDS, Unknown, _get
from engine.service.runs import Service
from engine.state import WaitReason

logger = logging.getLogger("callflow.server")

BOUND = 6  # grace periods in doubt before the node fails anyway (a provider slow to answer its lookups)
CLOCK_SKEW = 2.0  # seconds: the provider's clock may run behind ours


def look_apart(grace: float) -> float:
    """Seconds between the two looks that find no call: a quarter of the grace, at most 5 s
    (a call the provider accepted shows as queued at once; the wait covers its own lag)."""
    return min(5.0, grace / 4)


def call_request(state) -> tuple[str, str] | None:
    """(from, to) of the Call API request the run waits on, None for any other request (or a
    call to several destinations at once)."""
    record = state.requests[-1] if state.requests else {}
    body = record.get("json") if isinstance(record, dict) else None
    url = str(record.get("url", "")) if isinstance(record, dict) else ""
    if record.get("method") != "POST" or not url.rstrip("/").endswith("/Call") or not isinstance(body, dict):
        return None
    src, dst = str(body.get("from") or ""), str(body.get("to") or "")
    return (src, dst) if src and dst and "<" not in dst else None


def _epoch(text) -> float | None:
    """A lookup's time (`2026-01-02 10:00:00[.ffffff][+05:30]`, UTC when no offset) or None."""
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _since(value, since: float) -> bool:
    when = _epoch(value)
    return when is None or when >= since  # an unreadable time counts as recent: find more, not fewer


def _same(a, b) -> bool:
    return str(a or "").lstrip("+") == str(b or "").lstrip("+")


class Shared:
    """The lookups that name no number (the queued calls and each one's detail), made once per
    sweep tick for all the runs it settles: one answer, awaited by all of them."""

    def __init__(self, service: Service):
        self.service = service
        self.answers: dict[str, asyncio.Future] = {}

    async def get(self, path: str, params: dict) -> dict | None:
        key = path + "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        if key not in self.answers:
            self.answers[key] = asyncio.ensure_future(_get(self.service, path, params))
        return await asyncio.shield(self.answers[key])


PAGE = 20  # Plivo's largest page of a list
MAX_PAGES = 10  # pages read per list: beyond, absence cannot be proven (Unknown)


async def _pages(get, path: str, params: dict, key: str) -> list:
    """Every item of a paged list (`key`: "calls" or "objects"), all of it or Unknown: a call
    on a page not read could be the one looked for."""
    items: list = []
    for page in range(MAX_PAGES):
        answer = await get(path, {**params, "limit": PAGE, "offset": page * PAGE}) or {}
        got = answer.get(key) or []
        items += got
        total = (answer.get("meta") or {}).get("total_count")
        if len(got) < PAGE or (isinstance(total, int) and len(items) >= total):
            return items
    raise Unknown(f"more than {MAX_PAGES * PAGE} calls listed at {path}: cannot tell")


async def calls_since(service: Service, src: str, dst: str, since: float, shared: Shared | None = None) -> list[str]:
    """The uuids of the calls from `src` to `dst` queued, live or ended since `since`: every
    one of them (the lists are read to their end), or Unknown."""
    found: list[str] = []
    shared = shared or Shared(service)
    for uuid in await _pages(shared.get, "Call/", {"status": "queued"}, "calls"):
        detail = await shared.get(f"Call/{uuid}/", {"status": "queued"})
        if detail and _same(detail.get("from"), src) and _same(detail.get("to"), dst) \
                and _since(detail.get("session_start"), since):
            found.append(str(detail.get("request_uuid") or uuid))
    live = (await _get(service, "Call/", {"status": "live", "from_number": src, "to_number": dst}) or {}).get("calls")
    if len(live or []) > MAX_PAGES * PAGE:
        raise Unknown(f"{len(live)} live calls from {src} to {dst}: cannot tell")
    for uuid in live or []:
        detail = await _get(service, f"Call/{uuid}/", {"status": "live"})
        if detail and _since(detail.get("session_start"), since):
            found.append(str(detail.get("request_uuid") or uuid))
    window = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S")
    ended = await _pages(lambda path, params: _get(service, path, params), "Call/",
                         {"from_number": src, "to_number": dst, "end_time__gte": window}, "objects")
    for record in ended:
        if isinstance(record, dict) and _since(record.get("initiation_time"), since):
            found.append(str(record.get("call_uuid")))
    return list(dict.fromkeys(found))


async def _unclaimed(service: Service, run_id: str, uuids: list[str]) -> list[str]:
    """The calls no other run holds (a run's call_uuid column names its call once known)."""
    out = []
    for uuid in uuids:
        holder = await service.store.find_by_call(uuid)
        if holder in (None, run_id):
            out.append(uuid)
    return out


def _decided(service: Service, run_id: str, found: str, message: str, *args) -> None:
    service.observe.metrics.reconciled(found)
    logger.warning("run %s: " + message, run_id, *args,
                   extra={"event": "run.in_doubt", "run_id": run_id, "found": found})


async def settle(service: Service, run_id: str, now: float, grace: float, shared: Shared | None = None) -> bool:
    """One claimed run in doubt: look it up, resend, adopt, wait or fail. True if it moved."""
    stored = await service.store.load(run_id)
    if stored is None:
        return False
    state = stored.state
    waiting = state.waiting
    if waiting is None or waiting.reason is not WaitReason.RESPONSE or state.updated_at >= now - grace:
        return False
    entry = await service.flow_of(state)
    if entry is None:
        return False
    facts = call_request(state)
    if facts is None or now - state.updated_at >= BOUND * grace:
        if facts is not None:
            _decided(service, run_id, "gave_up", "its Call request stayed in doubt for %g s: not resent",
                     now - state.updated_at)
        return await fail(service, run_id, grace, version=stored.version)
    if service.doubt_after.get(run_id, 0.0) > now:
        return False
    try:
        async with asyncio.timeout(LOOKUP_SECONDS):
            uuids = await _unclaimed(service, run_id,
                                     await calls_since(service, *facts, state.updated_at - CLOCK_SKEW, shared))
    except (TimeoutError, Unknown) as e:
        service.doubt_after[run_id] = now + look_apart(grace)
        _decided(service, run_id, "unknown", "its Call request is in doubt and looking it up failed (%s)",
                 str(e) or "no answer in time")
        return False
    if len(uuids) == 1:
        return await adopt(service, run_id, stored.version, uuids[0])
    if uuids:  # one of them may be its own: never resent, and none can be adopted
        _decided(service, run_id, "ambiguous", "its Call request is in doubt; %d calls from %s to %s since: "
                 "cannot tell which is its own, not resent", len(uuids), *facts)
        return await fail(service, run_id, grace, version=stored.version)
    first = service.absent_since.setdefault(run_id, now)
    if now - first < look_apart(grace):
        service.doubt_after[run_id] = first + look_apart(grace)
        _decided(service, run_id, "absent", "its Call request is in doubt and the provider shows no call "
                 "from %s to %s: looking again in %g s", *facts, look_apart(grace))
        return False
    return await resend(service, run_id, stored.version, grace)


def forget(service: Service, run_id: str) -> None:
    service.absent_since.pop(run_id, None)
    service.doubt_after.pop(run_id, None)


async def resend(service: Service, run_id: str, version: int, grace: float) -> bool:
    """No call on two looks: send the request again, once (saved as `resent` first: a crash
    after this leaves it in doubt, never sent twice)."""
    forget(service, run_id)
    async with service.locks.hold(run_id):
        fresh = await service.store.load(run_id)
        if fresh is None or fresh.version != version:
            return False  # it moved meanwhile
        state = fresh.state
        if state.waiting.resent:
            _decided(service, run_id, "gave_up", "its resent Call request is in doubt again and the provider "
                     "shows no call: not sent a third time")
            return await fail(service, run_id, grace, held=True)
        state.waiting.resent = True
        state.updated_at = service.clock()  # the resent request has a grace period of its own
        try:
            await service.store.save(state, version, service.lease())
        except Exception:  # a Conflict (another process moved it) or the store is down: not resent
            return False
        await service.store.mark_sent(run_id, state.waiting.seq, service.owner, sent=False)
        await service.let_go(run_id)  # unsent and free: the sweeper's next claim sends it
    _decided(service, run_id, "resent", "its Call request was in doubt and the provider shows no call on two "
             "looks: sending it again (once)")
    return True


async def adopt(service: Service, run_id: str, version: int, uuid: str) -> bool:
    """The provider shows the call: the run takes it as the answer its request never got."""
    forget(service, run_id)
    async with service.locks.hold(run_id):
        fresh = await service.store.load(run_id)
        entry = await service.flow_of(fresh.state) if fresh is not None else None
        if fresh is None or entry is None or fresh.version != version:
            return False
        body = {"message": "call fired", "request_uuid": uuid, "api_id": "",
                "callflow_reconciled": "adopted: the provider shows this call, placed since the request"}
        event = Response(status=201, body=body, seq=fresh.state.waiting.seq)
        state, version, effects = await service.advance(entry, fresh, event, patient=True)
        await service.perform(entry, state, version, effects)
    _decided(service, run_id, "adopted", "its Call request was in doubt; the provider shows call %s: adopted", uuid)
    return True


async def fail(service: Service, run_id: str, grace: float, held: bool = False, version: int | None = None) -> bool:
    """The in-doubt rule as before: `Response(in_doubt=True)`, the node takes failed.
    `version`: the one the decision was taken on; a run saved since (a callback of its own
    call moved it on during the lookups) is left alone: the decision is stale."""
    forget(service, run_id)
    if not held:
        async with service.locks.hold(run_id):
            return await fail(service, run_id, grace, held=True, version=version)
    stored = await service.store.load(run_id)
    entry = await service.flow_of(stored.state) if stored is not None else None
    if stored is None or entry is None or (version is not None and stored.version != version) \
            or stored.state.waiting is None \
            or stored.state.waiting.reason is not WaitReason.RESPONSE:
        return False
    logger.warning("run %s: request of node %s in doubt for %g s: not resent, taking failed",
                   run_id, stored.state.waiting.node, grace)
    event = Response(error=f"no response recorded within {grace:g} s", in_doubt=True)
    state, version, effects = await service.advance(entry, stored, event)
    await service.perform(entry, state, version, effects)
    return True
