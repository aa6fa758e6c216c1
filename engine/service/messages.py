"""`POST /callbacks/inbound-message/{flow_id}`: an incoming SMS starts a run (the trigger's
`message` outcome), as Plivo posts it to a number's application message URL.

The request is checked in this order, so that an unsigned request learns nothing about the
flows here: the V3 signature over CALLFLOW_PUBLIC_URL + path and the form parameters
(403; the body is capped, engine/service/http.py; the connection's limits are
engine/service/limits.py's), the flow (404), its trigger routing `message` (422: the flow
exists, it is the number's application that points at the wrong flow), the parameters
(400: `From` and `MessageUUID` present, every value text as a payload's are).

A retried or replayed webhook starts no second run: the run is created under the key
`MessageUUID` in the store's idempotency keys (scope `message:{flow_id}`), atomically with
the run (SQLite's savepoint, PostgreSQL's unique key), for as long as trigger keys live (a
day; Plivo retries within minutes). The answer is 200 with an empty body as soon as the run
is stored (its requests, a `send_sms` reply, go on in the background), for the first
delivery and for each repeat, its `X-Callflow-Run-Id` header naming the run (the sandbox
and `callflow message` show it; Plivo ignores it). A reply is an SMS sent by the flow's `send_sms` through the
Message API, never Message XML in this answer, so that every reply is in the run record.
"""

from __future__ import annotations

from starlette.requests import Request as HttpRequest
from starlette.responses import Response as HttpResponse

from engine.errors import HttpError, QueueFull
from engine.events import InboundMessage, payload_problems
from engine.local.incoming import RUN_HEADER
from engine.service.api import IDEMPOTENCY_TTL
from engine.service.callbacks import signed_params
from engine.service.http import error
from engine.service.runs import Service, service_of
from engine.service.store import IdempotencyKey, KeyedRun

PATH = "/callbacks/inbound-message/"
REQUIRED = ("From", "MessageUUID")  # what Plivo always sends, and what the run cannot do without


def checked_params(params: dict) -> dict:
    """The webhook's parameters if a run can start from them; raises HttpError(400)."""
    missing = [key for key in REQUIRED if not params.get(key)]
    if missing:
        raise HttpError(400, f"an incoming message needs {' and '.join(missing)} (Plivo's message URL parameters)")
    problems = payload_problems(params, allow_null=False)
    if problems:
        raise HttpError(400, problems[0][1].replace("payload", "message parameter", 1))
    return params


async def start_by_message(service: Service, flow_id: str, params: dict) -> KeyedRun:
    """Start `flow_id`'s run for this message, once per MessageUUID; the run (`created`
    False: a repeat, the run the first delivery started)."""
    now = service.clock()
    key = IdempotencyKey(f"message:{flow_id}", params["MessageUUID"], "", now, now - IDEMPOTENCY_TTL)
    # A repeat is logged and counted as a trigger replayed under its key (`trigger.replayed`).
    return await service.trigger(flow_id, {}, key, start=InboundMessage(params))


async def inbound_message(request: HttpRequest):
    try:
        params = await signed_params(request)
    except HttpError as e:
        return error(e.status, e.message)
    service = service_of(request)
    flow_id = request.path_params["flow_id"]
    entry = service.flows.get(flow_id)
    if entry is None:
        return error(404, f"no flow {flow_id!r} here")
    if entry.flow.start_target(InboundMessage) is None:
        return error(422, f"flow {flow_id!r} takes no incoming messages: its trigger {entry.flow.trigger!r} routes "
                          "no `message` outcome")
    try:
        keyed = await start_by_message(service, flow_id, checked_params(params))
    except HttpError as e:
        return error(e.status, e.message)
    except QueueFull as e:  # nothing was stored: Plivo delivers it again later
        return error(503, e.message, {"Retry-After": f"{e.retry_after:.0f}"})
    return HttpResponse(b"", status_code=200, headers={RUN_HEADER: keyed.run_id})
