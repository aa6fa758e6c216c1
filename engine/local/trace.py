"""The trace `callflow run` prints as a run goes.

By default it is compact, one line per event a flow author cares about, at most `WIDTH`
characters: each node and its outcome (with what it did: the number called, the digits
pressed, the HTTP status), what the callee hears, how each call ended, and the time on
the simulated calls' clock (ringing, speech and digit timeouts take the time they would on
a real call). `-v` (`verbose=True`) prints every request with its body, every response,
every callback with its URL, and every XML document, like `kubectl -v` or `terraform
TF_LOG`.
"""

from __future__ import annotations

import json
import textwrap
from typing import Callable

from engine.events import InboundMessage, Response
from engine.local.run import SANDBOX_ENV, TimerDue
from engine.local.sandbox import Callback as SimCallback
from engine.local.spoken import WIDTH, fit, heard, step_detail
from engine.state import RunState

_INDENT = " " * 9


class Tracer:
    """`on_progress` of a `LocalRun`: prints the trace through `write`. Steps are timed by
    the run's own clock; `elapsed()`, the seconds since the run started on the simulated
    calls' clock, times callbacks (a `LocalRun` sets it to its own)."""

    def __init__(self, write: Callable[[str], None], verbose: bool = False):
        self.write = write
        self.verbose = verbose
        self.elapsed: Callable[[], float] = lambda: 0.0
        self.steps = self.requests = self.documents = 0
        self.open_step: int | None = None

    def _line(self, text: str, seconds: float | None = None) -> None:
        prefix = f"{seconds:7.1f}s " if seconds is not None else _INDENT
        self.write(fit(prefix + text))

    def __call__(self, state: RunState, item) -> None:
        if isinstance(item, SimCallback):
            return self._callback(item)
        if isinstance(item, TimerDue):
            if self.verbose:
                self.write(f"    <- timer of {item.node} due at {item.elapsed:.1f}s (simulated clock: no real wait)")
            return
        if isinstance(item, InboundMessage):
            p = item.params
            return self._line(f"incoming message from {p.get('From')} to {p.get('To')}: {p.get('Text')!r}",
                              self.elapsed())
        if isinstance(item, Response):
            if self.verbose:
                body = json.dumps(item.body)[:300] if item.body is not None else ""
                self.write(f"       response: {item.error or item.status} {body}")
            return
        while self.steps < len(state.steps):
            step = state.steps[self.steps]
            if step.ended_at is None and state.waiting and state.waiting.seq == self.steps:
                if self.verbose and self.open_step != self.steps:
                    until = state.waiting.until
                    due = f" (due at {until - state.created_at:.1f}s)" if until is not None else ""
                    self.write(f"  {step.node} ({step.type}) ... waiting for {state.waiting.reason}{due}")
                    self.open_step = self.steps
                    self._new_requests(state)  # a node waits right after its request
                break
            self._step(state, step)
            self.steps += 1
        self._new_requests(state)
        while self.documents < len(state.documents):
            xml = state.documents[self.documents]
            if self.verbose:
                self.write(f"    -> XML: {xml}")
            else:
                self._line(heard(xml))
            self.documents += 1

    def _step(self, state: RunState, step) -> None:
        head = f"{step.node} ({step.type}) -> {step.outcome or '(end)'}"
        label = "note" if step.outcome == "again" else "error"  # why it asked again is no failure
        error = f"  [{label}: {step.error}]" if step.error else ""
        if self.verbose:
            self.write(f"  {head}{error}")
            return
        detail = "" if step.outcome == "again" else (  # its outputs are the later attempt's
            step_detail(step.type, state.variables.get(step.node)) or _timer_detail(step))
        request = next((r for r in reversed(state.requests) if r["node"] == step.node), None)
        body = request.get("json") if request else None
        if step.type == "call_out" and isinstance(body, dict) and body.get("sip_headers"):
            detail += f", SIP headers {body['sip_headers']}"
        elif step.type == "send_sms" and isinstance(body, dict) and body.get("dst"):
            detail = f"to {body['dst']}"
        refused = [str(a.get("status") or "no connection") for a in (request or {}).get("attempts", [])[:-1]]
        if refused:  # the scenario's api: refusals, sent again as serve does
            detail += f", sent {len(refused) + 1} times (refused: {', '.join(refused)})"
        at = (step.ended_at or step.started_at) - state.created_at  # the run's clock: simulated on the sandbox
        self._line(head + (f"  {detail}" if detail else ""), at)
        if step.error:  # in full, wrapped: it says what to do
            for line in textwrap.wrap(f"{label}: {step.error}", WIDTH - len(_INDENT)):
                self.write(_INDENT + line)

    def _callback(self, cb: SimCallback) -> None:
        params = cb.params
        if self.verbose:
            shown = {k: v for k, v in params.items()
                     if k in ("CallStatus", "Digits", "HangupCause", "Machine") or k.startswith("X-PH-")}
            self.write(f"    <- {cb.kind} callback {cb.method} {cb.url} " + " ".join(f"{k}={v}" for k, v in shown.items()))
        elif cb.kind == "hangup":
            who = params.get("From") if params.get("Direction") == "inbound" else params.get("To")
            self._line(f"call {'from' if params.get('Direction') == 'inbound' else 'to'} {who} ended: "
                       f"{params.get('CallStatus')} ({params.get('HangupCause')}) after {params.get('Duration', 0)} s",
                       self.elapsed())
        elif cb.kind == "answer" and params.get("Direction") == "inbound":
            headers = " ".join(f"{k[5:]}={v}" for k, v in params.items() if k.startswith("X-PH-"))
            self._line(f"incoming call from {params.get('From')} to {params.get('To')}"
                       + (f"  headers {headers}" if headers else ""), self.elapsed())

    def _new_requests(self, state: RunState) -> None:
        while self.requests < len(state.requests):
            r = state.requests[self.requests]
            if self.verbose:
                where = "  (answered by the embedded sandbox)" if r["url"].startswith(SANDBOX_ENV.api_url) else ""
                self.write(f"    -> {r['method']} {r['url']} {json.dumps(r.get('json'))}{where}")
            self.requests += 1


def _timer_detail(step) -> str:
    """`waited 1 d 2 h on a timer` for a wait outside a call (in a call it takes no time)."""
    if step.type != "wait" or step.ended_at is None or step.ended_at <= step.started_at:
        return ""
    return f"waited {duration(step.ended_at - step.started_at)} on a timer"


def duration(seconds: float) -> str:
    """`90061` -> `1 d 1 h 1 min 1 s`; under a minute `12.5 s`."""
    if seconds < 60:
        return f"{seconds:g} s"
    parts, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    return " ".join(parts)
