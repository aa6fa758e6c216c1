"""`POST /sandbox/inbound` and `/sandbox/inbound-message` on `callflow serve --sandbox`: an
incoming call placed, or an incoming SMS delivered, by the embedded sandbox
(engine/local/sandbox_inbound.py, engine/local/sandbox_message.py), behind the API's Basic
auth (the serve may listen beyond loopback, and the call or message starts a run). The
console's trigger form, `callflow call` and `callflow message` use them. The answer adds the
run started: ``run_id`` and ``run`` (its record, as GET /v1/runs/{id} shows it), or null
when the call or message reached no flow here.

Without --sandbox it is a 404 saying so.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request as HttpRequest

from engine.errors import HttpError
from engine.service.auth import authorized
from engine.service.http import deny, error
from engine.service.readback import readable_json
from engine.service.runs import service_of

SETTLE = 2.0  # seconds to wait for the run to take in the call's hangup (handled as it arrives)


async def sandbox_inbound(request: HttpRequest):
    if not authorized(request):
        return deny()
    sandbox = getattr(request.app.state, "sandbox", None)
    if sandbox is None:
        return error(404, "this service runs without --sandbox: it cannot place simulated incoming calls")
    from engine.local.sandbox_inbound import answer, summary

    state = sandbox.state
    try:
        call = await answer(request, state.core, state.driver, state.app_url)
    except HttpError as e:
        return error(e.status, e.message)
    result = summary(call)
    result["run_id"], result["run"] = await _run_of(request, call.call_uuid, call.request["answer_url"])
    return readable_json(result)


async def _run_of(request: HttpRequest, call_uuid: str, answer_url: str) -> tuple[str | None, dict | None]:
    """The run this service started for the call (when its answer URL is one of ours), once it
    has ended or `SETTLE` seconds have passed."""
    service = service_of(request)
    prefix = service.settings.public_url.rstrip("/") + "/callbacks/inbound/"
    if not answer_url.startswith(prefix):
        return None, None
    flow_id = answer_url[len(prefix):].strip("/")
    run_id = await service.store.find_by_call(call_uuid, flow_id)
    if run_id is None:
        return None, None
    return run_id, await _settled(service, run_id)


async def sandbox_inbound_message(request: HttpRequest):
    if not authorized(request):
        return deny()
    sandbox = getattr(request.app.state, "sandbox", None)
    if sandbox is None:
        return error(404, "this service runs without --sandbox: it cannot deliver simulated incoming messages")
    from engine.local.sandbox_message import answer

    state = sandbox.state
    try:
        result = await answer(request, state.core, state.driver.client, state.app_url)
    except HttpError as e:
        return error(e.status, e.message)
    ours = result["url"].startswith(service_of(request).settings.public_url.rstrip("/") + "/callbacks/")
    run_id = result["run_id"] if ours else None
    result["run"] = await _settled(service_of(request), run_id) if run_id else None
    return readable_json(result)


async def _settled(service, run_id: str) -> dict | None:
    """The run's record once it has ended or `SETTLE` seconds have passed (None: no such run)."""
    end = time.monotonic() + SETTLE
    while True:
        stored = await service.store.load(run_id)
        if stored is None:
            return None
        record = stored.state.record()
        if record["status"] in ("completed", "failed") or time.monotonic() > end:
            return record
        await asyncio.sleep(0.02)
