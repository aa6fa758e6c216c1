"""The Call API's lookups, as the sandbox answers them from its simulated calls.

The same URLs, query parameters and JSON fields as Plivo's (the official SDK's
`calls.get/list`, `live_calls.get/list_ids`, `queued_calls.get/list_ids`):

  GET /v1/Account/{auth_id}/Call/{uuid}/?status=live     a call ringing or in progress:
      {api_id, call_status, call_uuid, caller_name, direction, from, request_uuid, session_start, to}
  GET /v1/Account/{auth_id}/Call/{uuid}/?status=queued   a call requested, not yet ringing:
      the same fields, call_status "queued"
  GET /v1/Account/{auth_id}/Call/{uuid}/                 an ended call's record (CDR):
      {answer_time, api_id, bill_duration, billed_duration, call_direction, call_duration,
       call_uuid, end_time, from_number, hangup_cause_code, hangup_cause_name, hangup_source,
       initiation_time, parent_call_uuid, resource_uri, to_number, total_amount, total_rate}
  GET /v1/Account/{auth_id}/Call/?status=live|queued     {api_id, calls: [uuid, ...]}
      (live: call_direction, from_number, to_number filters; queued: limit, offset)
  GET /v1/Account/{auth_id}/Call/                        ended calls, newest first:
      {api_id, meta: {limit, next, offset, previous, total_count}, objects: [CDR, ...]}
      (call_direction, from_number, to_number, end_time[__gt|__gte|__lt|__lte] as
      `YYYY-MM-DD HH:MM[:ss[.uuuuuu]]` UTC, limit <= 20, offset)

Each lookup answers 404 `{"api_id", "error": "call not found"}` when no call is in that
state. A simulated call's uuid is its request_uuid, as Plivo shows the calls it placed.
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime

from engine.local.sandbox import SandboxCore, SimulatedCall, new_id

# The sandbox's hangup causes (Q.850-style, as its hangup callbacks send them) -> the CDR's
# (hangup_cause_code, hangup_cause_name, hangup_source), after Plivo's table of hangup causes.
CDR_CAUSES = {
    "NORMAL_CLEARING": (4000, "Normal Hangup", "Callee"),
    "USER_BUSY": (3000, "Busy Line", "Callee"),
    "NO_ANSWER": (3020, "No Answer", "Callee"),
    "UNALLOCATED_NUMBER": (2000, "Invalid Destination Address", "Carrier"),
    "MACHINE_DETECTED": (4000, "Normal Hangup", "Plivo"),
}
UNKNOWN_CAUSE = (0, "Unknown", "Error")
PAGE_LIMIT = 20
END_TIME_FILTERS = {"end_time": operator.eq, "end_time__gt": operator.gt, "end_time__gte": operator.ge,
                    "end_time__lt": operator.lt, "end_time__lte": operator.le}
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")


def _time(ts: float | None, micro: bool = False) -> str | None:
    if ts is None:
        return None
    when = datetime.fromtimestamp(ts, UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f") if micro else when.isoformat(sep=" ", timespec="seconds")


def _not_found() -> tuple[int, dict]:
    return 404, {"api_id": new_id(), "error": "call not found"}


def live_or_queued(call: SimulatedCall) -> dict:
    """A call not yet ended, as `live_calls.get` / `queued_calls.get` show it."""
    return {"api_id": new_id(), "call_status": call.phase, "call_uuid": call.call_uuid,
            "caller_name": call.request.get("caller_name", ""), "direction": call.direction,
            "from": call.request.get("from", ""), "request_uuid": call.request_uuid,
            "session_start": _time(call.created_at, micro=True), "to": call.destination}


def cdr(call: SimulatedCall, auth_id: str) -> dict:
    """An ended call's record, as `calls.get` shows it."""
    code, name, source = CDR_CAUSES.get(call.log.get("hangup_cause") or "", UNKNOWN_CAUSE)
    if call.log.get("hangup_cause") and call.log["hangup_cause"] not in CDR_CAUSES:
        name = call.log["hangup_cause"]  # e.g. ANSWER_URL_ERROR: shown as it is
    answered = call.answered_at is not None
    return {"answer_time": _time(call.answered_at), "api_id": new_id(),
            "bill_duration": call.duration, "billed_duration": 60 * -(-call.duration // 60) if answered else 0,
            "call_direction": call.direction, "call_duration": call.duration, "call_uuid": call.call_uuid,
            "end_time": _time(call.ended_at), "from_number": call.request.get("from", ""),
            "hangup_cause_code": code, "hangup_cause_name": name, "hangup_source": source,
            "initiation_time": _time(call.created_at), "parent_call_uuid": None,
            "resource_uri": f"/v1/Account/{auth_id}/Call/{call.call_uuid}/", "to_number": call.destination,
            "total_amount": "0.00000", "total_rate": "0.00300"}


def lookup_call(core: SandboxCore, uuid_: str, status: str | None) -> tuple[int, dict]:
    """GET .../Call/{uuid}/ with `status` live, queued or none (the ended call's record)."""
    call = core.find_call(uuid_)
    if call is None:
        return _not_found()
    if status == "live" and call.phase in ("ringing", "in-progress"):
        return 200, live_or_queued(call)
    if status == "queued" and call.phase == "queued":
        return 200, live_or_queued(call)
    if status not in ("live", "queued") and call.phase == "ended":
        return 200, cdr(call, core.auth_id)
    return _not_found()


def _matches(call: SimulatedCall, params: dict) -> bool:
    direction = params.get("call_direction")
    if direction and call.direction != direction:
        return False
    for key, value in (("from_number", str(call.request.get("from", ""))), ("to_number", call.destination)):
        wanted = str(params.get(key) or "").lstrip("+")  # Plivo matches the number or a prefix of it
        if wanted and not value.lstrip("+").startswith(wanted):
            return False
    return True


def _when(text: str) -> float:
    """`YYYY-MM-DD HH:MM[:ss[.uuuuuu]]` (UTC) as epoch seconds; ValueError otherwise."""
    for form in TIME_FORMATS:
        try:
            return datetime.strptime(text, form).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(text)


def _ended_in(call: SimulatedCall, bounds: list[tuple]) -> bool:
    """Does the call's end time (whole seconds, as its record shows it) pass every bound?"""
    ended = float(int(call.ended_at or 0))
    return all(compare(ended, when) for compare, when in bounds)


def _page(params: dict) -> tuple[int, int]:
    """(limit, offset); ValueError when either is not a whole number in range."""
    limit, offset = int(params.get("limit", PAGE_LIMIT)), int(params.get("offset", 0))
    if not 0 < limit <= PAGE_LIMIT or offset < 0:
        raise ValueError
    return limit, offset


def list_calls(core: SandboxCore, params: dict) -> tuple[int, dict]:
    """GET .../Call/ with `status` live or queued (ids), else the ended calls' records (a page)."""
    status = params.get("status")
    if status == "live":
        ids = [c.call_uuid for c in core.calls if c.phase in ("ringing", "in-progress") and _matches(c, params)]
        return 200, {"api_id": new_id(), "calls": ids}
    try:
        limit, offset = _page(params)
        bounds = [(compare, _when(params[key])) for key, compare in END_TIME_FILTERS.items() if params.get(key)]
    except ValueError:
        return 400, {"api_id": new_id(), "error": f"limit must be 1 to {PAGE_LIMIT}, offset at least 0, and "
                                                  "end_time filters YYYY-MM-DD HH:MM[:ss[.uuuuuu]]"}
    if status == "queued":
        queued = [c.request_uuid for c in core.calls if c.phase == "queued"]
        return 200, {"api_id": new_id(), "calls": queued[offset:offset + limit]}
    ended = [c for c in reversed(core.calls) if c.phase == "ended" and _matches(c, params) and _ended_in(c, bounds)]
    page = ended[offset:offset + limit]
    meta = {"limit": limit, "next": None, "offset": offset, "previous": None, "total_count": len(ended)}
    return 200, {"api_id": new_id(), "meta": meta, "objects": [cdr(c, core.auth_id) for c in page]}
