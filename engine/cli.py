"""`callflow` command line (contract section 2)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from engine.cli_start import not_taken, parse_start, start_options, start_run
from engine.diagnostics import Diagnostic
from engine.errors import FlowInvalid
from engine.jsontext import loads_json_strict

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for d in diagnostics:
        click.echo(str(d), err=True)


def _params_file(path: str | None) -> dict:
    """The --params FILE mapping ({} without one), or exit with one `error:` line."""
    from engine.load.params_file import ParamsFileError, load_params_file

    try:
        return load_params_file(path)
    except ParamsFileError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)


def _parse_payload(pairs: tuple[str, ...], payload_json: str | None) -> dict:
    from engine.events import payload_problems

    payload: dict = {}
    if payload_json is not None:
        try:
            data = loads_json_strict(payload_json)
        except json.JSONDecodeError as e:
            raise click.BadParameter(f"not JSON: {e.msg} at column {e.colno}", param_hint="--payload") from None
        if not isinstance(data, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--payload")
        problems = payload_problems(data)
        if problems:
            raise click.BadParameter(problems[0][1], param_hint="--payload")
        payload.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="-p")
        payload[key] = value
    problems = payload_problems(payload)
    if problems:
        raise click.BadParameter(problems[0][1], param_hint="-p")
    return payload


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="callflow")
def main() -> None:
    """Call flows as code: validate, test, run and serve PHLO-style flows."""


@main.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option("-p", "pairs", multiple=True, metavar="KEY=VALUE", help="Payload value (repeatable).")
@click.option("--payload", "payload_json", metavar="JSON", help="Payload as a JSON object.")
@click.option("--scenario", type=click.Path(dir_okay=False), help="How simulated callees behave (YAML).")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Trace every request, response, callback and XML document.")
@click.option("--http", "http_mode", type=click.Choice(["mock", "live"]), default="mock", show_default=True,
              help="http_request nodes: mocked responses only (unmocked: the node fails), or real requests.")
@click.option("--live", is_flag=True, help="Use the configured Plivo account (real calls).")
@click.option("--public-url", envvar="CALLFLOW_PUBLIC_URL", help="Public base URL for callbacks (with --live).")
@start_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Where to listen for callbacks (with --live).")
@click.option("--port", default=8080, show_default=True, type=int, help="Port for callbacks (with --live).")
@click.option("--params", "params_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Param values (YAML: name -> value, or flow id -> mapping); CALLFLOW_PARAM_<NAME> wins.")
@click.option("--now", metavar="TIME", help="Fix the run's clock: ISO 8601 with offset (2026-12-24T16:00:00-05:00).")
def run(flow, pairs, payload_json, scenario, as_json, verbose, http_mode, live, public_url, call_from, call_to,
        sip_headers, message_from, message_to, text, host, port, params_file, now):
    """Run FLOW once on the embedded sandbox and print its trace."""
    from engine.load.build import load_flow
    from engine.load.params_file import values_for
    from engine.local.in_call import parse_now
    from engine.local.run import LocalRun, run_record
    from engine.local.scenario import Scenario, load_scenario
    from engine.local.trace import Tracer

    try:
        payload = _parse_payload(pairs, payload_json)
    except click.BadParameter as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    file_params = _params_file(params_file)
    try:
        loaded = load_flow(flow)
        behaviour = load_scenario(scenario) if scenario else Scenario()
    except FlowInvalid as e:
        _print_diagnostics(e.diagnostics)
        sys.exit(EXIT_BAD_INPUT)
    try:
        start = parse_start(call_from, call_to, sip_headers, message_from, message_to, text)
    except click.BadParameter as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    for option, given in (("--call-from", call_from), ("--message-from", message_from), ("--now", now)):
        if given and live:
            click.echo(f"error: {option} is for runs on the embedded sandbox; it cannot be combined with --live", err=True)
            sys.exit(EXIT_BAD_INPUT)
    if now:
        instant = parse_now(now)
        if isinstance(instant, str):
            click.echo(f"error: --now: {instant}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        behaviour = replace(behaviour, now=instant)
    unrouted = not_taken(loaded, start)
    if unrouted:
        click.echo(f"error: {unrouted}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    missing = [] if start.kind != "http" else loaded.missing_payload(payload)
    if missing:
        click.echo(f"error: the run request must supply {', '.join(missing)} (required by {loaded.trigger})",
                   err=True)
        sys.exit(EXIT_BAD_INPUT)
    if live:
        from engine.service.live import run_live

        sys.exit(run_live(loaded, payload, public_url, as_json, host=host, port=port, echo=click.echo,
                          params=file_params))
    tracer = None if as_json else Tracer(click.echo, verbose=verbose)
    if tracer:
        click.echo(f"run of {loaded.id} on the embedded sandbox: no real call is placed"
                   + ("; http_request nodes make real requests (--http live)" if http_mode == "live" else ""))
    runner = LocalRun(loaded, behaviour, on_progress=tracer, live_http=http_mode == "live",
                      params=values_for(loaded, file_params))
    if tracer:
        tracer.elapsed = lambda: runner.simulated
    state = start_run(runner, start, payload)
    if as_json:
        click.echo(json.dumps(run_record(state, runner), indent=2))
    else:
        click.echo(f"run {state.run_id} {state.status} in {runner.simulated:.1f} s simulated time"
                   + (f": {state.error}" if state.error else "") + ("" if verbose else " (-v: HTTP detail)"))
    sys.exit(EXIT_OK if state.status == "completed" else EXIT_FAILED)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github", "auto"]), default="text",
              show_default=True, help="auto: github inside GitHub Actions ($GITHUB_ACTIONS), else text.")
@click.option("--strict", is_flag=True, help="Warnings fail too.")
@click.option("--params", "params_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also check every declared param gets a value from FILE (or the environment): YAML name -> value, or flow id -> mapping.")
def validate(paths, fmt, strict, params_file):
    """Check flow files and folders offline; print every diagnostic."""
    import os

    from engine.load.discover import validate_paths
    from engine.load.report import format_diagnostics

    if fmt == "auto":  # pre-commit hooks run in terminals and in CI alike
        fmt = "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"

    file_params = _params_file(params_file)
    diagnostics, checked = validate_paths([Path(p) for p in paths], file_params if params_file else None)
    out = format_diagnostics(diagnostics, fmt, checked)
    if out:
        click.echo(out)
    failing = [d for d in diagnostics if d.severity == "error" or (strict and d.severity == "warning")]
    sys.exit(EXIT_FAILED if failing else EXIT_OK)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--scenario", type=click.Path(dir_okay=False), help="How simulated callees behave (YAML).")
@click.option("--auth-id", envvar="PLIVO_AUTH_ID", help="Account auth id (default: $PLIVO_AUTH_ID).")
@click.option("--auth-token", envvar="PLIVO_AUTH_TOKEN", help="Account auth token (default: $PLIVO_AUTH_TOKEN).")
def sandbox(host, port, scenario, auth_id, auth_token):
    """A local Plivo-compatible voice API that plays simulated calls."""
    import re

    from engine.local.sandbox import SandboxCore
    from engine.local.sandbox_server import DEV_AUTH_ID, DEV_AUTH_TOKEN, run_sandbox
    from engine.local.scenario import Scenario, load_scenario

    try:
        behaviour = load_scenario(scenario) if scenario else Scenario()
    except FlowInvalid as e:
        _print_diagnostics(e.diagnostics)
        sys.exit(EXIT_BAD_INPUT)
    if not auth_id and not auth_token:
        auth_id, auth_token = DEV_AUTH_ID, DEV_AUTH_TOKEN
        click.echo(f"no credentials configured: using the development pair auth id {auth_id}, "
                   f"auth token {auth_token}")
    elif not auth_id or not auth_token:
        click.echo("error: give both an auth id and an auth token (--auth-id/--auth-token or "
                   "PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN), or neither for the development pair", err=True)
        sys.exit(EXIT_BAD_INPUT)
    elif not re.fullmatch(r"(MA|SA)[A-Z0-9]{18}", auth_id):
        click.echo(f"warning: auth id {auth_id!r} does not look like Plivo's (MA or SA + 18 letters/digits); "
                   "the official SDKs will refuse it", err=True)
    core = SandboxCore(behaviour, auth_id=auth_id, auth_token=auth_token)
    from engine.service.limits import limits_from_env

    try:
        limits_from_env()  # CALLFLOW_HTTP_*: a bad value is one line before anything listens
    except ValueError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    try:
        run_sandbox(core, host, port, on_ready=lambda url: click.echo(f"sandbox listening on {url}"))
    except OSError as e:
        click.echo(f"error: cannot listen on {host}:{port}: {e.strerror or e}", err=True)
        sys.exit(EXIT_FAILED)


@main.command()
@click.argument("flows_dir", required=False, default=".", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--db", envvar="CALLFLOW_DB", metavar="URL",
              help="Run store: sqlite:///path/to/file.db (default: callflow.db in the current folder) or "
              "postgresql://user:password@host:port/database.")
@click.option("--sandbox", is_flag=True, help="Place simulated calls on an embedded sandbox provider.")
@click.option("--scenario", type=click.Path(dir_okay=False),
              help="How the embedded sandbox's callees behave (YAML; with --sandbox).")
@click.option("--log-format", envvar="CALLFLOW_LOG_FORMAT", type=click.Choice(["auto", "json", "text"]),
              default="auto", show_default=True, help="Log lines on stderr: JSON objects, or text (auto: "
              "text on a terminal, else JSON).")
@click.option("--log-level", envvar="CALLFLOW_LOG_LEVEL", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="Least severe log lines shown.")
@click.option("--params", "params_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Param values (YAML: name -> value, or flow id -> mapping); CALLFLOW_PARAM_<NAME> wins.")
@click.option("--allow-invalid", is_flag=True, help="Start with the valid flows when some files are invalid "
              "(reported); by default any invalid file refuses the start.")
def serve(flows_dir, host, port, db, sandbox, scenario, log_format, log_level, params_file, allow_invalid):
    """Serve every flow under FLOWS_DIR over HTTP (PHLO-compatible run API, provider callbacks).
    SIGHUP (or POST /v1/flows/reload) re-reads FLOWS_DIR: all files or nothing."""
    from engine.service.main import serve_main

    file_params = _params_file(params_file)
    sys.exit(serve_main(flows_dir, host, port, db, sandbox, click.echo, log_format, log_level, scenario,
                        params=file_params, allow_invalid=allow_invalid, params_path=params_file))


@main.command()
@click.argument("url")
@click.option("--from", "caller", required=True, metavar="NUMBER", help="The caller: E.164 (+1...) or SIP URI.")
@click.option("--to", "number", metavar="NUMBER", help="The number dialled (default +12025551234).")
@click.option("-H", "sip_headers", multiple=True, metavar="NAME=VALUE",
              help="SIP header the caller sends, arriving as X-PH-NAME (repeatable).")
@click.option("--digits", multiple=True, metavar="KEYS", help="Keys pressed at each prompt, in order (repeatable).")
@click.option("--hangup-after", type=click.FloatRange(0), metavar="SECONDS", help="Hang up this long after the answer.")
@click.option("--sandbox", "sandbox_url", envvar="CALLFLOW_SANDBOX_URL", metavar="URL",
              help="The sandbox that places the call (default: the serve --sandbox at URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the sandbox's answer as JSON.")
def call(url, caller, number, sip_headers, digits, hangup_after, sandbox_url, as_json):
    """Place a simulated incoming call to URL, a flow's incoming-call URL
    (http://HOST:PORT/callbacks/inbound/FLOW_ID), and print what happened."""
    from engine.local.call_command import call_main

    sys.exit(call_main(url, caller, number, sip_headers, digits, hangup_after, sandbox_url, as_json, click.echo))


@main.command()
@click.argument("url")
@click.option("--from", "sender", required=True, metavar="NUMBER", help="The sender: E.164 (+1...).")
@click.option("--to", "number", metavar="NUMBER", help="The number written to (default +12025551234).")
@click.option("--text", default="", metavar="TEXT", help="The message's text.")
@click.option("--message-uuid", metavar="ID", help="The message's id (default: a new one; the same id again is a retry).")
@click.option("--sandbox", "sandbox_url", envvar="CALLFLOW_SANDBOX_URL", metavar="URL",
              help="The sandbox that delivers the message (default: the serve --sandbox at URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the sandbox's answer as JSON.")
def message(url, sender, number, text, message_uuid, sandbox_url, as_json):
    """Deliver a simulated incoming SMS to URL, a flow's message URL
    (http://HOST:PORT/callbacks/inbound-message/FLOW_ID), and print what happened."""
    from engine.local.message_command import message_main

    sys.exit(message_main(url, sender, number, text, message_uuid, sandbox_url, as_json, click.echo))


@main.group()
def db():
    """The run store's database."""


@db.command("upgrade")
@click.option("--db", "url", envvar="CALLFLOW_DB", metavar="URL", required=True,
              help="Run store: sqlite:///path/to/file.db or postgresql://user:password@host:port/database.")
def db_upgrade(url):
    """Migrate the database to this callflow's schema (as `serve` does at start) and print its version."""
    from engine.service.main import upgrade_main

    sys.exit(upgrade_main(url, click.echo))


@main.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid",
              show_default=True, help="Mermaid flowchart, Graphviz DOT, or a laid-out SVG image.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write to FILE instead of standard output.")
def graph(flow, fmt, output):
    """Draw FLOW: nodes with their types, edges with their outcomes, error edges dashed.

    An invalid flow is drawn too, as far as it parses, its broken parts in red (its
    diagnostics go to stderr, and the exit status is 1, as `validate`'s); exit 2 when
    nothing can be drawn."""
    from engine.graph_export import render
    from engine.load.build import check_source, read_flow_file
    from engine.load.sketch import sketch

    text, problems = read_flow_file(flow)
    drawable, diagnostics = None, problems
    if text is not None:
        drawable, diagnostics, doc = check_source(text, flow)
        if drawable is None:
            drawable = sketch(doc, diagnostics)
            _print_diagnostics(diagnostics)
    if drawable is None:
        _print_diagnostics(problems)
        click.echo("error: nothing to draw: the file holds no nodes that parse", err=True)
        sys.exit(EXIT_BAD_INPUT)
    data = render(drawable, fmt).encode("utf-8")
    if output is None or output == "-":
        click.echo(data, nl=False)  # bytes: written as they are, on every platform
    else:
        try:
            Path(output).write_bytes(data)
        except OSError as e:
            click.echo(f"error: cannot write {output}: {e.strerror}", err=True)
            sys.exit(EXIT_BAD_INPUT)
    if not hasattr(drawable, "graph"):  # a sketch of a flow that does not load
        sys.exit(EXIT_FAILED)


@main.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--update", is_flag=True, help="Rewrite the expectations of failing (or new) cases from their runs.")
@click.option("--coverage", "show_coverage", is_flag=True, help="List routed outcomes no case takes.")
@click.option("--min-coverage", type=click.FloatRange(0, 100), metavar="PERCENT",
              help="Fail when a flow's cases take less than PERCENT of its routed outcomes (implies --coverage).")
@click.option("-k", "patterns", multiple=True, metavar="PATTERN",
              help="Run only cases whose flow/case label contains PATTERN (or matches it as a glob: *, ?).")
@click.option("--params", "params_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Param values (YAML: name -> value, or flow id -> mapping); CALLFLOW_PARAM_<NAME> wins.")
def test_command(paths, update, show_coverage, min_coverage, patterns, params_file):
    """Run the flow test cases (<flow>.test.yaml) found under PATHS: simulated calls, no network."""
    from engine.local.flowtest import run_tests

    sys.exit(run_tests([Path(p) for p in paths], update=update, show_coverage=show_coverage,
                       patterns=patterns, min_coverage=min_coverage, echo=click.echo,
                       file_params=_params_file(params_file)))


@main.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write it to a file instead.")
@click.option("--kind", type=click.Choice(["flow", "test", "scenario"]), default="flow", show_default=True,
              help="Flow files, flow test files (<flow>.test.yaml) or scenario files.")
def schema(output, kind):
    """Print the JSON Schema (draft 2020-12) of flow, test or scenario files, for editors."""
    if kind == "flow":
        from engine.load.schema import schema_text

        text = schema_text()
    else:
        from engine.local.file_schemas import schema_text as file_schema_text

        text = file_schema_text(kind)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


from engine.cli_campaign import campaign  # noqa: E402  (a command group of its own module)

main.add_command(campaign)

if __name__ == "__main__":  # pragma: no cover
    main()
