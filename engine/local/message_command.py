"""`callflow message URL --from NUMBER --text TEXT`: asks a sandbox to deliver an incoming SMS
to an application's message URL (`POST /sandbox/inbound-message`,
engine/local/sandbox_message.py) and prints what happened: the nodes of the run it started
(when the sandbox is the one embedded in `callflow serve --sandbox`, which knows the run)
and how it ended. The sandbox is found as `callflow call` finds it (engine/local/call_command.py).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.local.call_command import (
    BadInput,
    command,
    place_call,
    sandbox_endpoint,
    step_line,
)
from engine.local.incoming import APP_URL, DEFAULT_TO, MAX_TEXT
from engine.local.spoken import fit
from engine.scalar_fields import phone_problem


def build_request(url: str, sender: str, number: str | None, text: str, message_uuid: str | None) -> dict:
    """The body of POST /sandbox/inbound-message, checked first here so that a typo is one line."""
    if not APP_URL.fullmatch(url):
        raise BadInput(f"{url!r} is not an http(s) URL: give the flow's message URL, "
                       "e.g. http://127.0.0.1:8080/callbacks/inbound-message/FLOW_ID")
    for option, value in (("--from", sender), ("--to", number)):
        problem = phone_problem(value) if value is not None else None
        if problem:
            raise BadInput(f"{option}: {problem}")
    if len(text) > MAX_TEXT:
        raise BadInput(f"--text is longer than {MAX_TEXT} characters (Plivo's longest SMS)")
    body = {"url": url, "from": sender, "to": number or DEFAULT_TO, "text": text}
    if message_uuid:
        body["message_uuid"] = message_uuid
    return body


def result_lines(result: dict) -> list[str]:
    """One line for the message, one per node of the run, then how it ended."""
    lines = [f"incoming message from {result['from']} to {result['to']}: {result['text']!r}"
             f"  (message {result['message_uuid']})"]
    run = result.get("run")
    for step in (run or {}).get("steps", []):
        lines.append(step_line(step, run.get("variables") or {}))
    if result.get("error"):
        lines.append(f"not delivered: {result['error']}")
    elif run:
        lines.append(f"run {run['run_id']} {run['status']}" + (f": {run['error']}" if run.get("error") else ""))
    else:
        lines.append(f"delivered: the app answered HTTP {result['status']}"
                     + (f", run {result['run_id']}" if result.get("run_id") else ""))
    return [fit(line) for line in lines]


def message_main(url: str, sender: str, number: str | None, text: str, message_uuid: str | None,
                 sandbox: str | None, as_json: bool, echo: Callable[..., None]) -> int:
    """`callflow message`; returns the exit code (as `callflow call`'s)."""
    def ask() -> tuple[dict, list[str]]:
        body = build_request(url, sender, number, text, message_uuid)
        result = place_call(sandbox_endpoint(url, sandbox, "/sandbox/inbound-message"), body, what="message",
                            key="message_uuid")
        return result, result_lines(result)

    return command(ask, as_json, echo)
