"""How `callflow run` starts a run: a run request (`-p`, `--payload`), an incoming call
(`--call-from`, `--call-to`, `-H`) or an incoming SMS (`--message-from`, `--message-to`,
`--text`). The options and their checks, each mistake one `error:` line (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

DEFAULT_TO = "+12025551234"  # engine.local.incoming.DEFAULT_TO, without importing it at startup


@dataclass(frozen=True)
class Start:
    """The run's first event as the options give it: `kind` is the trigger outcome it takes."""

    kind: str  # "http", "call" or "message"
    sender: str | None = None  # the caller or the SMS's sender
    number: str = DEFAULT_TO  # the number dialled or texted
    headers: dict = field(default_factory=dict)  # the call's SIP headers
    text: str = ""  # the SMS's text


def start_options(command):
    """The options that start a run with an incoming call or SMS, on `callflow run`."""
    options = [
        click.option("--call-from", metavar="NUMBER", help="Start with an incoming call from NUMBER (trigger: call)."),
        click.option("--call-to", metavar="NUMBER", default=DEFAULT_TO, show_default=True,
                     help="The number the incoming call dialled."),
        click.option("-H", "sip_headers", multiple=True, metavar="NAME=VALUE", help="SIP header of the incoming call."),
        click.option("--message-from", metavar="NUMBER",
                     help="Start with an incoming SMS from NUMBER (trigger: message)."),
        click.option("--message-to", metavar="NUMBER", help=f"The number the SMS was sent to (default {DEFAULT_TO})."),
        click.option("--text", metavar="TEXT", help="The incoming SMS's text ({{ Start.message.text }})."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def parse_start(call_from: str | None, call_to: str, pairs: tuple[str, ...], message_from: str | None,
                message_to: str | None, text: str | None) -> Start:
    """The checked start; raises click.BadParameter naming the option. Numbers are checked as
    flows check phone numbers. `-H X-PH-tier=gold` means the header `tier`: the `X-PH-` prefix
    is how the provider's callbacks carry a custom header, so users copy it from there."""
    from engine.local.incoming import MAX_TEXT, parse_sip_headers
    from engine.scalar_fields import phone_problem

    for option, number in (("--call-from", call_from), ("--call-to", call_to),
                           ("--message-from", message_from), ("--message-to", message_to)):
        problem = phone_problem(number) if number is not None else None
        if problem:
            raise click.BadParameter(problem, param_hint=option)
    try:
        headers = parse_sip_headers(pairs)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="-H") from None
    if headers and not call_from:
        raise click.BadParameter("SIP headers belong to an incoming call: add --call-from NUMBER", param_hint="-H")
    if call_from and message_from:
        raise click.BadParameter("a run starts with an incoming call or an incoming SMS, not both",
                                 param_hint="--message-from")
    for option, given in (("--message-to", message_to), ("--text", text)):
        if given is not None and not message_from:
            raise click.BadParameter("belongs to an incoming SMS: add --message-from NUMBER", param_hint=option)
    if text is not None and len(text) > MAX_TEXT:
        raise click.BadParameter(f"is longer than {MAX_TEXT} characters (Plivo's longest SMS)", param_hint="--text")
    if message_from:
        return Start("message", message_from, message_to or DEFAULT_TO, text=text or "")
    if call_from:
        return Start("call", call_from, call_to, headers)
    return Start("http")


def not_taken(flow, start: Start) -> str | None:
    """Why `flow` cannot take an incoming SMS (its trigger routes no `message`), else None."""
    from engine.events import InboundMessage

    if start.kind == "message" and flow.start_target(InboundMessage) is None:
        return (f"--message-from: {flow.id} takes no incoming SMS: its trigger {flow.trigger!r} routes no "
                "`message` outcome (next: {message: NODE})")
    return None


def start_run(runner, start: Start, payload: dict):
    """The run `start` says, on a `LocalRun`; its final state."""
    if start.kind == "call":
        return runner.run_inbound(start.sender, start.number, start.headers)
    if start.kind == "message":
        return runner.run_message(start.sender, start.number, start.text)
    return runner.run(payload)
