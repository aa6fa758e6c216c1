"""`POST /sandbox/inbound`: the sandbox originates an incoming call, as a caller dialling a
number that belongs to an application does on Plivo.

Body (JSON object):
  ``from``          the caller, E.164 (``+12025550123``) or a SIP URI; required
  ``url``           the application's answer URL (callflow's: ``{public_url}/callbacks/inbound/{flow_id}``)
  ``to``            the number dialled (default ``+12025551234``); without ``url`` it must be
                    one of the scenario's ``numbers:`` (number -> flow id or answer URL)
  ``hangup_url``    the application's hangup URL (default: ``url`` + ``/hangup``, callflow's)
  ``sip_headers``   ``{"tier": "gold"}``: custom headers the caller's SIP endpoint sends;
                    they reach the app as ``X-PH-tier`` params (an ``X-PH-`` prefix is dropped)
  ``digits``        what the caller presses: one string per prompt, or a list (``"1#"``: 1, then
                    the finish key); default: the scenario's behaviour for the caller
  ``hangup_after``  the caller hangs up this many seconds after the answer

The call is played like every sandbox call (engine/local/call_driver.py): the signed answer
request, the XML it gets back executed, each action/redirect callback, then the hangup. The
request is answered once the call has ended: 200 with what happened (`summary`), 400 with
``{"api_id", "error"}`` for bad input. A flow id (in ``numbers:``) needs the app URL the
sandbox was given: `callflow serve --sandbox` gives its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.errors import HttpError
from engine.fields import did_you_mean
from engine.jsontext import loads_json_strict
from engine.local.call_driver import CallDriver
from engine.local.incoming import APP_URL, DEFAULT_TO, FLOW_ID, parse_sip_headers
from engine.local.sandbox import SandboxCore, SimulatedCall, inbound_call
from engine.scalar_fields import phone_problem
from engine.service.http import error, read_body

__all__ = ["InboundRequest", "answer", "check_body", "inbound", "parse_inbound", "place", "summary"]

KEYS = ("from", "to", "url", "hangup_url", "sip_headers", "digits", "hangup_after")
MAX_BODY = 16 * 1024


@dataclass(frozen=True)
class InboundRequest:
    caller: str
    number: str
    answer_url: str
    hangup_url: str
    headers: dict
    digits: tuple[str, ...] | None = None  # None: the scenario's
    hangup_after: float | None = None


def _digits(raw) -> tuple[str, ...] | None:
    if raw is None:
        return None
    entries = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(d, (str, int)) and not isinstance(d, bool) for d in entries):
        raise HttpError(400, "digits is a string of keys, or a list of them (one per prompt)")
    digits = tuple(str(d) for d in entries)
    if any(c not in "0123456789*#" for d in digits for c in d):
        raise HttpError(400, "digits holds only the keys 0-9, * and #")
    return digits


def _answer_url(body: dict, numbers: dict, app_url: str | None) -> str:
    url = body.get("url")
    if url is not None:
        if not isinstance(url, str) or not APP_URL.fullmatch(url):
            raise HttpError(400, "url must be the application's http(s) answer URL")
        return url
    number = body.get("to")
    target = numbers.get(number) if isinstance(number, str) else None
    if target is None:
        raise HttpError(400, "give url (the application's answer URL), or a to number the scenario's "
                             f"numbers: maps to a flow ({', '.join(numbers) or 'it maps none'})")
    if FLOW_ID.fullmatch(target):
        if not app_url:
            raise HttpError(400, f"{number} maps to the flow {target!r}, but this sandbox does not know where "
                                 "flows are served (only serve --sandbox does): map it to an answer URL")
        return f"{app_url.rstrip('/')}/callbacks/inbound/{target}"
    return target


def check_body(body, keys: tuple, sender: str, number: str) -> None:
    """A JSON object of `keys` whose `from` (`sender`) and `to` (`number`, default
    DEFAULT_TO) are phone numbers; raises HttpError(400) saying what is wrong."""
    if not isinstance(body, dict):
        raise HttpError(400, "the request body must be a JSON object")
    for key in body:
        if key not in keys:
            raise HttpError(400, f"unknown key {key!r} (expected {', '.join(keys)})" + did_you_mean(str(key), keys))
    for key, what in (("from", sender), ("to", number)):
        value = body.get(key, DEFAULT_TO if key == "to" else None)
        if not isinstance(value, str) or not value:
            raise HttpError(400, f"{key} must be {what}")
        problem = phone_problem(value)
        if problem:
            raise HttpError(400, f"{key}: {problem}")


def parse_inbound(body, numbers: dict, app_url: str | None = None) -> InboundRequest:
    """The checked request; raises HttpError(400) saying what is wrong."""
    check_body(body, KEYS, "the caller's number (E.164, e.g. +12025550123) or SIP URI", "the number dialled (E.164)")
    url = _answer_url(body, numbers, app_url)
    hangup_url = body.get("hangup_url", url.rstrip("/") + "/hangup")
    if not isinstance(hangup_url, str) or not APP_URL.fullmatch(hangup_url):
        raise HttpError(400, "hangup_url must be an http(s) URL")
    raw_headers = body.get("sip_headers") or {}
    if not isinstance(raw_headers, dict):
        raise HttpError(400, 'sip_headers maps a header name to its value, e.g. {"tier": "gold"}')
    try:
        headers = parse_sip_headers(raw_headers)
    except ValueError as e:
        raise HttpError(400, f"sip_headers: {e}") from None
    wait = body.get("hangup_after")
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0):
        raise HttpError(400, "hangup_after is a number of seconds")
    return InboundRequest(body["from"], body.get("to", DEFAULT_TO), url, hangup_url, headers,
                          _digits(body.get("digits")), wait)


async def place(core: SandboxCore, driver: CallDriver, req: InboundRequest) -> SimulatedCall:
    """Play the incoming call to its end (the caller behaves as the scenario says of its number,
    with the request's digits and hangup_after); return it."""
    behaviour = core.scenario.behaviour_for(req.caller)
    if req.digits is not None:
        behaviour = dataclasses.replace(behaviour, digits=req.digits)
    if req.hangup_after is not None:
        behaviour = dataclasses.replace(behaviour, hangup_after=req.hangup_after)
    call = inbound_call(req.caller, req.number, req.answer_url, req.hangup_url, behaviour, req.headers)
    core.calls.append(call)  # GET /sandbox/calls and the Call API's lookups show it too
    task = asyncio.get_running_loop().create_task(driver.drive(call))
    driver.tasks.add(task)  # cancelled with the others at shutdown
    task.add_done_callback(driver.tasks.discard)
    await asyncio.shield(task)  # a client that goes away does not cut the call short
    return call


def summary(call: SimulatedCall) -> dict:
    """What happened on the call: its end, each document the app served, the digits the caller
    pressed, each callback with the app's HTTP status."""
    log = call.log
    callbacks = [{"kind": c["kind"], "url": c["url"], "status": c.get("status"), "error": c.get("error")}
                 for c in log["callbacks"]]
    digits = [c["params"]["Digits"] for c in log["callbacks"] if "Digits" in c["params"]]
    return {"call_uuid": call.call_uuid, "from": log["from"], "to": log["to"], "direction": "inbound",
            "answer_url": call.request["answer_url"], "status": log["status"], "hangup_cause": log["hangup_cause"],
            "duration": call.duration, "error": log["error"], "documents": list(log["documents"]),
            "digits": digits, "callbacks": callbacks}


async def read_request(request: Request) -> dict:
    """The JSON body of a POST /sandbox/inbound; raises HttpError."""
    raw = await read_body(request, MAX_BODY)
    try:
        return loads_json_strict(raw, finite=True) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise HttpError(400, "the request body is not valid JSON") from None


async def answer(request: Request, core: SandboxCore, driver: CallDriver, app_url: str | None) -> SimulatedCall:
    """Read, check and place the incoming call a request asks for; raises HttpError."""
    req = parse_inbound(await read_request(request), core.scenario.numbers, app_url)
    return await place(core, driver, req)


async def inbound(request: Request) -> Response:
    """The sandbox's route (not authenticated, as every /sandbox/* route)."""
    state = request.app.state
    try:
        call = await answer(request, state.core, state.driver, getattr(state, "app_url", None))
    except HttpError as e:
        return error(e.status, e.message)
    return JSONResponse(summary(call))
