"""`callflow call URL --from NUMBER ...`: asks a sandbox to place an incoming call to an
application's answer URL (`POST /sandbox/inbound`, engine/local/sandbox_inbound.py) and
prints what happened, compactly: the nodes of the run it started (when the sandbox is the one
embedded in `callflow serve --sandbox`, which knows the run), what the caller heard, the keys
pressed, how the call ended.

The sandbox is, by default, the service that serves URL (`serve --sandbox` answers
/sandbox/inbound itself, behind its Basic auth: `CALLFLOW_AUTH_ID` / `CALLFLOW_AUTH_TOKEN`);
`--sandbox URL` names another (`callflow sandbox`, or the embedded one's own address).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from engine.local.incoming import APP_URL, DEFAULT_TO, parse_sip_headers
from engine.local.spoken import fit, heard, step_detail
from engine.scalar_fields import phone_problem

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
TIMEOUT = 120.0  # the request lasts as long as the call


class BadInput(ValueError):
    """A one-line reason the command cannot go ahead (exit 2)."""


def build_request(url: str, caller: str, number: str | None, header_pairs, digits, hangup_after) -> dict:
    """The body of POST /sandbox/inbound, checked first here so that a typo is one line."""
    if not APP_URL.fullmatch(url):
        raise BadInput(f"{url!r} is not an http(s) URL: give the flow's incoming-call URL, "
                       "e.g. http://127.0.0.1:8080/callbacks/inbound/FLOW_ID")
    for option, value in (("--from", caller), ("--to", number)):
        problem = phone_problem(value) if value is not None else None
        if problem:
            raise BadInput(f"{option}: {problem}")
    try:
        headers = parse_sip_headers(header_pairs)
    except ValueError as e:
        raise BadInput(f"-H: {e}") from None
    body: dict = {"url": url, "from": caller, "to": number or DEFAULT_TO}
    if headers:
        body["sip_headers"] = headers
    if digits:
        body["digits"] = list(digits)
    if hangup_after is not None:
        body["hangup_after"] = hangup_after
    return body


def sandbox_endpoint(url: str, sandbox: str | None, route: str = "/sandbox/inbound") -> str:
    base = sandbox or "{0.scheme}://{0.netloc}".format(urlsplit(url))
    if not APP_URL.fullmatch(base):
        raise BadInput(f"--sandbox {base!r} is not an http(s) URL")
    return base.rstrip("/") + route


def place_call(endpoint: str, body: dict, environ=os.environ, what: str = "call", key: str = "call_uuid") -> dict:
    """POST the call (or the message: `what`, its answer's `key`) to the sandbox; its answer.
    Raises BadInput (400), RuntimeError (anything else)."""
    auth_id, token = environ.get("CALLFLOW_AUTH_ID"), environ.get("CALLFLOW_AUTH_TOKEN")
    try:
        response = httpx.post(endpoint, json=body, timeout=TIMEOUT,
                              auth=(auth_id, token) if auth_id and token else None)
    except httpx.HTTPError as e:
        raise RuntimeError(f"cannot reach the sandbox at {endpoint}: {e} "
                           "(is callflow serve --sandbox or callflow sandbox running there?)") from None
    try:
        data = response.json()
    except ValueError:
        data = {}
    message = data.get("error") if isinstance(data, dict) else None
    if response.status_code == 400:
        raise BadInput(message or f"the sandbox refused the {what}")
    if response.status_code == 401:
        raise RuntimeError(f"{endpoint} wants the service's credentials: set CALLFLOW_AUTH_ID and "
                           "CALLFLOW_AUTH_TOKEN (serve prints the pair it generated)")
    if response.status_code != 200 or not isinstance(data, dict) or key not in data:
        raise RuntimeError(f"{endpoint} answered HTTP {response.status_code}: {message or response.text[:200]}")
    return data


def step_line(step: dict, variables: dict) -> str:
    again = step.get("outcome") == "again"  # asked again: its outputs are the later attempt's
    detail = "" if again else step_detail(step["type"], variables.get(step["node"]))
    error = f"  [{'note' if again else 'error'}: {step['error']}]" if step.get("error") else ""
    return (f"  {step['node']} ({step['type']}) -> {step.get('outcome') or '(end)'}"
            + (f"  {detail}" if detail else "") + error)


def result_lines(body: dict, result: dict) -> list[str]:
    """The compact report: one line per node and per document, then how it all ended."""
    headers = " ".join(f"{k}={v}" for k, v in body.get("sip_headers", {}).items())
    lines = [f"incoming call from {result['from']} to {result['to']}" + (f"  headers {headers}" if headers else "")
             + f"  (call {result['call_uuid']})"]
    run = result.get("run")
    for step in (run or {}).get("steps", []):
        lines.append(step_line(step, run.get("variables") or {}))
    digits = list(result.get("digits") or [])
    for document in result.get("documents", []):
        lines.append(f"  heard: {heard(document)}")
        if digits:
            lines.append(f"  pressed {digits.pop(0)}")
    problem = f": {result['error']}" if result.get("error") else ""
    lines.append(f"call ended: {result['status']} ({result['hangup_cause']}) after {result['duration']} s{problem}")
    for cb in result.get("callbacks", []):
        if cb.get("error"):
            lines.append(f"  {cb['kind']} {cb['url']}: {cb['error']}")
    if run:
        lines.append(f"run {run['run_id']} {run['status']}" + (f": {run['error']}" if run.get("error") else ""))
    elif result.get("run_id") is None and "run_id" in result:
        lines.append("no run: the call reached no flow of this service")
    return [fit(line) for line in lines]


def succeeded(result: dict) -> bool:
    run = result.get("run")
    return not result.get("error") and (run is None or run.get("status") == "completed")


def call_main(url: str, caller: str, number: str | None, header_pairs, digits, hangup_after, sandbox: str | None,
              as_json: bool, echo: Callable[..., None]) -> int:
    """`callflow call`; returns the exit code."""
    def ask() -> tuple[dict, list[str]]:
        body = build_request(url, caller, number, header_pairs, digits, hangup_after)
        result = place_call(sandbox_endpoint(url, sandbox), body)
        return result, result_lines(body, result)

    return command(ask, as_json, echo)


def command(ask: Callable[[], tuple[dict, list[str]]], as_json: bool, echo: Callable[..., None]) -> int:
    """Run `ask` (the sandbox's answer and its lines) and print them; the exit code: 2 for bad
    input, 1 for a failure (the sandbox unreachable, the call or the run failed), else 0."""
    try:
        result, lines = ask()
    except BadInput as e:
        echo(f"error: {e}", err=True)
        return EXIT_BAD_INPUT
    except RuntimeError as e:
        echo(f"error: {e}", err=True)
        return EXIT_FAILED
    if as_json:
        echo(json.dumps(result, indent=2))
    else:
        for line in lines:
            echo(line)
    return EXIT_OK if succeeded(result) else EXIT_FAILED
