"""`callflow sandbox`: the sandbox provider as its own process, a local Plivo-compatible voice API.

It is an HTTP shell around the one simulation in :mod:`engine.local.sandbox`: `SandboxCore`
answers the API requests, and :mod:`engine.local.call_driver` drives each simulated call,
sending its callbacks to the app (the callback policy is described there).

Routes:
  ``POST /v1/Account/{auth_id}/Call/`` and ``.../Message/`` (trailing slash optional): Basic
  auth, JSON or form-encoded body (at most 64 KiB), answered exactly as `SandboxCore` does
  (after the scenario's `api:` refusals, 429/503 with Retry-After, if any).
  ``GET /v1/Account/{auth_id}/Call/`` and ``.../Call/{uuid}/`` (``?status=live|queued``):
  the Call API's lookups of live, queued and ended calls (engine/local/sandbox_lookups.py).
  ``GET /sandbox/calls`` every call's log (API request, callbacks sent with the app's HTTP
  status, XML received, `placed_at`: when its Call request came), every message sent and every
  incoming message delivered; ``DELETE /sandbox/calls`` clears them.
  ``POST /sandbox/inbound`` places an incoming call (engine/local/sandbox_inbound.py);
  ``POST /sandbox/inbound-message`` delivers an incoming SMS (engine/local/sandbox_message.py).
  ``GET /sandbox/health``. Anything else: JSON ``{"api_id", "error"}`` 404/405.
The ``/sandbox/*`` routes are not authenticated: the sandbox is a development tool meant
to listen on 127.0.0.1. Errors never reach a client as a traceback, and neither the auth
token nor the Authorization header is ever logged.

Public API (used by ``callflow sandbox`` and ``callflow serve --sandbox``):
  `create_app(core, *, client=None, app_url=None)`, `start_sandbox(core, host, port)` ->
  ``(server, base_url)`` (``await server.stop()`` to shut it down; ``server.app`` is the app),
  `run_sandbox(core, host, port, on_ready)`. ``app_url``: where the flows that incoming calls
  reach are served (``serve --sandbox`` gives its public URL), for flow ids in ``numbers:``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Callable
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.errors import HttpError
from engine.jsontext import loads_json_strict
from engine.local.call_driver import CallDriver, callback_client
from engine.local.sandbox import SandboxCore
from engine.local.sandbox_inbound import inbound
from engine.local.sandbox_lookups import list_calls, lookup_call
from engine.local.sandbox_message import inbound_message
from engine.service.http import base_url, bind, error, read_body
from engine.service.limits import server_config

__all__ = [
    "DEV_AUTH_ID",
    "DEV_AUTH_TOKEN",
    "MAX_BODY",
    "SandboxServer",
    "create_app",
    "run_sandbox",
    "start_sandbox",
]

logger = logging.getLogger("callflow.sandbox")

MAX_BODY = 64 * 1024  # API request bodies
# Development credentials when none are configured; the auth id looks like Plivo's
# (MA + 18 upper-case letters/digits) so that the official SDKs accept it.
DEV_AUTH_ID = "MASANDBOXDEVACCOUNT0"
DEV_AUTH_TOKEN = "sandbox-dev-token"


def _parse_body(content_type: str, raw: bytes) -> dict:
    """A JSON object or a form-encoded body -> dict of parameters (the last of repeated keys wins)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if not raw.strip():
        return {}
    if media == "application/json" or media.endswith("+json") or (not media and raw.lstrip()[:1] in (b"{", b"[")):
        try:
            data = loads_json_strict(raw, finite=True)
        except (ValueError, RecursionError):
            raise HttpError(400, "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "request body must be a JSON object")
        return data
    if media in ("application/x-www-form-urlencoded", ""):
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            raise HttpError(400, "request body is not valid form data") from None
    raise HttpError(415, "unsupported content type: send JSON or form-encoded parameters")


async def _api_params(request: Request, core: SandboxCore) -> dict:
    """Authenticate and decode an API request; raises HttpError."""
    if not core.authorized(request.path_params["auth_id"], request.headers.get("authorization")):
        raise HttpError(401, "authentication failed: wrong auth id or auth token")
    raw = await read_body(request, MAX_BODY)
    return _parse_body(request.headers.get("content-type", ""), raw)


def _refused(core: SandboxCore, api: str) -> Response | None:
    """The scenario's `api:` refusals: the first requests answered 429/503... (with Retry-After)."""
    refusal = core.refusal(api)
    if refusal is None:
        return None
    headers = {"Retry-After": f"{refusal.retry_after:g}"} if refusal.retry_after is not None else None
    return error(refusal.status, "too many requests" if refusal.status == 429 else "service unavailable", headers)


async def call_api(request: Request) -> Response:
    """POST .../Call/: place simulated calls; their callbacks start once the 201 has gone out.
    GET .../Call/: the Call API's list lookups (engine/local/sandbox_lookups.py)."""
    core: SandboxCore = request.app.state.core
    try:
        if request.method == "GET":
            await _api_params(request, core)
            status, body = list_calls(core, dict(request.query_params))
            return JSONResponse(body, status_code=status)
        params = await _api_params(request, core)
        refused = _refused(core, "Call")
        if refused is not None:
            return refused
        status, body, calls = core.create_call(params)
    except HttpError as e:  # from _api_params: create_call answers its own errors
        return error(e.status, e.message)
    background = BackgroundTask(request.app.state.driver.start, calls) if calls else None
    return JSONResponse(body, status_code=status, background=background)


async def message_api(request: Request) -> Response:
    """POST .../Message/: record a simulated message."""
    core: SandboxCore = request.app.state.core
    try:
        params = await _api_params(request, core)
    except HttpError as e:
        return error(e.status, e.message)
    refused = _refused(core, "Message")
    if refused is not None:
        return refused
    status, body = core.create_message(params)
    return JSONResponse(body, status_code=status)


async def call_lookup(request: Request) -> Response:
    """GET .../Call/{call_uuid}/ (?status=live|queued): one call, as Plivo's lookups show it."""
    core: SandboxCore = request.app.state.core
    try:
        await _api_params(request, core)
    except HttpError as e:
        return error(e.status, e.message)
    status, body = lookup_call(core, request.path_params["call_uuid"], request.query_params.get("status"))
    return JSONResponse(body, status_code=status)


async def calls_log(request: Request) -> Response:
    """GET /sandbox/calls: every call's log, every message sent and every incoming message
delivered; DELETE clears them."""
    core: SandboxCore = request.app.state.core
    if request.method == "DELETE":
        core.calls.clear()
        core.messages.clear()
        core.inbound_messages.clear()
        core.placed.clear()  # a scenario's behaviour lists start again from their first entry
        return JSONResponse({"calls": [], "messages": [], "inbound_messages": []})
    # placed_at: when the Call request came (epoch seconds), so tests can measure retry intervals
    return JSONResponse({"calls": [dict(c.log, placed_at=c.created_at) for c in core.calls],
                         "messages": list(core.messages), "inbound_messages": list(core.inbound_messages)})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    headers = getattr(exc, "headers", None)
    messages = {404: "not found", 405: f"method {request.method} not allowed"}
    return error(status, messages.get(status) or str(getattr(exc, "detail", "")) or "error", headers)


async def server_error(request: Request, exc: Exception) -> Response:
    # uvicorn logs the traceback too (starlette re-raises after answering); no headers, no body
    logger.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return error(500, "internal error")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    """At shutdown: cancel the calls still running, then close the client if the app made it."""
    try:
        yield
    finally:
        driver: CallDriver = app.state.driver
        await driver.cancel_all()
        if app.state.owns_client:
            await driver.client.aclose()


def _routes() -> list[Route]:
    routes = []
    for name, endpoint, methods in (("Call", call_api, ["POST", "GET"]), ("Message", message_api, ["POST"])):
        routes.append(Route(f"/v1/Account/{{auth_id}}/{name}/", endpoint, methods=methods))
        routes.append(Route(f"/v1/Account/{{auth_id}}/{name}", endpoint, methods=methods))
    routes.append(Route("/v1/Account/{auth_id}/Call/{call_uuid}/", call_lookup, methods=["GET"]))
    routes.append(Route("/v1/Account/{auth_id}/Call/{call_uuid}", call_lookup, methods=["GET"]))
    routes += [
        Route("/sandbox/calls", calls_log, methods=["GET", "DELETE"]),
        Route("/sandbox/inbound", inbound, methods=["POST"]),
        Route("/sandbox/inbound-message", inbound_message, methods=["POST"]),
        Route("/sandbox/health", health, methods=["GET"]),
    ]
    return routes


def create_app(core: SandboxCore, *, client: httpx.AsyncClient | None = None,
               app_url: str | None = None) -> Starlette:
    """The sandbox's ASGI app. Without ``client`` it makes (and closes at shutdown) its own."""
    http = client or callback_client()
    app = Starlette(routes=_routes(), lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.router.redirect_slashes = False
    app.state.core = core
    app.state.driver = CallDriver(core, http)
    app.state.owns_client = client is None
    app.state.app_url = app_url
    return app


class SandboxServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (it may share a process)."""

    base_url: str = ""
    task: asyncio.Task | None = None
    app: Starlette | None = None

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn versions
        pass

    async def stop(self) -> None:
        self.should_exit = True
        if self.task is not None:
            await self.task


async def start_sandbox(core: SandboxCore, host: str = "127.0.0.1", port: int = 0, *,
                        client: httpx.AsyncClient | None = None,
                        app_url: str | None = None) -> tuple[SandboxServer, str]:
    """Start the sandbox inside the running event loop; return ``(server, base_url)``.

    ``port=0`` takes a free port; ``base_url`` (``http://HOST:PORT``) is the bound one. The
    server does not touch signal handlers. Stop it with ``await server.stop()``. Raises
    OSError when the address cannot be bound.
    """
    sock = bind(host, port)
    app = create_app(core, client=client, app_url=app_url)
    server = SandboxServer(server_config(app, log_level="warning", lifespan="on"))
    server.base_url, server.app = base_url(host, sock), app
    server.task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if server.task.done():  # failed at startup
                server.task.result()
                raise RuntimeError("the sandbox server stopped during startup")
            await asyncio.sleep(0.01)
    except BaseException:
        sock.close()
        raise
    return server, server.base_url


def run_sandbox(core: SandboxCore, host: str = "127.0.0.1", port: int = 8090,
                on_ready: Callable[[str], object] | None = None) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM); ``on_ready(base_url)`` once listening.

    Raises OSError when the address cannot be bound.
    """
    sock = bind(host, port)
    url = base_url(host, sock)
    server = uvicorn.Server(server_config(create_app(core), log_level="warning", lifespan="on"))

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            result = on_ready(url)
            if inspect.isawaitable(result):
                await result
        await task

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
