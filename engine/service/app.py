"""`create_app`: the starlette app of `callflow serve`, assembled from module-level endpoints.

  POST /v1/account/{auth_id}/phlo/{flow_id}/   run a flow (PHLO runner API, Basic auth)
  GET  /v1/phlo/{flow_id}/                      PHLO-style flow info (the SDK's get())
  GET  /v1/runs/{run_id}, GET /v1/runs, GET /v1/flows   run records and flows (Basic auth)
  POST /v1/flows/reload                         re-read FLOWS_DIR, all or nothing (Basic auth)
                                                (engine/service/api.py)
  GET|POST /callbacks/{run_id}/{seq}/{kind}     provider callbacks (X-Plivo-Signature-V3)
  GET|POST /callbacks/inbound/{flow_id}         incoming call: starts a run
  GET|POST /callbacks/inbound/{flow_id}/hangup  its hangup (the run is found by CallUUID)
                                                (engine/service/callbacks.py)
  POST /callbacks/inbound-message/{flow_id}     incoming SMS: starts a run (engine/service/messages.py)
  /v1/campaigns[/{id}[/results|/pause|/resume|/cancel]]   outbound campaigns
                                                (engine/service/campaign_api.py)
  GET  /health, /ready, /metrics                 the operator's (engine/service/probes.py)
  POST /sandbox/inbound                         with --sandbox: a simulated incoming call
  POST /sandbox/inbound-message                 with --sandbox: a simulated incoming SMS
                                                (engine/service/sandbox_route.py)
  GET  /, /console/*, /v1/flows/{flow_id}[/graph.svg]   the web console (engine/service/console.py)

Unsafe methods a browser sends from another site are refused with 403 before any route
(engine/service/same_origin.py).

The endpoints find the `Service` in `app.state.service` and the trigger API's credentials
in `app.state.auth`; the lifespan runs the sweeper and, at shutdown, lets effects in flight
finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request as HttpRequest
from starlette.routing import Route

from engine.errors import StoreError
from engine.service import (
    api,
    callbacks,
    campaign_api,
    console,
    messages,
    probes,
    sandbox_route,
)
from engine.service.auth import BasicAuth
from engine.service.http import error
from engine.service.logs import event
from engine.service.runs import Service
from engine.service.same_origin import SameOriginGuard
from engine.service.sweeper import sweep_forever


def _routes() -> list[Route]:
    # The hot paths first: starlette tries routes in order.
    routes = [  # the hangup before the answer: flow ids may be digits
        Route("/callbacks/inbound/{flow_id}/hangup", callbacks.inbound_hangup, methods=["GET", "POST"]),
        Route("/callbacks/{run_id}/{seq:int}/{kind}", callbacks.callback, methods=["GET", "POST"]),
    ]
    for suffix in ("/", ""):
        routes += [
            Route("/v1/account/{auth_id}/phlo/{flow_id}" + suffix, api.run_flow, methods=["POST"]),
            Route("/v1/phlo/{flow_id}" + suffix, api.get_phlo, methods=["GET"]),
            Route("/v1/runs/{run_id}" + suffix, api.get_run, methods=["GET"]),
        ]
    routes += [
        Route("/v1/runs", api.list_runs, methods=["GET"]),
        Route("/v1/runs/", api.list_runs, methods=["GET"]),
        Route("/v1/flows", api.list_flows, methods=["GET"]),
        Route("/v1/flows/", api.list_flows, methods=["GET"]),
        Route("/v1/flows/reload", api.reload, methods=["POST"]),
        Route("/callbacks/inbound/{flow_id}", callbacks.inbound, methods=["GET", "POST"]),
        Route("/callbacks/inbound-message/{flow_id}", messages.inbound_message, methods=["POST"]),
        Route("/health", probes.health, methods=["GET"]),
        Route("/ready", probes.ready, methods=["GET"]),
        Route("/metrics", probes.metrics, methods=["GET"]),
        Route("/sandbox/inbound", sandbox_route.sandbox_inbound, methods=["POST"]),
        Route("/sandbox/inbound-message", sandbox_route.sandbox_inbound_message, methods=["POST"]),
    ]
    return routes + campaign_api.ROUTES + console.ROUTES


ROUTES = _routes()


async def http_error(request: HttpRequest, exc: Exception):
    status = getattr(exc, "status_code", 500)
    messages = {404: "not found", 405: f"method {request.method} not allowed"}
    return error(status, messages.get(status) or "error", getattr(exc, "headers", None))


async def store_error(request: HttpRequest, exc: Exception):
    """Any store failure during a request (disk full, I/O error, a conflict that did not
    settle): nothing of the request was stored; a 503 the client (or the provider, for a
    callback) retries."""
    event("http.store_unavailable", level=logging.WARNING, method=request.method, path=request.url.path,
          error_type=type(exc).__name__, error=str(exc))
    return error(503, "the run store is unavailable; retry later", {"Retry-After": "1"})


async def server_error(request: HttpRequest, exc: Exception):
    event("http.error", level=logging.ERROR, method=request.method, path=request.url.path,
          error_type=type(exc).__name__)
    return error(500, "internal error")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    """The sweeper while the app serves; at shutdown, the effects in flight finish."""
    service: Service = app.state.service
    sweeper = asyncio.get_running_loop().create_task(sweep_forever(service))
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await service.drain()


def create_app(service: Service, sandbox: Starlette | None = None) -> Starlette:
    """The app serving `service`, its trigger API behind `service.settings`' auth pair;
    `sandbox`: the embedded sandbox's app (`serve --sandbox`), which places incoming calls."""
    # Every unsafe method from another site is refused first (the console's credentials).
    guard = Middleware(SameOriginGuard, public_url=service.settings.public_url)
    app = Starlette(routes=ROUTES, lifespan=lifespan, middleware=[guard],
                    exception_handlers={HTTPException: http_error, StoreError: store_error,
                                        Exception: server_error})
    app.router.redirect_slashes = False
    app.state.service = service
    app.state.sandbox = sandbox
    app.state.auth = BasicAuth(service.settings.auth_id, service.settings.auth_token)
    return app
