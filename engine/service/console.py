"""The web console of `callflow serve`: flows, their graphs, runs with their path drawn on
the graph, and a form to start a run. See docs/console.md.

The console is static files in `engine/console_assets/` (plain HTML, JS and CSS: no build step,
nothing from a CDN) that read the service's JSON API. This module adds the routes it
needs, all behind the API's Basic auth (the browser asks for the auth id and token once,
on the `WWW-Authenticate` challenge, and sends them with every request after that):

  GET /                                 the console (index.html; pages are #/... fragments)
  GET /console/{file}                   its assets
  GET /v1/flows/{flow_id}               one flow: nodes (type, config as written, outcomes and
                                        their targets, file line:col), edges, the trigger's
                                        form fields, its incoming-call URL
  GET /v1/flows/{flow_id}/graph.svg     the flow drawn by engine.graph_svg.to_svg

Both take `?revision=<sha256>`: that revision of the flow as stored (a run's page draws the
graph the run ran on, after a reload changed or removed the file); 404 once it was pruned.

`create_app` in engine/service/app.py adds `ROUTES`. The endpoints read the service through
the small `ConsoleSource` protocol (its loaded flows), not through `Service` itself.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.events import InboundCall, InboundMessage
from engine.flow import Flow
from engine.node import NodeSpec
from engine.service.auth import auth_of, authorized
from engine.service.deploy import entry_of_revision
from engine.service.http import deny, error
from engine.templating import Template

ASSETS = Path(__file__).resolve().parent / "console_assets"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
REVISION = re.compile(r"[0-9a-f]{64}")
MAX_CACHED_SVGS = 256  # drawn revisions kept per app (oldest drawn first out)
# The console loads nothing but its own files and talks to nothing but this service.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class ServedFlow(Protocol):
    """A flow as the service serves it."""

    flow: Flow
    created_on: str


class ConsoleSettings(Protocol):
    public_url: str


class ConsoleSource(Protocol):
    """What the console reads from the service (`app.state.service`): the loaded flows and
    the public URL (incoming calls reach flows there)."""

    flows: Mapping[str, ServedFlow]
    settings: ConsoleSettings


@functools.cache
def _assets() -> dict[str, Path]:
    """The files the console may serve, by name: a fixed list, so no path from a URL
    ever reaches the file system."""
    if not ASSETS.is_dir():
        return {}
    return {p.name: p for p in sorted(ASSETS.iterdir()) if p.is_file() and p.suffix in MEDIA_TYPES}


def trigger_fields(flow: Flow) -> list[dict]:
    """The run form: {"name", "default", "required", "editable"} per payload key, as the
    entry node declares them (NodeType.payload_fields)."""
    spec = flow.trigger_spec
    return spec.node_type.payload_fields(spec.config)


def as_written(value):
    """A compiled config value as the file has it: templates as their source text."""
    if isinstance(value, Template):
        return value.source
    if isinstance(value, dict):
        return {str(k): as_written(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_written(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def node_detail(spec: NodeSpec) -> dict:
    """What the console's node panel shows: the config, each outcome and where it leads, the place in the file."""
    outcomes = list(spec.node_type.node_outcomes(spec.config))
    outcomes += [o for o in spec.next if o not in outcomes]
    return {"config": as_written(spec.config), "line": spec.line, "col": spec.col,
            "outcomes": [{"outcome": str(o), "target": spec.next.get(o)} for o in outcomes]}


def incoming(flow: Flow, public_url: str, sandbox: bool) -> dict | None:
    """Where incoming calls reach the flow (None: it takes none), and the route that places a
    simulated one (`serve --sandbox` only)."""
    if flow.start_target(InboundCall) is None:
        return None
    return {"url": f"{public_url.rstrip('/')}/callbacks/inbound/{flow.id}",
            "sandbox_url": "/sandbox/inbound" if sandbox else None}


def incoming_message(flow: Flow, public_url: str, sandbox: bool) -> dict | None:
    """Where incoming SMS reach the flow (None: it takes none), and the route that delivers a
    simulated one (`serve --sandbox` only)."""
    if flow.start_target(InboundMessage) is None:
        return None
    return {"url": f"{public_url.rstrip('/')}/callbacks/inbound-message/{flow.id}",
            "sandbox_url": "/sandbox/inbound-message" if sandbox else None}


def flow_detail(flow: Flow, auth_id: str, created_on: str, public_url: str = "", sandbox: bool = False) -> dict:
    from engine.graph_export import graph_model

    nodes, edges = graph_model(flow)
    specs = flow.nodes
    return {
        "api_id": str(uuid.uuid4()),
        "id": flow.id,
        "name": flow.name,
        "description": flow.description,
        "path": flow.path,
        "valid": True,
        "created_on": created_on,
        "trigger": flow.trigger,
        "nodes": [{"name": n.name, "type": n.type, "in_call": n.in_call, "start": n.start,
                   "next": {str(k): str(v) for k, v in specs[n.name].next.items()},
                   "error": specs[n.name].error, **node_detail(specs[n.name])}
                  for n in nodes],
        "edges": [{"source": e.source, "target": e.target, "outcomes": list(e.outcomes), "error": e.error}
                  for e in edges],
        "warnings": [str(d) for d in flow.diagnostics],
        "fields": trigger_fields(flow),
        "run_url": f"/v1/account/{auth_id}/phlo/{flow.id}/",
        "incoming": incoming(flow, public_url, sandbox),
        "incoming_message": incoming_message(flow, public_url, sandbox),
        "revision": flow.revision,
        "graph_url": f"/v1/flows/{flow.id}/graph.svg?revision={flow.revision}",
    }


def _svg_cache(request: HttpRequest) -> dict[str, str]:
    """revision -> SVG, one per app: a revision never changes (its bytes are its name)."""
    state = request.app.state
    try:
        return state.console_svgs
    except AttributeError:
        state.console_svgs = {}
        return state.console_svgs


def _asset(name: str) -> Response:
    path = _assets()[name]
    return Response(path.read_bytes(), media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


def _of_a_flow(handle: Callable[[HttpRequest, str, ServedFlow], Awaitable[Response]]):
    """An endpoint for an authorized request about one loaded flow: `handle(request, flow_id, entry)`."""
    @functools.wraps(handle)
    async def endpoint(request: HttpRequest) -> Response:
        if not authorized(request):
            return deny(SECURITY_HEADERS)
        source: ConsoleSource = request.app.state.service
        flow_id = request.path_params["flow_id"]
        revision = request.query_params.get("revision")
        entry = source.flows.get(flow_id)
        if revision and (entry is None or entry.flow.revision != revision):
            if not REVISION.fullmatch(revision):
                return error(400, "revision must be a flow revision (64 hex digits, as runs record it)")
            entry = await entry_of_revision(source, flow_id, revision)
            if entry is None:
                return error(404, f"revision {revision[:12]} of the flow {flow_id!r} is not stored "
                                  "(pruned: no run needs it any more, or it never was)")
        if entry is None:
            return error(404, f"no flow with id {flow_id!r}")
        return await handle(request, flow_id, entry)
    return endpoint


async def index(request: HttpRequest):
    if not authorized(request):
        return deny(SECURITY_HEADERS)
    if "index.html" not in _assets():
        return error(404, "the console's files are not installed")
    return _asset("index.html")


async def static(request: HttpRequest):
    if not authorized(request):
        return deny(SECURITY_HEADERS)
    name = request.path_params["name"]
    if name not in _assets():
        return error(404, "not found")
    return _asset(name)


@_of_a_flow
async def get_flow(request: HttpRequest, flow_id: str, entry: ServedFlow):
    source: ConsoleSource = request.app.state.service
    sandbox = getattr(request.app.state, "sandbox", None) is not None
    detail = flow_detail(entry.flow, auth_of(request).auth_id, entry.created_on, source.settings.public_url, sandbox)
    detail["current"] = source.flows.get(flow_id) is entry  # False: an older revision (or a removed flow)
    return JSONResponse(detail)


@_of_a_flow
async def get_graph(request: HttpRequest, flow_id: str, entry: ServedFlow):
    svgs = _svg_cache(request)
    revision = entry.flow.revision
    svg = svgs.get(revision)
    if svg is None:
        from engine.graph_svg import to_svg

        svg = svgs[revision] = await run_in_threadpool(to_svg, entry.flow)  # a big flow takes a while
        while len(svgs) > MAX_CACHED_SVGS:
            svgs.pop(next(iter(svgs)))
    return Response(svg, media_type="image/svg+xml",
                    headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=60"})


ROUTES = [
    Route("/", index, methods=["GET"]),
    Route("/console/{name}", static, methods=["GET"]),
    Route("/v1/flows/{flow_id}", get_flow, methods=["GET"]),
    Route("/v1/flows/{flow_id}/", get_flow, methods=["GET"]),
    Route("/v1/flows/{flow_id}/graph.svg", get_graph, methods=["GET"]),
]
