"""`POST /sandbox/inbound-message`: the sandbox delivers an incoming SMS to an application, as
Plivo posts one to the message URL of the number's application.

Body (JSON object):
  ``from``          the sender, E.164 (``+12025550123``); required
  ``text``          the message's text (at most 1,600 characters; default empty)
  ``url``           the application's message URL (callflow's:
                    ``{public_url}/callbacks/inbound-message/{flow_id}``)
  ``to``            the number written to (default ``+12025551234``); without ``url`` the
                    scenario's ``numbers:`` must map it to a flow id
  ``message_uuid``  the message's id (default: a new one); the same id again is what a
                    provider's retry of the webhook looks like

The sandbox posts Plivo's message parameters (engine/local/incoming.py `message_params`:
From, To, Text, Type, MessageUUID...), form-encoded and signed with X-Plivo-Signature-V3
by the sandbox's auth token, and answers once the application has: 200 with the message,
the application's HTTP status (``status``, ``error``: why it was not a 2xx) and ``run_id``
when the application is callflow's (its ``X-Callflow-Run-Id`` answer header); 400 with
``{"api_id", "error"}`` for bad input. Every delivery is kept in `SandboxCore.inbound_messages`
(``GET /sandbox/calls`` shows them).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.errors import HttpError
from engine.local.call_driver import CALLBACK_TIMEOUT, USER_AGENT, read_limited
from engine.local.incoming import (
    APP_URL,
    DEFAULT_TO,
    FLOW_ID,
    MAX_TEXT,
    RUN_HEADER,
    message_params,
)
from engine.local.sandbox import SandboxCore
from engine.local.sandbox_inbound import check_body, read_request
from engine.service.http import error
from engine.service.signature import sign_v3_headers

__all__ = ["KEYS", "MESSAGE_PATH", "RUN_HEADER", "IncomingMessage", "deliver", "inbound_message", "parse_message"]

KEYS = ("from", "to", "text", "url", "message_uuid")
ANSWER_BYTES = 16 * 1024  # of the app's answer read (an SMS webhook's answer is empty or an error)
MESSAGE_PATH = "/callbacks/inbound-message/"  # callflow's message URL, below its public URL


@dataclass(frozen=True)
class IncomingMessage:
    sender: str
    number: str
    text: str
    url: str
    message_uuid: str


def _message_url(body: dict, numbers: dict, app_url: str | None) -> str:
    url = body.get("url")
    if url is not None:
        if not isinstance(url, str) or not APP_URL.fullmatch(url):
            raise HttpError(400, "url must be the application's http(s) message URL")
        return url
    number = body.get("to", DEFAULT_TO)
    target = numbers.get(number) if isinstance(number, str) else None
    if target is None or not FLOW_ID.fullmatch(target):
        raise HttpError(400, "give url (the application's message URL), or a to number the scenario's numbers: "
                             f"maps to a flow id ({', '.join(numbers) or 'it maps none'})")
    if not app_url:
        raise HttpError(400, f"{number} maps to the flow {target!r}, but this sandbox does not know where flows "
                             "are served (only serve --sandbox does): give url")
    return f"{app_url.rstrip('/')}{MESSAGE_PATH}{target}"


def parse_message(body, numbers: dict, app_url: str | None = None) -> IncomingMessage:
    """The checked request; raises HttpError(400) saying what is wrong."""
    check_body(body, KEYS, "the sender's number (E.164, e.g. +12025550123)", "the number written to (E.164)")
    text = body.get("text", "")
    if not isinstance(text, str) or len(text) > MAX_TEXT or "\x00" in text:
        raise HttpError(400, f"text must be the message's text, at most {MAX_TEXT} characters")
    message_uuid = body.get("message_uuid") or str(uuid.uuid4())
    if not isinstance(message_uuid, str) or len(message_uuid) > 64 or not message_uuid.isprintable():
        raise HttpError(400, "message_uuid is the message's id: at most 64 printable characters")
    return IncomingMessage(body["from"], body.get("to", DEFAULT_TO), text, _message_url(body, numbers, app_url),
                           message_uuid)


async def deliver(core: SandboxCore, client: httpx.AsyncClient, message: IncomingMessage) -> dict:
    """Post the message to its application, signed; what happened (also kept in the core)."""
    params = message_params(message.sender, message.number, message.text, message.message_uuid)
    result = {"message_uuid": message.message_uuid, "from": message.sender, "to": message.number,
              "text": message.text, "url": message.url, "status": None, "error": None, "run_id": None}
    core.inbound_messages.append(result)
    headers = {"User-Agent": USER_AGENT, **sign_v3_headers("POST", message.url, params, core.auth_token)}
    try:
        async with asyncio.timeout(CALLBACK_TIMEOUT):
            response = await client.send(client.build_request("POST", message.url, data=params, headers=headers),
                                         stream=True)
            try:
                body = await read_limited(response, ANSWER_BYTES)
            finally:
                await response.aclose()
    except TimeoutError:
        result["error"] = f"no response within {CALLBACK_TIMEOUT:g} s"
        return result
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        return result
    result["status"], result["run_id"] = response.status_code, response.headers.get(RUN_HEADER)
    if not 200 <= response.status_code < 300:
        result["error"] = f"the app answered HTTP {response.status_code}" + _reason(body)
    return result


def _reason(body: bytes) -> str:
    """`: why` from a JSON error answer (callflow's `{"error": ...}`), else nothing."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    reason = data.get("error") if isinstance(data, dict) else None
    return f": {str(reason)[:200]}" if reason else ""


async def answer(request: Request, core: SandboxCore, client: httpx.AsyncClient, app_url: str | None) -> dict:
    """Read, check and deliver the message a request asks for; raises HttpError."""
    message = parse_message(await read_request(request), core.scenario.numbers, app_url)
    return await asyncio.shield(deliver(core, client, message))  # a client gone away does not cut it short


async def inbound_message(request: Request) -> Response:
    """The sandbox's route (not authenticated, as every /sandbox/* route)."""
    state = request.app.state
    try:
        result = await answer(request, state.core, state.driver.client, getattr(state, "app_url", None))
    except HttpError as e:
        return error(e.status, e.message)
    return JSONResponse(result)
