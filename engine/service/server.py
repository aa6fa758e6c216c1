"""`callflow serve`: the HTTP service (contract section 3), a durable shell around the executor.

Per event the shell does: load the run from the store -> `Executor.advance` -> save ->
perform the effects (a `Request` goes out through `engine.service.provider`, its `Response` is fed
back in: advance -> save -> ...) -> answer (the `ServeDocument` XML, if the request was a
callback). The save comes before any effect and before the answer, so a crash at any
point leaves the store with the truth; no run lives in process memory between requests
(an asyncio lock per run serialises handlers inside one process, the store's version
check across processes).

No API request is sent twice for one node execution. A run found waiting for the response
to a recorded request that nobody in this process is performing (the process died with the
request in flight, or the request timed out after it was written) is *in doubt*: it is not
resent; a callback of the call it placed proves it went through (the executor treats it
so); if none comes within the grace period (`CALLFLOW_IN_DOUBT_SECONDS`, default 60) the
sweeper feeds `Response(in_doubt=True)` and the node takes its `failed` outcome.

Routes:
  POST /v1/account/{auth_id}/phlo/{flow_id}/   run a flow (PHLO runner API, Basic auth)
  GET  /v1/phlo/{flow_id}/                      PHLO-style flow info (the SDK's get())
  GET  /v1/runs/{run_id}, GET /v1/runs, GET /v1/flows   run records and flows (Basic auth)
  GET|POST /callbacks/{run_id}/{seq}/{kind}     provider callbacks (X-Plivo-Signature-V3)
  GET|POST /callbacks/inbound/{flow_id}         incoming call: starts a run
  GET|POST /callbacks/inbound/{flow_id}/hangup  its hangup (the run is found by CallUUID)
  GET  /health
  GET  /, /console/*, /v1/flows/{flow_id}[/graph.svg]   the web console (engine/service/console.py)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse
from starlette.responses import Response as HttpResponse
from starlette.routing import Route

from engine.diagnostics import Diagnostic
from engine.errors import Conflict, HttpError
from engine.events import (
    CALLBACK_KINDS,
    XML_KINDS,
    Callback,
    Expired,
    Finished,
    InboundCall,
    Request,
    Response,
    ServeDocument,
    Trigger,
    payload_problems,
)
from engine.executor import HANGUP_DOCUMENT, Executor
from engine.flow import Flow
from engine.load.discover import load_folder
from engine.node import RunEnvironment
from engine.service.console import console_routes
from engine.service.http import base_url, bind, error, read_body
from engine.service.provider import DEFAULT_CONNECTIONS, Provider, ProviderConfig
from engine.service.signature import HEADER_V3, HEADER_V3_NONCE, validate_v3
from engine.service.store import Store, StoredRun, open_store
from engine.state import RunState, WaitReason, iso

logger = logging.getLogger("callflow.server")

MAX_BODY = 64 * 1024  # trigger and callback request bodies
DEFAULT_IN_DOUBT_SECONDS = 60.0
# A run waiting longer than this for a callback gives up: Plivo's longest call (time_limit
# 14,400 s) plus ringing and slack, so a real call is never cut short.
DEFAULT_RUN_TIMEOUT = 15_000.0
EMPTY_DOCUMENT = "<Response></Response>"
REJECT_DOCUMENT = '<Response><Hangup reason="rejected"/></Response>'
RUN_STATUSES = ("running", "waiting", "completed", "failed")
SAVE_RETRIES = 10


# -- configuration ----------------------------------------------------------------------------
@dataclass
class Settings:
    auth_id: str
    auth_token: str
    public_url: str
    provider: ProviderConfig
    in_doubt_seconds: float = DEFAULT_IN_DOUBT_SECONDS
    run_timeout_seconds: float = DEFAULT_RUN_TIMEOUT
    generated_credentials: bool = False
    provider_connections: int = DEFAULT_CONNECTIONS  # CALLFLOW_PROVIDER_CONNECTIONS: provider API pool
    allow_private_http: bool = False  # CALLFLOW_HTTP_ALLOW_PRIVATE: http_request may reach non-public hosts

    def __repr__(self) -> str:  # never show tokens
        return (f"Settings(auth_id={self.auth_id!r}, public_url={self.public_url!r}, "
                f"provider={self.provider!r}, in_doubt_seconds={self.in_doubt_seconds})")


def generate_credentials() -> tuple[str, str]:
    """A fresh trigger-API pair. The auth id looks like Plivo's (MA + 18 upper-case letters)
    so that the official SDK accepts it."""
    letters = string.ascii_uppercase
    return "MA" + "".join(secrets.choice(letters) for _ in range(18)), secrets.token_urlsafe(30)


def _seconds(environ, name: str, default: float) -> float:
    raw = environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def settings_from_env(public_url: str, environ=os.environ) -> Settings:
    auth_id, auth_token = environ.get("CALLFLOW_AUTH_ID", ""), environ.get("CALLFLOW_AUTH_TOKEN", "")
    generated = False
    if not auth_id or not auth_token:
        if auth_id or auth_token:
            raise ValueError("set both CALLFLOW_AUTH_ID and CALLFLOW_AUTH_TOKEN, or neither")
        auth_id, auth_token = generate_credentials()
        generated = True
    grace = _seconds(environ, "CALLFLOW_IN_DOUBT_SECONDS", DEFAULT_IN_DOUBT_SECONDS)
    run_timeout = _seconds(environ, "CALLFLOW_RUN_TIMEOUT", DEFAULT_RUN_TIMEOUT)
    raw = environ.get("CALLFLOW_PROVIDER_CONNECTIONS") or str(DEFAULT_CONNECTIONS)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"CALLFLOW_PROVIDER_CONNECTIONS: {raw!r} is not a positive whole number")
    return Settings(auth_id=auth_id, auth_token=auth_token,
                    public_url=(environ.get("CALLFLOW_PUBLIC_URL") or public_url).rstrip("/"),
                    provider=ProviderConfig.from_env(environ), in_doubt_seconds=grace,
                    run_timeout_seconds=run_timeout,
                    generated_credentials=generated, provider_connections=int(raw),
                    allow_private_http=environ.get("CALLFLOW_HTTP_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes"))


# -- flows ------------------------------------------------------------------------------------
@dataclass
class LoadedFlow:
    flow: Flow
    executor: Executor
    created_on: str


def load_flows(folder: Path) -> tuple[dict[str, Flow], list[Diagnostic]]:
    """Every flow under `folder` (as `callflow validate` finds and checks them), and the diagnostics."""
    return load_folder(folder)


# -- per-run locks ----------------------------------------------------------------------------
class RunLocks:
    """One asyncio lock per run id that something in this process is working on."""

    def __init__(self):
        self._locks: dict[str, list] = {}  # run_id -> [lock, users]

    async def acquire(self, run_id: str) -> None:
        entry = self._locks.get(run_id)
        if entry is None:
            entry = self._locks[run_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            await entry[0].acquire()
        except BaseException:
            self._drop(run_id, entry)
            raise

    def release(self, run_id: str) -> None:
        entry = self._locks[run_id]
        entry[0].release()
        self._drop(run_id, entry)

    def _drop(self, run_id: str, entry: list) -> None:
        entry[1] -= 1
        if entry[1] == 0:
            del self._locks[run_id]

    def busy(self, run_id: str) -> bool:
        return run_id in self._locks

    @contextlib.asynccontextmanager
    async def hold(self, run_id: str):
        await self.acquire(run_id)
        try:
            yield
        finally:
            self.release(run_id)

    def __len__(self) -> int:
        return len(self._locks)


# -- the shell --------------------------------------------------------------------------------
class Service:
    """Drives runs: the store is the truth, the executor decides, the provider performs."""

    def __init__(self, flows: dict[str, Flow], store: Store, provider, settings: Settings,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.env = RunEnvironment(public_url=settings.public_url, api_url=settings.provider.api_url,
                                  auth_id=settings.provider.auth_id or "MAXXXXXXXXXXXXXXXXXX")
        self.clock = clock
        self.flows = {fid: LoadedFlow(f, Executor(f, self.env, clock), _mtime_iso(f.path))
                      for fid, f in flows.items()}
        self.store = store
        self.provider = provider
        self.locks = RunLocks()
        self.tasks: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self, timeout: float = 10.0) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self.tasks:  # let requests in flight finish and their results be saved
            await asyncio.wait(list(self.tasks), timeout=timeout)

    # -- entry points ----------------------------------------------------------------------------
    async def trigger(self, flow_id: str, payload: dict) -> str:
        """Start a run; return its id once its first state is stored. Effects (the Call API
        request) go on in the background: the caller gets the run id at once."""
        entry = self.flows[flow_id]
        run_id = str(uuid.uuid4())
        state = entry.executor.new_run(run_id)
        effects = entry.executor.advance(state, Trigger(payload))
        await self.locks.acquire(run_id)
        try:
            version = await self.store.create_run(state)
        except BaseException:
            self.locks.release(run_id)
            raise
        if not any(isinstance(e, Request) for e in effects):
            self.locks.release(run_id)
            return run_id
        task = asyncio.get_running_loop().create_task(self._continue(entry, state, version, effects))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return run_id

    async def _continue(self, entry: LoadedFlow, state: RunState, version: int, effects: list) -> None:
        try:
            await self._perform(entry, state, version, effects)
        except Exception:
            logger.exception("run %s: performing effects failed", state.run_id)
        finally:
            self.locks.release(state.run_id)

    async def inbound(self, flow_id: str, params: dict) -> str:
        entry = self.flows.get(flow_id)
        if entry is None:
            return HANGUP_DOCUMENT
        if entry.flow.start_target(InboundCall) is None:
            return REJECT_DOCUMENT  # the flow takes no incoming calls: no run
        call_uuid = params.get("CallUUID") or ""
        # A provider retry (or a replay) of the answer request must not start a second run:
        # the same call gets the same run and the document already served for it.
        async with self.locks.hold(f"inbound:{call_uuid}"):
            existing = await self.store.find_by_call(call_uuid, flow_id) if call_uuid else None
            if existing is not None:
                return await self.callback(existing, 0, "answer", params)
            run_id = str(uuid.uuid4())
            state = entry.executor.new_run(run_id)
            effects = entry.executor.advance(state, InboundCall(params))
            async with self.locks.hold(run_id):
                version = await self.store.create_run(state)
                served = await self._perform(entry, state, version, effects)
        return served or HANGUP_DOCUMENT

    async def inbound_hangup(self, flow_id: str, params: dict) -> str:
        """The hangup of an incoming call (the application's hangup URL cannot name the run:
        the run is found by CallUUID)."""
        call_uuid = params.get("CallUUID")
        run_id = await self.store.find_by_call(call_uuid, flow_id) if call_uuid else None
        if run_id is None:
            return EMPTY_DOCUMENT
        return await self.callback(run_id, 0, "hangup", params)  # an incoming call is step 0's

    async def callback(self, run_id: str, seq: int, kind: str, params: dict) -> str:
        """Deliver a provider callback; return the XML to answer with."""
        async with self.locks.hold(run_id):
            stored = await self.store.load(run_id)
            if stored is None:
                return HANGUP_DOCUMENT
            entry = self.flows.get(stored.state.flow_id)
            if entry is None or stored.state.finished:
                # The executor replays a document already served for this callback, else Hangup.
                effects = entry.executor.advance(stored.state, Callback(kind, seq, params)) if entry else []
                served = next((e.xml for e in effects if isinstance(e, ServeDocument)), None)
                return served or HANGUP_DOCUMENT
            state, version, effects = await self._advance(entry, stored, Callback(kind, seq, params))
            served = await self._perform(entry, state, version, effects)
        if served is not None:
            return served
        return HANGUP_DOCUMENT if kind in XML_KINDS else EMPTY_DOCUMENT

    # -- the loop ----------------------------------------------------------------------------------
    async def _advance(self, entry: LoadedFlow, stored: StoredRun, event) -> tuple[RunState, int, list]:
        """advance + save; on a version conflict reload and apply the event again."""
        state, version = stored.state, stored.version
        for _ in range(SAVE_RETRIES):
            effects = entry.executor.advance(state, event)
            try:
                return state, await self.store.save(state, version), effects
            except Conflict:
                fresh = await self.store.load(state.run_id)
                if fresh is None:
                    raise
                state, version = fresh.state, fresh.version
        raise Conflict(f"run {state.run_id}: gave up after {SAVE_RETRIES} conflicting saves")

    async def _perform(self, entry: LoadedFlow, state: RunState, version: int, effects: list) -> str | None:
        """Perform effects until the run waits for the outside world; return the XML served."""
        served = None
        while effects:
            request = None
            for effect in effects:
                if isinstance(effect, ServeDocument):
                    served = effect.xml
                elif isinstance(effect, Request):
                    request = effect
                elif isinstance(effect, Finished):
                    logger.debug("run %s %s", state.run_id, effect.status)
            if request is None:
                break
            response = dataclasses.replace(await self.provider.perform(request), seq=request.seq)
            if response.in_doubt:
                # It may have gone through: never resend. A callback may still prove it; else
                # the sweeper fails the node after the grace period.
                logger.warning("run %s: %s request left in doubt (%s)", state.run_id, request.node, response.error)
                break
            state, version, effects = await self._advance(entry, StoredRun(state, version), response)
        return served

    # -- requests in doubt -------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Feed `Response(in_doubt=True)` to runs whose recorded request has gone unanswered
        for the grace period with nobody here performing it. Returns how many."""
        grace = self.settings.in_doubt_seconds
        cutoff = self.clock() - grace
        done = 0
        for run_id in await self.store.in_doubt(cutoff):
            if self.locks.busy(run_id):
                continue  # being worked on in this process (e.g. its request is in flight)
            async with self.locks.hold(run_id):
                stored = await self.store.load(run_id)
                if stored is None:
                    continue
                state = stored.state
                waiting = state.waiting
                if waiting is None or waiting.reason is not WaitReason.RESPONSE or state.updated_at >= cutoff:
                    continue
                entry = self.flows.get(state.flow_id)
                if entry is None:
                    continue
                logger.warning("run %s: request of node %s in doubt for %g s: not resent, taking failed",
                               run_id, waiting.node, grace)
                event = Response(error="no response recorded before a restart; the request was not resent",
                                 in_doubt=True)
                state, version, effects = await self._advance(entry, stored, event)
                await self._perform(entry, state, version, effects)
                done += 1
        return done + await self._expire_stale()

    async def _expire_stale(self) -> int:
        """Give up on runs that waited longer than the run timeout for a provider callback."""
        limit = self.settings.run_timeout_seconds
        cutoff = self.clock() - limit
        done = 0
        for run_id in await self.store.stale(cutoff):
            if self.locks.busy(run_id):
                continue
            async with self.locks.hold(run_id):
                stored = await self.store.load(run_id)
                if stored is None or stored.state.updated_at >= cutoff:
                    continue
                entry = self.flows.get(stored.state.flow_id)
                if entry is None:
                    continue
                logger.warning("run %s: no callback for %g s; giving up", run_id, limit)
                state, version, effects = await self._advance(entry, stored, Expired(limit))
                await self._perform(entry, state, version, effects)
                done += 1
        return done

    async def _sweep_forever(self) -> None:
        shortest = min(self.settings.in_doubt_seconds, self.settings.run_timeout_seconds)
        interval = min(max(shortest / 4, 0.05), 5.0)
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("in-doubt sweep failed")
            await asyncio.sleep(interval)


def _mtime_iso(path: str) -> str:
    try:
        ts = Path(path).stat().st_mtime
    except OSError:
        ts = time.time()
    return iso(ts)


# -- HTTP ---------------------------------------------------------------------------------------


def xml(document: str) -> HttpResponse:
    return HttpResponse(document, media_type="application/xml")


def parse_payload(raw: bytes) -> dict:
    """The trigger body: a JSON object of scalar values (may be empty)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise HttpError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the request body must be a JSON object of payload values")
    problems = payload_problems(data)
    if problems:
        raise HttpError(400, problems[0][1])
    return data


def _no_constant(name: str):
    raise ValueError(name)


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


def create_app(service: Service) -> Starlette:
    settings = service.settings
    auth_user, auth_password = settings.auth_id.encode(), settings.auth_token.encode()

    def authorized(request: HttpRequest, url_auth_id: str | None = None) -> bool:
        header = request.headers.get("authorization", "")
        if not header[:6].lower() == "basic ":
            return False
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        ok = hmac.compare_digest(user.encode(), auth_user) & hmac.compare_digest(password.encode(), auth_password)
        if url_auth_id is not None:
            ok &= hmac.compare_digest(url_auth_id.encode(), auth_user)
        return bool(ok and sep)

    unauthorized = {"WWW-Authenticate": 'Basic realm="callflow"'}

    def deny() -> JSONResponse:
        return error(401, "authentication failed: wrong auth id or auth token", unauthorized)

    async def run_flow(request: HttpRequest):
        if not authorized(request, request.path_params["auth_id"]):
            return deny()
        flow_id = request.path_params["flow_id"]
        entry = service.flows.get(flow_id)
        try:
            raw = await read_body(request, MAX_BODY)
            if entry is None:
                return error(404, f"no flow with id {flow_id!r}")
            payload = parse_payload(raw)
        except HttpError as e:
            return error(e.status, e.message)
        missing = entry.flow.missing_payload(payload)
        if missing:
            return error(422, f"the run request must supply {', '.join(missing)} "
                              f"(required by {entry.flow.trigger})")
        run_id = await service.trigger(flow_id, payload)
        return JSONResponse({"phlo_id": flow_id, "api_id": run_id, "message": "run started"}, status_code=201)

    async def get_phlo(request: HttpRequest):
        if not authorized(request):
            return deny()
        flow_id = request.path_params["flow_id"]
        entry = service.flows.get(flow_id)
        if entry is None:
            return error(404, f"no flow with id {flow_id!r}")
        return JSONResponse({"api_id": str(uuid.uuid4()), "phlo_id": flow_id, "name": entry.flow.name,
                             "created_on": entry.created_on})

    async def get_run(request: HttpRequest):
        if not authorized(request):
            return deny()
        stored = await service.store.load(request.path_params["run_id"])
        if stored is None:
            return error(404, "no run with this id")
        return JSONResponse(stored.state.record())

    async def list_runs(request: HttpRequest):
        if not authorized(request):
            return deny()
        q = request.query_params
        status = q.get("status") or None
        if status is not None and status not in RUN_STATUSES:
            return error(400, f"status must be one of {', '.join(RUN_STATUSES)}")
        try:
            limit = int(q.get("limit") or 50)
            if limit < 1:
                raise ValueError
        except ValueError:
            return error(400, "limit must be a positive whole number")
        try:
            runs, cursor = await service.store.list_runs(flow_id=q.get("flow_id") or None, status=status,
                                                         limit=limit, cursor=q.get("cursor") or None)
        except ValueError as e:
            return error(400, str(e))
        return JSONResponse({"api_id": str(uuid.uuid4()), "runs": runs, "next_cursor": cursor})

    async def list_flows(request: HttpRequest):
        if not authorized(request):
            return deny()
        flows = [{"id": fid, "name": e.flow.name, "valid": True, "nodes": len(e.flow.nodes),
                  "path": e.flow.path, "warnings": len(e.flow.diagnostics), "created_on": e.created_on}
                 for fid, e in sorted(service.flows.items())]
        return JSONResponse({"api_id": str(uuid.uuid4()), "flows": flows})

    async def signed_params(request: HttpRequest) -> dict:
        """Check the V3 signature for the URL as the provider saw it; return the params."""
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

    async def callback(request: HttpRequest):
        try:
            params = await signed_params(request)
        except HttpError as e:
            return error(e.status, e.message)
        kind = request.path_params["kind"]
        if kind not in CALLBACK_KINDS:
            return error(404, f"unknown callback kind {kind!r}")
        document = await service.callback(request.path_params["run_id"], request.path_params["seq"], kind, params)
        return xml(document)

    def incoming(handle):
        """A signed request for an incoming call of a flow, answered with XML."""
        async def endpoint(request: HttpRequest):
            try:
                params = await signed_params(request)
            except HttpError as e:
                return error(e.status, e.message)
            return xml(await handle(request.path_params["flow_id"], params))
        return endpoint

    inbound, inbound_hangup = incoming(service.inbound), incoming(service.inbound_hangup)

    async def health(request: HttpRequest):
        return JSONResponse({"status": "ok", "flows": len(service.flows)})

    async def http_error(request: HttpRequest, exc: Exception):
        status = getattr(exc, "status_code", 500)
        messages = {404: "not found", 405: f"method {request.method} not allowed"}
        return error(status, messages.get(status) or "error", getattr(exc, "headers", None))

    async def server_error(request: HttpRequest, exc: Exception):
        logger.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return error(500, "internal error")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    # The hot paths first: starlette tries routes in order.
    routes = [
        Route("/callbacks/inbound/{flow_id}/hangup", inbound_hangup, methods=["GET", "POST"]),  # before: flow ids may be digits
        Route("/callbacks/{run_id}/{seq:int}/{kind}", callback, methods=["GET", "POST"]),
    ]
    for suffix in ("/", ""):
        routes += [
            Route("/v1/account/{auth_id}/phlo/{flow_id}" + suffix, run_flow, methods=["POST"]),
            Route("/v1/phlo/{flow_id}" + suffix, get_phlo, methods=["GET"]),
            Route("/v1/runs/{run_id}" + suffix, get_run, methods=["GET"]),
        ]
    routes += [
        Route("/v1/runs", list_runs, methods=["GET"]),
        Route("/v1/runs/", list_runs, methods=["GET"]),
        Route("/v1/flows", list_flows, methods=["GET"]),
        Route("/v1/flows/", list_flows, methods=["GET"]),
        Route("/callbacks/inbound/{flow_id}", inbound, methods=["GET", "POST"]),
        Route("/health", health, methods=["GET"]),
    ]
    routes += console_routes(service, authorized)  # the web console: engine/service/console.py
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.router.redirect_slashes = False
    app.state.service = service
    return app


# -- process ------------------------------------------------------------------------------------
class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_ready()


def serve_main(flows_dir: str, host: str, port: int, db: str | None, sandbox: bool,
               echo: Callable[..., None]) -> int:
    """`callflow serve`; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    flows, diagnostics = load_flows(Path(flows_dir))
    errors = [d for d in diagnostics if d.severity == "error"]
    for d in diagnostics:
        echo(str(d), err=True)
    if errors:
        echo(f"error: {len(errors)} error(s) in the flows under {flows_dir}: not serving", err=True)
        return 2
    if not flows:
        echo(f"warning: no flow files under {flows_dir}", err=True)
    try:
        sock = bind(host, port)
    except OSError as e:
        echo(f"error: cannot listen on {host}:{port}: {e.strerror or e}", err=True)
        return 1
    base = base_url(host, sock)
    environ = dict(os.environ)
    try:
        settings = settings_from_env(base, environ)
        store = open_store(db or environ.get("CALLFLOW_DB") or "callflow.db")
    except (ValueError, RuntimeError, OSError) as e:
        sock.close()
        echo(f"error: {e}", err=True)
        return 2
    if settings.generated_credentials:
        echo("no CALLFLOW_AUTH_ID/CALLFLOW_AUTH_TOKEN set: generated a trigger API pair for this process:")
        echo(f"  CALLFLOW_AUTH_ID={settings.auth_id}")
        echo(f"  CALLFLOW_AUTH_TOKEN={settings.auth_token}")
    if host in ("0.0.0.0", "::") and not environ.get("CALLFLOW_PUBLIC_URL"):
        echo(f"warning: callbacks will be sent to {settings.public_url}; set CALLFLOW_PUBLIC_URL to the "
             "address the provider can reach", err=True)

    async def main() -> None:
        sandbox_server = None
        if sandbox:
            from engine.local.sandbox import SandboxCore
            from engine.local.sandbox_server import start_sandbox

            p = settings.provider
            if not (p.auth_id and p.auth_token):
                from engine.local.sandbox_server import DEV_AUTH_ID, DEV_AUTH_TOKEN

                p = ProviderConfig(DEV_AUTH_ID, DEV_AUTH_TOKEN, p.api_url)
            sandbox_server, sandbox_url = await start_sandbox(SandboxCore(auth_id=p.auth_id, auth_token=p.auth_token),
                                                              "127.0.0.1", 0)
            settings.provider = ProviderConfig(p.auth_id, p.auth_token, sandbox_url)
            echo(f"embedded sandbox provider on {sandbox_url} (simulated calls; nothing is dialled)")
        elif not (settings.provider.auth_id and settings.provider.auth_token):
            echo("warning: PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN are not set: Call API requests will fail "
                 "(use --sandbox for simulated calls)", err=True)
        service = Service(flows, store, Provider(settings.provider, max_connections=settings.provider_connections,
                                                  allow_private_http=settings.allow_private_http),
                          settings)
        config = uvicorn.Config(create_app(service), log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=10)
        server = _Server(config, on_ready=lambda: echo(f"callflow serving on {base}"))
        try:
            await server.serve(sockets=[sock])
        finally:
            await service.provider.aclose()
            await store.close()
            if sandbox_server is not None:
                await sandbox_server.stop()

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


def event_loop_factory():
    """uvloop's loop when it is installed (as uvicorn itself picks it), else asyncio's."""
    if os.environ.get("CALLFLOW_LOOP", "auto") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
