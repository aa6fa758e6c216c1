"""The JSON API of `callflow serve`, all behind the trigger API's Basic auth:

  POST /v1/account/{auth_id}/phlo/{flow_id}/   run a flow (PHLO runner API)
  GET  /v1/phlo/{flow_id}/                      PHLO-style flow info (the SDK's get())
  GET  /v1/runs/{run_id}, GET /v1/runs          run records, run summaries (paged; ?flow_id=,
                                                ?status=, ?number= either end of the run's call)
  GET  /v1/flows                                the loaded flows

Module-level endpoints: each finds the `Service` in `request.app.state` (`service_of`).
"""

from __future__ import annotations

import hashlib
import json
import uuid

from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse

from engine.errors import HttpError, QueueFull
from engine.events import payload_problems
from engine.jsontext import loads_json_strict
from engine.service.auth import authorized
from engine.service.deploy import flows_listing, reload_flows
from engine.service.http import MAX_BODY, deny, error, read_body
from engine.service.readback import readable_json, valid_cursor
from engine.service.runs import service_of
from engine.service.store import IdempotencyKey, phone_number

RUN_STATUSES = ("running", "waiting", "completed", "failed")
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
IDEMPOTENCY_TTL = 24 * 3600.0  # a key answers with its run for a day, as Stripe's do
MAX_NUMBER_LENGTH = 256  # ?number=: a SIP URI at most


async def run_flow(request: HttpRequest):
    if not authorized(request, request.path_params["auth_id"]):
        return deny()
    service = service_of(request)
    flow_id = request.path_params["flow_id"]
    try:
        raw = await read_body(request, MAX_BODY)
        entry = service.flows.get(flow_id)  # after the await: a reload may have removed it meanwhile
        if entry is None:
            return error(404, f"no flow with id {flow_id!r}")
        payload = parse_payload(raw)
    except HttpError as e:
        return error(e.status, e.message)
    missing = entry.flow.missing_payload(payload)
    if missing:
        # 400, as PHLO answers a missing parameter: the official SDK raises ValidationError with the text.
        return error(400, f"the run request must supply {', '.join(missing)} "
                          f"(required by {entry.flow.trigger})")
    try:
        key = idempotency_key(request, flow_id, payload, service.clock())
    except HttpError as e:
        return error(e.status, e.message)
    try:
        keyed = await service.trigger(flow_id, payload, key)
    except QueueFull as e:  # nothing was stored: the client sends it again later
        return error(429, e.message, {"Retry-After": f"{e.retry_after:.0f}"})
    if key is not None and not keyed.created:
        if keyed.fingerprint != key.fingerprint:
            return error(422, "this Idempotency-Key was already used with a different request body "
                              "(use a new key for a new run)")
        return started(flow_id, keyed.run_id, {"Idempotent-Replayed": "true"})
    return started(flow_id, keyed.run_id)


def started(flow_id: str, run_id: str, headers: dict | None = None) -> JSONResponse:
    """The trigger's 201, the same for the first answer and for a replay under its key."""
    return JSONResponse({"phlo_id": flow_id, "api_id": run_id, "message": "run started"}, status_code=201,
                        headers=headers)


def idempotency_key(request: HttpRequest, flow_id: str, payload: dict, now: float) -> IdempotencyKey | None:
    """The request's `Idempotency-Key` (draft-ietf-httpapi-idempotency-key): at most 255
    characters of visible ASCII, scoped to the account and the flow, with a fingerprint of
    the payload (as JSON with sorted keys: the same values in another order or spacing are
    the same body). None without the header."""
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    if not 0 < len(raw) <= MAX_KEY_LENGTH or not all("!" <= c <= "~" for c in raw):
        raise HttpError(400, f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters "
                             "(no spaces)")
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    fingerprint = hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
    scope = f"{request.path_params['auth_id']}/{flow_id}"
    return IdempotencyKey(scope, raw, fingerprint, now, now - IDEMPOTENCY_TTL)


async def get_phlo(request: HttpRequest):
    if not authorized(request):
        return deny()
    flow_id = request.path_params["flow_id"]
    entry = service_of(request).flows.get(flow_id)
    if entry is None:
        return error(404, f"no flow with id {flow_id!r}")
    return JSONResponse({"api_id": str(uuid.uuid4()), "phlo_id": flow_id, "name": entry.flow.name,
                         "created_on": entry.created_on})


async def get_run(request: HttpRequest):
    if not authorized(request):
        return deny()
    stored = await service_of(request).store.load(request.path_params["run_id"])
    if stored is None:
        return error(404, "no run with this id")
    return readable_json(stored.state.record())


async def list_runs(request: HttpRequest):
    if not authorized(request):
        return deny()
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        return error(400, f"status must be one of {', '.join(RUN_STATUSES)}")
    try:
        limit = int(q.get("limit") or 50) if len(q.get("limit") or "") <= 9 else 0
        if limit < 1:
            raise ValueError
    except ValueError:
        return error(400, "limit must be a positive whole number")
    cursor = q.get("cursor") or None
    if cursor is not None and not valid_cursor(cursor):
        return error(400, "cursor: not a cursor this service handed out (use next_cursor from a previous page)")
    number = phone_number(q.get("number"))
    if number is not None and len(number) > MAX_NUMBER_LENGTH:
        return error(400, f"number must be at most {MAX_NUMBER_LENGTH} characters")
    try:
        runs, cursor = await service_of(request).store.list_runs(
            flow_id=q.get("flow_id") or None, status=status, limit=limit, cursor=cursor, number=number)
    except ValueError as e:
        return error(400, str(e))
    return JSONResponse({"api_id": str(uuid.uuid4()), "runs": runs, "next_cursor": cursor})


async def list_flows(request: HttpRequest):
    if not authorized(request):
        return deny()
    service = service_of(request)
    flows = await flows_listing(service)
    # The last reload this process refused (None once one applied): the console's banner.
    return JSONResponse({"api_id": str(uuid.uuid4()), "flows": flows, "refused_reload": service.refused_reload})


async def reload(request: HttpRequest):
    """POST /v1/flows/reload: re-read FLOWS_DIR in this process; 422 with the diagnostics
    (line:col) when any file is invalid, and then nothing changed."""
    if not authorized(request):
        return deny()
    result = await reload_flows(service_of(request))
    return JSONResponse({"api_id": str(uuid.uuid4()), **result.as_dict()}, status_code=200 if result.applied else 422)


def parse_payload(raw: bytes) -> dict:
    """The trigger body: a JSON object of scalar values (may be empty)."""
    if not raw.strip():
        return {}
    try:
        data = loads_json_strict(raw)
    except (ValueError, RecursionError):
        raise HttpError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the request body must be a JSON object of payload values")
    problems = payload_problems(data)
    if problems:
        raise HttpError(400, problems[0][1])
    return data

