"""`callflow run --live`: one run against the configured provider (real calls with Plivo).

It is `callflow serve` for one flow and one run: the same Service, store and callback
routes, listening on --host/--port for the provider's callbacks at --public-url (a tunnel
or public address that reaches this machine), then it triggers the run, prints the trace
as the run goes, and exits once the run has finished. The provider is whatever
PLIVO_API_URL names (Plivo by default), with PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import uvicorn

from engine.flow import Flow
from engine.local.trace import Tracer
from engine.service.app import create_app
from engine.service.main import ReadyServer, listen
from engine.service.provider import Provider
from engine.service.runs import Service
from engine.service.settings import settings_from_env
from engine.service.store import open_store

POLL_SECONDS = 0.2


def run_live(flow: Flow, payload: dict, public_url: str | None, as_json: bool, *, host: str = "127.0.0.1",
             port: int = 8080, timeout: float = 3600.0, echo: Callable[..., None] = click.echo,
             params: dict | None = None) -> int:
    """Returns the exit code: 0 completed, 1 failed, 2 bad input."""
    if not public_url:
        echo("error: --live needs --public-url (or CALLFLOW_PUBLIC_URL): the address where the provider "
             "reaches this machine's callbacks", err=True)
        return 2
    environ = dict(os.environ, CALLFLOW_PUBLIC_URL=public_url)
    environ.pop("CALLFLOW_AUTH_ID", None), environ.pop("CALLFLOW_AUTH_TOKEN", None)  # a private trigger pair
    settings = settings_from_env(public_url, environ)
    if not (settings.provider.auth_id and settings.provider.auth_token):
        echo("error: --live needs PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN", err=True)
        return 2
    sock = listen(host, port, echo)
    if sock is None:
        return 1
    with tempfile.TemporaryDirectory(prefix="callflow-live-") as tmp:
        db = environ.get("CALLFLOW_DB") or str(Path(tmp) / "live.db")
        return asyncio.run(_main(flow, payload, settings, db, sock, as_json, timeout, echo, params))


async def _main(flow, payload, settings, db, sock, as_json, timeout, echo, params=None) -> int:
    store = open_store(db)
    service = Service({flow.id: flow}, store, Provider(settings.provider, allow_private_http=settings.allow_private_http),
                      settings, params=params)
    config = uvicorn.Config(create_app(service), log_level="warning", access_log=False, lifespan="on")
    ready = asyncio.Event()
    server = ReadyServer(config, on_ready=ready.set)
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    tracer = None if as_json else Tracer(echo)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        if tracer:
            echo(f"live run of {flow.id} via {settings.provider.api_url}; callbacks at {settings.public_url}")
        run_id = (await service.trigger(flow.id, payload)).run_id
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            stored = await store.load(run_id)
            state = stored.state if stored else None
            if state is not None:
                if tracer:
                    tracer(state, None)
                if state.finished:
                    break
            await asyncio.sleep(POLL_SECONDS)
        if state is None or not state.finished:
            echo(f"error: run {run_id} did not finish within {timeout:g} s", err=True)
            return 1
        if as_json:
            echo(json.dumps(state.record(), indent=2))
        else:
            echo(f"run {state.run_id} {state.status}" + (f": {state.error}" if state.error else ""))
        return 0 if state.status == "completed" else 1
    finally:
        server.should_exit = True
        await serving
        await service.provider.aclose()
        await store.close()
