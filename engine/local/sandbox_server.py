"""`callflow sandbox`: the sandbox provider as its own process, a local Plivo-compatible voice API.

It is an HTTP shell around the one simulation in :mod:`engine.local.sandbox`: `SandboxCore`
answers the API requests, and each `SimulatedCall.run()` generator is driven by an asyncio
task that turns its items into real I/O:

* `Delay(seconds)` -> ``await asyncio.sleep(seconds)``.
* `Callback(kind, url, method, params)` -> an HTTP request to ``url``: POST sends the params
  form-encoded, GET sends them as query params (merged with the URL's own query). Every
  callback carries ``X-Plivo-Signature-V3`` / ``X-Plivo-Signature-V3-Nonce`` made with the
  sandbox's auth token (`engine.service.signature.sign_v3_headers`) and ``User-Agent:
  callflow-sandbox``. For callbacks that fetch XML (answer, GetDigits action, Redirect) the
  response body goes back into the generator; a non-2xx status, a network error, a
  timeout or a method other than GET/POST sends ``None`` instead, and the simulation ends
  the call with an error cause (``ANSWER_URL_ERROR`` / ``ACTION_URL_ERROR``) as Plivo does.

Callback policy, kept simple on purpose:
  * one attempt per callback, no retries, and ``fallback_url`` is not called;
  * each callback has 15 s in all (connect + send + response), then counts as failed;
  * redirects (3xx) are not followed: they count as a non-2xx answer;
  * at most ``MAX_BYTES`` + 1 bytes of a response are read; a bigger XML document is
    refused by `plivoxml.parse` (over Plivo's 100 KB limit) like any invalid document.
Calls run concurrently (one task each) over one shared `httpx.AsyncClient` whose pool
allows 1,000 connections, so hundreds of simultaneous calls do not queue behind each other.
The answer callback is sent only after the 201 response has gone out.

Routes:
  ``POST /v1/Account/{auth_id}/Call/`` and ``.../Message/`` (trailing slash optional): Basic
  auth, JSON or form-encoded body (at most 64 KiB), answered exactly as `SandboxCore` does.
  ``GET /sandbox/calls`` every call's log (API request, callbacks sent with the app's HTTP
  status, XML received) and every message; ``DELETE /sandbox/calls`` clears both.
  ``GET /sandbox/health``. Anything else: JSON ``{"api_id", "error"}`` 404/405.
The ``/sandbox/*`` routes are not authenticated: the sandbox is a development tool meant
to listen on 127.0.0.1. Errors never reach a client as a traceback, and neither the auth
token nor the Authorization header is ever logged.

Public API (used by ``callflow sandbox`` and ``callflow serve --sandbox``):
  `create_app(core, *, client=None)`, `start_sandbox(core, host, port)` -> ``(server, base_url)``
  (``await server.stop()`` to shut it down), `run_sandbox(core, host, port, on_ready)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
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
from engine.local.sandbox import Callback, Delay, SandboxCore, SimulatedCall
from engine.plivoxml import MAX_BYTES
from engine.service.http import base_url, bind, error, read_body
from engine.service.provider import ShardedClient
from engine.service.signature import sign_v3_headers

__all__ = [
    "CALLBACK_TIMEOUT",
    "DEV_AUTH_ID",
    "DEV_AUTH_TOKEN",
    "MAX_BODY",
    "SandboxServer",
    "create_app",
    "run_sandbox",
    "start_sandbox",
]

logger = logging.getLogger("callflow.sandbox")

CALLBACK_TIMEOUT = 15.0  # seconds per callback, all included
MAX_BODY = 64 * 1024  # API request bodies
USER_AGENT = "callflow-sandbox"
POOL_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
# Development credentials when none are configured; the auth id looks like Plivo's
# (MA + 18 upper-case letters/digits) so that the official SDKs accept it.
DEV_AUTH_ID = "MASANDBOXDEVACCOUNT0"
DEV_AUTH_TOKEN = "sandbox-dev-token"






def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def _parse_body(content_type: str, raw: bytes) -> dict:
    """A JSON object or a form-encoded body -> dict of parameters (the last of repeated keys wins)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if not raw.strip():
        return {}
    if media == "application/json" or media.endswith("+json") or (not media and raw.lstrip()[:1] in (b"{", b"[")):
        try:
            data = json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constants, parse_float=_finite_float)
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


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _log_entry(call: SimulatedCall, cb: Callback) -> dict:
    for entry in reversed(call.log["callbacks"]):
        if entry.get("params") is cb.params:
            return entry
    return {}  # not in the log (cleared meanwhile): record nothing


class CallDriver:
    """Drives simulated calls over HTTP, one asyncio task per call."""

    def __init__(self, core: SandboxCore, client: httpx.AsyncClient):
        self.core = core
        self.client = client
        self.tasks: set[asyncio.Task] = set()

    async def start(self, calls: list[SimulatedCall]) -> None:
        """Start one task per call (async: starlette runs it after the response has gone out)."""
        for call in calls:
            task = asyncio.get_running_loop().create_task(self.drive(call))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drive(self, call: SimulatedCall) -> None:
        sim = call.run()
        try:
            item = next(sim)
            while True:
                if isinstance(item, Delay):
                    await asyncio.sleep(item.seconds)
                    item = next(sim)
                elif isinstance(item, Callback):
                    reply = await self.callback(call, item)
                    item = sim.send(reply if item.expects_xml else None)
                else:  # nothing to send (no URL): as if the app gave nothing back
                    item = sim.send(None)
        except StopIteration:
            pass
        except asyncio.CancelledError:
            sim.close()
            raise
        except Exception as e:  # a bug in the sandbox must not go unseen, nor kill the server
            logger.error("call %s: simulation failed: %s", call.call_uuid, type(e).__name__, exc_info=True)
            call.log["error"] = f"sandbox error: {type(e).__name__}"
            sim.close()

    async def callback(self, call: SimulatedCall, cb: Callback) -> str | None:
        """Send one callback; return the response text for a 2xx, else None. Records the outcome."""
        entry = _log_entry(call, cb)
        entry.update(status=None, error=None)
        method = cb.method.upper()
        if method not in ("GET", "POST"):
            entry["error"] = f"unsupported callback method {cb.method!r}: Plivo calls URLs with GET or POST"
            return None
        try:
            headers = {"User-Agent": USER_AGENT, **sign_v3_headers(method, cb.url, cb.params, self.core.auth_token)}
            async with asyncio.timeout(CALLBACK_TIMEOUT):
                if method == "GET":
                    request = self.client.build_request(
                        "GET", httpx.URL(cb.url).copy_merge_params(cb.params), headers=headers)
                else:
                    request = self.client.build_request("POST", cb.url, data=cb.params, headers=headers)
                response = await self.client.send(request, stream=True)
                try:
                    body = await _read_limited(response, MAX_BYTES + 1)
                finally:
                    await response.aclose()
        except TimeoutError:
            entry["error"] = f"no response within {CALLBACK_TIMEOUT:g} s"
            return None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as e:
            entry["error"] = f"{type(e).__name__}: {e}"
            return None
        entry["status"] = response.status_code
        if not 200 <= response.status_code < 300:
            entry["error"] = f"the app answered HTTP {response.status_code}"
            return None
        return body.decode(response.encoding or "utf-8", errors="replace")


def create_app(core: SandboxCore, *, client: httpx.AsyncClient | None = None) -> Starlette:
    """The sandbox's ASGI app. Without ``client`` it makes (and closes at shutdown) its own."""
    owns_client = client is None
    # One 1,000-connection httpx client spent ~60% of the sandbox's CPU in its pool's O(n^2)
    # bookkeeping under load (bench/e2e.py): the same connections as small clients instead.
    http = client or ShardedClient(POOL_LIMITS.max_connections, 8, timeout=CALLBACK_TIMEOUT, follow_redirects=False)
    driver = CallDriver(core, http)

    async def call_api(request: Request) -> Response:
        try:
            params = await _api_params(request, core)
        except HttpError as e:
            return error(e.status, e.message)
        status, body, calls = core.create_call(params)
        background = BackgroundTask(driver.start, calls) if calls else None
        return JSONResponse(body, status_code=status, background=background)

    async def message_api(request: Request) -> Response:
        try:
            params = await _api_params(request, core)
        except HttpError as e:
            return error(e.status, e.message)
        status, body = core.create_message(params)
        return JSONResponse(body, status_code=status)

    async def calls_log(request: Request) -> Response:
        if request.method == "DELETE":
            core.calls.clear()
            core.messages.clear()
            return JSONResponse({"calls": [], "messages": []})
        return JSONResponse({"calls": [c.log for c in core.calls], "messages": list(core.messages)})

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
    async def lifespan(app):
        try:
            yield
        finally:
            for task in list(driver.tasks):
                task.cancel()
            if driver.tasks:
                await asyncio.gather(*driver.tasks, return_exceptions=True)
            if owns_client:
                await http.aclose()

    routes = []
    for name, endpoint in (("Call", call_api), ("Message", message_api)):
        routes.append(Route(f"/v1/Account/{{auth_id}}/{name}/", endpoint, methods=["POST"]))
        routes.append(Route(f"/v1/Account/{{auth_id}}/{name}", endpoint, methods=["POST"]))
    routes += [
        Route("/sandbox/calls", calls_log, methods=["GET", "DELETE"]),
        Route("/sandbox/health", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.router.redirect_slashes = False
    app.state.core = core
    app.state.driver = driver
    return app


class SandboxServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (it may share a process)."""

    base_url: str = ""
    task: asyncio.Task | None = None

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
                        client: httpx.AsyncClient | None = None) -> tuple[SandboxServer, str]:
    """Start the sandbox inside the running event loop; return ``(server, base_url)``.

    ``port=0`` takes a free port; ``base_url`` (``http://HOST:PORT``) is the bound one. The
    server does not touch signal handlers. Stop it with ``await server.stop()``. Raises
    OSError when the address cannot be bound.
    """
    sock = bind(host, port)
    server = SandboxServer(uvicorn.Config(create_app(core, client=client), log_level="warning", lifespan="on"))
    server.base_url = base_url(host, sock)
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
    server = uvicorn.Server(uvicorn.Config(create_app(core), log_level="warning", lifespan="on"))

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
