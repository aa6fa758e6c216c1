"""`callflow serve` as a process: load the flows, bind the socket, read the settings, open
the store, then run the app under uvicorn (uvloop when installed) until a signal stops it.
The ready line (`callflow serving on URL`) is printed once uvicorn accepts connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import prometheus_client
import uvicorn

from engine.errors import StoreError
from engine.flow import Flow
from engine.load.discover import load_folder
from engine.service import logs
from engine.service.app import create_app
from engine.service.deploy import reload_flows, save_revisions
from engine.service.http import base_url, bind
from engine.service.limits import HttpLimits, limits_from_env, server_config
from engine.service.provider import Provider, ProviderConfig
from engine.service.runs import Service
from engine.service.settings import Settings, settings_from_env
from engine.service.store import Store, open_store

Echo = Callable[..., None]


class ReadyServer(uvicorn.Server):
    """A uvicorn server that calls `on_ready()` once it has started and accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_ready()


def serve_main(flows_dir: str, host: str, port: int, db: str | None, sandbox: bool, echo: Echo,
               log_format: str | None = None, log_level: str | None = None, scenario: str | None = None, *,
               params: dict | None = None, allow_invalid: bool = False, params_path: str | None = None) -> int:
    """`callflow serve`; returns the exit code. `scenario`: the embedded sandbox's (with `sandbox`)."""
    try:
        chosen = logs.configure(log_format or os.environ.get("CALLFLOW_LOG_FORMAT"),
                                log_level or os.environ.get("CALLFLOW_LOG_LEVEL"))
    except ValueError as e:
        echo(f"error: {e}", err=True)
        return 2
    prometheus_client.disable_created_metrics()  # no `*_created` series beside each counter
    if chosen == "json":  # stderr carries only JSON lines: warnings become events too
        echo = _json_warnings(echo)
    flows = _load(flows_dir, echo, allow_invalid)
    if flows is None:
        return 2
    world = _scenario(scenario, sandbox, echo)
    if world is None:
        return 2
    sock = listen(host, port, echo)
    if sock is None:
        return 1
    base, environ = base_url(host, sock), dict(os.environ)
    try:
        settings = settings_from_env(base, environ)
        limits = limits_from_env(environ)
        store = open_store(db or environ.get("CALLFLOW_DB") or "callflow.db")
    except (ValueError, RuntimeError, OSError, StoreError) as e:
        sock.close()
        echo(f"error: {e}", err=True)
        return 2
    _announce(settings, host, environ, echo)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            deploy = Deployment(flows_dir, params or {}, params_path, allow_invalid)
            runner.run(_serve(flows, store, settings, sock, base, world if sandbox else None, echo, limits, deploy))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


def upgrade_main(url: str, echo: Echo) -> int:
    """`callflow db upgrade`: open the store (which migrates it), print the version, close."""
    try:
        store = open_store(url)
    except (ValueError, OSError, StoreError) as e:
        echo(f"error: {e}", err=True)
        return 2
    version = getattr(store, "schema_version", None)
    if version is None:  # SQLite: the file is at the version this code writes once open
        from engine.service.sqlite_store import SCHEMA_VERSION as version
    asyncio.run(store.close())
    echo(f"{getattr(store, 'where', url)}: schema version {version}")
    return 0


def _json_warnings(echo: Echo) -> Echo:
    """`echo` with its stderr lines logged as `serve.message` events instead (errors that
    stop the process stay plain `error:` lines)."""
    def json_echo(message: str = "", err: bool = False, **kw) -> None:
        if err and not message.startswith("error:"):
            logs.event("serve.message", message, level=logging.WARNING)
        else:
            echo(message, err=err, **kw)
    return json_echo


def listen(host: str, port: int, echo: Echo) -> socket.socket | None:
    """The listening socket, or None with the reason printed."""
    try:
        return bind(host, port)
    except OSError as e:
        echo(f"error: cannot listen on {host}:{port}: {e.strerror or e}", err=True)
        return None


def _load(flows_dir: str, echo: Echo, allow_invalid: bool = False) -> dict[str, Flow] | None:
    """The flows to serve, their diagnostics printed; None when one has an error (unless
    `allow_invalid`: then the valid ones, the others reported)."""
    flows, diagnostics = load_folder(Path(flows_dir))
    errors = [d for d in diagnostics if d.severity == "error"]
    for d in diagnostics:
        echo(str(d), err=True)
    if errors and allow_invalid:
        broken = sorted({d.path for d in errors})
        echo(f"warning: {len(broken)} invalid flow file(s) not served (--allow-invalid): {', '.join(broken)}",
             err=True)
    elif errors:
        echo(f"error: {len(errors)} error(s) in the flows under {flows_dir}: not serving", err=True)
        return None
    if not flows:
        echo(f"warning: no flow files under {flows_dir}", err=True)
    return flows


def _scenario(path: str | None, sandbox: bool, echo: Echo):
    """The embedded sandbox's scenario (everyone answers without a file); None, with the
    reason printed, when it cannot be read or there is no sandbox to take it."""
    from engine.errors import FlowInvalid
    from engine.local.scenario import Scenario, load_scenario

    if path is None:
        return Scenario()
    if not sandbox:
        echo("error: --scenario says how the embedded sandbox's callees behave: add --sandbox", err=True)
        return None
    try:
        return load_scenario(path)
    except FlowInvalid as e:
        for d in e.diagnostics:
            echo(str(d), err=True)
        return None


def _announce(settings: Settings, host: str, environ: dict, echo: Echo) -> None:
    """A generated trigger pair, and a public URL the provider probably cannot reach."""
    if settings.generated_credentials:
        echo("no CALLFLOW_AUTH_ID/CALLFLOW_AUTH_TOKEN set: generated a trigger API pair for this process:")
        echo(f"  CALLFLOW_AUTH_ID={settings.auth_id}")
        echo(f"  CALLFLOW_AUTH_TOKEN={settings.auth_token}")
    if host in ("0.0.0.0", "::") and not environ.get("CALLFLOW_PUBLIC_URL"):
        echo(f"warning: callbacks will be sent to {settings.public_url}; set CALLFLOW_PUBLIC_URL to the "
             "address the provider can reach", err=True)


@dataclass(frozen=True)
class Deployment:
    """Where a reload reads from, and whether invalid files are skipped (--allow-invalid)."""

    flows_dir: str
    params: dict
    params_path: str | None
    allow_invalid: bool


async def _serve(flows: dict[str, Flow], store: Store, settings: Settings, sock: socket.socket, base: str,
                 scenario, echo: Echo, limits: HttpLimits, deploy: Deployment) -> None:
    """Serve on `sock` (at `base`) until uvicorn exits (a signal), then close the provider,
    the store and the sandbox (`scenario`: the embedded sandbox's; None: no sandbox)."""
    sandbox = scenario is not None
    sandbox_server = await _start_sandbox(settings, scenario, echo) if sandbox else None
    if not sandbox and not (settings.provider.auth_id and settings.provider.auth_token):
        echo("warning: PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN are not set: Call API requests will fail "
             "(use --sandbox for simulated calls)", err=True)
    provider = Provider(settings.provider, max_connections=settings.provider_connections,
                        allow_private_http=settings.allow_private_http)
    service = Service(flows, store, provider, settings, params=deploy.params)
    service.flows_dir, service.params_path, service.allow_invalid = deploy.flows_dir, deploy.params_path, \
        deploy.allow_invalid
    await save_revisions(store, flows)  # before any run starts on them
    _reload_on_sighup(service)
    # log_config=None: uvicorn's records go through our handler (engine/service/logs.py)
    app = create_app(service, sandbox_server.app if sandbox_server else None)
    config = server_config(app, limits, log_level="warning", access_log=False, lifespan="on",
                           timeout_graceful_shutdown=10, log_config=None)
    server = ReadyServer(config, on_ready=lambda: echo(f"callflow serving on {base}"))
    _freeze_start_up_heap()
    try:
        await server.serve(sockets=[sock])
    finally:
        await provider.aclose()
        await store.close()
        if sandbox_server is not None:
            await sandbox_server.stop()


def _freeze_start_up_heap() -> None:
    """Move what start-up made (modules, flows, graphs: ~all the heap) out of the cyclic GC's
    reach, so that a full collection walks only what serving made since: measured
    (bench/scale_bench.py, docs/operations.md), each full collection otherwise paused the loop
    for tens of ms, every answer callback in flight with it. The frozen objects are still
    freed by reference counting; only cycles among them (none expected) would stay."""
    gc.collect()
    gc.freeze()


def _reload_on_sighup(service: Service) -> None:
    """SIGHUP re-reads FLOWS_DIR (all or nothing; the outcome is logged)."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task] = set()

    def hup() -> None:
        task = loop.create_task(reload_flows(service))
        pending.add(task)
        task.add_done_callback(pending.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no signals here (a thread)
        loop.add_signal_handler(signal.SIGHUP, hup)


async def _start_sandbox(settings: Settings, scenario, echo: Echo):
    """`--sandbox`: an embedded sandbox provider; `settings.provider` then points at it."""
    from engine.local.sandbox import SandboxCore
    from engine.local.sandbox_server import start_sandbox

    p = settings.provider
    if not (p.auth_id and p.auth_token):
        # No documented default: a token for this process only, so that nobody who read the
        # docs can sign callbacks to it (the trigger pair is generated the same way).
        from engine.local.sandbox_server import DEV_AUTH_ID

        p = ProviderConfig(DEV_AUTH_ID, secrets.token_urlsafe(30), p.api_url)
        echo("no PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN set: generated the sandbox provider's pair for this process:")
        echo(f"  PLIVO_AUTH_ID={p.auth_id}")
        echo(f"  PLIVO_AUTH_TOKEN={p.auth_token}")
    core = SandboxCore(scenario, auth_id=p.auth_id, auth_token=p.auth_token)
    sandbox_server, sandbox_url = await start_sandbox(core, "127.0.0.1", 0, app_url=settings.public_url)
    settings.provider = ProviderConfig(p.auth_id, p.auth_token, sandbox_url)
    echo(f"embedded sandbox provider on {sandbox_url} (simulated calls; nothing is dialled)")
    return sandbox_server


def event_loop_factory():
    """uvloop's loop when it is installed (as uvicorn itself picks it), else asyncio's."""
    if os.environ.get("CALLFLOW_LOOP", "auto") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
