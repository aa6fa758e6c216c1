"""The provider's requests to `callflow serve`, each signed (X-Plivo-Signature-V3 with the
provider's auth token, for the URL as the provider saw it: CALLFLOW_PUBLIC_URL + path) and
answered with XML:

  GET|POST /callbacks/{run_id}/{seq}/{kind}     a callback of a run's call
  GET|POST /callbacks/inbound/{flow_id}         an incoming call: starts a run
  GET|POST /callbacks/inbound/{flow_id}/hangup  its hangup (the run is found by CallUUID)

An incoming call's run is started (once per call) in engine/service/inbound_calls.py.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request as HttpRequest
from starlette.responses import Response as HttpResponse

from engine.errors import HttpError
from engine.events import CALLBACK_KINDS
from engine.service import inbound_calls
from engine.service.http import MAX_BODY, error, read_body
from engine.service.runs import Service, service_of
from engine.service.signature import HEADER_V3, HEADER_V3_NONCE, validate_v3


async def callback(request: HttpRequest):
    received = time.perf_counter()  # the latency GET /metrics shows counts the signature check too
    try:
        params = await signed_params(request)
    except HttpError as e:
        return error(e.status, e.message)
    kind = request.path_params["kind"]
    if kind not in CALLBACK_KINDS:
        return error(404, f"unknown callback kind {kind!r}")
    document = await service_of(request).callback(request.path_params["run_id"], request.path_params["seq"],
                                                  kind, params, received)
    return xml(document)


async def inbound(request: HttpRequest):
    return await _incoming(request, inbound_calls.inbound)


async def inbound_hangup(request: HttpRequest):
    return await _incoming(request, inbound_calls.inbound_hangup)


async def _incoming(request: HttpRequest, handle: Callable[[Service, str, dict], Awaitable[str]]):
    """A signed request for an incoming call of a flow, answered with what `handle` returns."""
    try:
        params = await signed_params(request)
    except HttpError as e:
        return error(e.status, e.message)
    return xml(await handle(service_of(request), request.path_params["flow_id"], params))


async def signed_params(request: HttpRequest) -> dict:
    """Check the V3 signature for the URL as the provider saw it; return the params."""
    settings = service_of(request).settings
    raw = await read_body(request, MAX_BODY)
    if request.method == "POST":
        signed, flat = _multi(_form(raw))
    else:
        signed, flat = _multi(parse_qsl(request.url.query, keep_blank_values=True))
        signed = None  # GET: validate_v3 reads the params from the URL's query
    path = request.scope.get("raw_path") or request.url.path.encode()
    url = settings.public_url + path.decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    if query:
        url += "?" + query
    ok = validate_v3(request.method, url, signed, request.headers.get(HEADER_V3_NONCE),
                     request.headers.get(HEADER_V3), settings.provider.auth_token)
    if not ok:
        raise HttpError(403, "invalid or missing X-Plivo-Signature-V3")
    return flat


def xml(document: str) -> HttpResponse:
    return HttpResponse(document, media_type="application/xml")


def _form(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "the request body is not form data") from None


def _multi(pairs: list[tuple[str, str]]) -> tuple[dict, dict]:
    """(params for the signature: repeated keys as lists, params for the run: first value)."""
    signed: dict = {}
    flat: dict = {}
    for k, v in pairs:
        if k in signed:
            prev = signed[k]
            signed[k] = prev + [v] if isinstance(prev, list) else [prev, v]
        else:
            signed[k] = v
            flat[k] = v
    return signed, flat
