"""call_out: place an outbound call through the provider's Call API and wait for it.

With `retry: {attempts: 3, interval: 60, on: [busy, no_answer]}` a call that ends with an
outcome in `on` is placed again: the step that placed it waits `interval` seconds on a
durable timer (it survives restarts of `callflow serve`; `run` and `test` jump the simulated
clock), then ends with the outcome `again` and the node runs as a new step, whose Call
request has its own callback URLs. The record shows each attempt; `attempts` counts them. A
call that may be up (a request in doubt, an answer whose callback was lost) is never placed
again.
"""

import re

from engine import codes
from engine.errors import NodeFailed
from engine.events import Callback, Request, Response, TimerFired
from engine.fields import ListOf, MapOf
from engine.node import AwaitCall, Context, Next, NodeType, Repeat, Send, SetTimer
from engine.registry import register
from engine.retries import check_retry_on, retry_field
from engine.scalar_fields import Choice, Integer, Phone, Text
from engine.templating import Template

HEADER_PART = re.compile(r"[A-Za-z0-9]+")
TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)  # what a template renders; the rest is fixed text
BUSY = {"busy"}
NO_ANSWER = {"no-answer", "timeout", "cancel"}
RETRYABLE = ("busy", "no_answer", "failed")  # outcomes that leave no call up
DEFAULT_RETRY_ON = ("busy", "no_answer")
MAX_INTERVAL = 24 * 3600


@register
class CallOut(NodeType):
    name = "call_out"
    summary = "Place an outbound call (Plivo Call API); later nodes run while it is up."
    fields = {
        "from": Phone(required=True, description="Caller id: E.164 number or SIP URI."),
        "to": ListOf(item=Phone(), one_or_many=True, min_items=1, required=True,
                     description="Destination(s): E.164 numbers or SIP URIs."),
        "sip_headers": MapOf(value=Text(), key_pattern=r"[A-Za-z0-9]+",
                             key_hint="SIP header names hold only A-Z, a-z and 0-9",
                             description="Custom SIP headers: name -> value (A-Z a-z 0-9); sent as X-PH-<name>."),
        "caller_name": Text(max_length=50, description="Caller name shown to the callee (at most 50 characters)."),
        "ring_timeout": Integer(minimum=1, maximum=120, description="Seconds to ring before no_answer."),
        "time_limit": Integer(minimum=1, maximum=14400, description="Longest call in seconds."),
        "machine_detection": Choice(choices=(True, False, "hangup"),
                                    description="Detect answering machines: true (machine outcome) or hangup."),
        "retry": retry_field(
            counts="Calls placed",
            interval=Integer(minimum=1, maximum=MAX_INTERVAL, default=60, templated=False,
                             description="Seconds from a call's end to the next attempt (a durable timer)."),
            on_item=Text(templated=False), on="Outcomes that place the call again: busy, no_answer, failed.",
            description="Place the call again after `interval` s (default 60) when its outcome is in `on` "
                        "(default [busy, no_answer]), up to `attempts` calls."),
    }
    outcomes = ("answered", "no_answer", "busy", "failed", "machine")
    outputs = ("call_uuid", "request_uuid", "from", "to", "status", "hangup_cause", "duration",
               "attempts", "params.*")  # params: the answer (or hangup) callback's parameters
    call_outcomes = frozenset({"answered", "machine"})
    waits = True

    def check(self, config, path, report):
        check_sip_headers(config, path, report)
        to = config.get("to")
        src = config.get("from")
        if isinstance(src, str) and (src == to or (isinstance(to, list) and src in to)):
            report.error(path + ("from",), codes.FROM_IN_TO, f"from {src!r} is also a destination")
        check_retry_on(config, path, report, self._retry_problem)

    def _retry_problem(self, outcome) -> str | None:
        if outcome in RETRYABLE:
            return None
        why = "it leaves the call up" if outcome in self.outcomes else "not an outcome of call_out"
        return f"retry on {outcome!r}: {why}; a call is placed again on {', '.join(RETRYABLE)}"

    def possible_outcomes(self, config):
        if config.get("machine_detection"):
            return self.outcomes
        return tuple(o for o in self.outcomes if o != "machine")  # a machine just answers

    def run(self, ctx: Context):
        if ctx.call and ctx.call.up:
            raise NodeFailed("a call is already up; hang it up before placing another")
        src = ctx.value("from")
        to = ctx.value("to")
        destinations = to if isinstance(to, list) else [to]
        if src in destinations:
            raise NodeFailed(f"from {src!r} is also a destination")
        body = {
            "from": src,
            "to": "<".join(destinations),
            "answer_url": ctx.callback_url("answer"),
            "answer_method": "POST",
            # The answer URL again, through the load balancer: a process killed while it
            # answered leaves Plivo to ask the fallback, which another process answers.
            "fallback_url": ctx.callback_url("answer"),
            "fallback_method": "POST",
            "hangup_url": ctx.callback_url("hangup"),
            "hangup_method": "POST",
            "ring_url": ctx.callback_url("ring"),
            "ring_method": "POST",
        }
        headers = sip_header_text(ctx)
        if headers:
            body["sip_headers"] = headers
        for key in ("caller_name", "ring_timeout", "time_limit"):
            if ctx.has(key):
                body[key] = ctx.value(key)
        detection = ctx.value("machine_detection")
        if detection:
            body["machine_detection"] = "hangup" if detection == "hangup" else "true"
        return Send(Request(ctx.name, "POST", ctx.env.api("Call"), json=body, provider=True))

    def resume(self, ctx: Context, event):
        if isinstance(event, TimerFired):  # the interval after a retried outcome is over: call again
            outputs = ctx.state.variables.get(ctx.name) or {}
            retry = ctx.value("retry")
            attempt = _attempt(ctx)
            return Repeat(dict(outputs), f"the call ended {outputs.get('status')}: placing it again after "
                                         f"{retry.get('interval', 60)} s (attempt {attempt + 1} of {retry['attempts']})")
        action = self._outcome(ctx, event)
        if not isinstance(action, Next) or not ctx.has("retry") or _may_be_up(event):
            return action
        retry = ctx.value("retry")
        attempt = _attempt(ctx)
        if action.outcome not in (retry.get("on") or DEFAULT_RETRY_ON) or attempt >= retry["attempts"]:
            return action
        # The outputs of this attempt stay readable while the timer runs (and after, if it is the last).
        return SetTimer(retry.get("interval", 60), outputs=action.outputs)

    def _outcome(self, ctx: Context, event: Response | Callback):
        outputs = ctx.state.variables.get(ctx.name) or {}
        if isinstance(event, Response):
            request = ctx.state.requests[-1]["json"]
            base = {"call_uuid": None, "request_uuid": None, "from": request["from"], "to": request["to"],
                    "status": "failed", "hangup_cause": None, "duration": 0, "attempts": _attempt(ctx), "params": {}}
            if event.in_doubt:
                return Next("failed", base, error=f"the Call API request was left in doubt ({event.error or 'no complete answer'}); "
                            "the call may have been placed, so it was not resent")
            if event.error:
                return Next("failed", base, error=f"Call API request failed: {event.error}")
            if not 200 <= event.status < 300:
                detail = event.body.get("error") if isinstance(event.body, dict) else event.body
                return Next("failed", base, error=f"Call API answered {event.status}: {detail}")
            body = event.body if isinstance(event.body, dict) else {}
            if not body.get("request_uuid"):
                # Not Plivo's "call fired": some other server (a wrong PLIVO_API_URL?) said 2xx.
                return Next("failed", base, error=f"Call API answered {event.status} without a request_uuid: "
                                                  f"no call was placed (is {_origin(ctx)} the provider's API?)")
            base["request_uuid"] = body.get("request_uuid")
            base["status"] = "queued"
            return AwaitCall(base, legs=len(request["to"].split("<")))
        assert isinstance(event, Callback)
        p = event.params
        outputs = dict(outputs, call_uuid=p.get("CallUUID"), params=dict(p))
        if event.kind == "answer":
            outputs["status"] = p.get("CallStatus", "in-progress")
            outcome = "machine" if p.get("Machine", "").lower() == "true" else "answered"
            return Next(outcome, outputs)
        status = p.get("CallStatus", "failed")
        outputs.update(status=status, hangup_cause=p.get("HangupCause"), duration=_int(p.get("Duration")))
        if status in BUSY:
            return Next("busy", outputs)
        if status in NO_ANSWER:
            return Next("no_answer", outputs)
        if status == "completed" and p.get("AnswerTime"):  # answered, but the answer callback never came
            return Next("failed", outputs, error=f"the call was answered but its answer callback never reached "
                                                 f"the service; it ended: {p.get('HangupCause')}")
        return Next("failed", outputs, error=f"call ended before answer: {status} ({p.get('HangupCause')})")


def _attempt(ctx: Context) -> int:
    """Which attempt step `ctx.seq` is: one more than the steps of this node just before it
    that ended asking again."""
    steps, seq = ctx.state.steps, ctx.seq - 1
    while seq >= 0 and steps[seq].node == ctx.name and steps[seq].outcome == "again":
        seq -= 1
    return ctx.seq - seq


def _may_be_up(event: Response | Callback) -> bool:
    """Does this failure leave a call that may exist (a request in doubt, a 2xx from something
    that is not the provider, a call answered whose answer callback was lost)? Never retried."""
    if isinstance(event, Response):
        return event.in_doubt or 200 <= event.status < 300
    return event.params.get("CallStatus") == "completed" and bool(event.params.get("AnswerTime"))


def check_sip_headers(config: dict, path: tuple, report) -> None:
    """The SIP header rules (docs/diagnostics.md): no X-PH- prefix, no names differing only
    in case, values of A-Z a-z 0-9 (the fixed text of a template too). call_out and
    call_forward (a Dial's sipHeaders) share them."""
    headers = config.get("sip_headers")
    headers = headers if isinstance(headers, dict) else {}
    seen: dict[str, str] = {}
    for name, value in headers.items():
        if name.upper().startswith(("X-PH-", "X_PH_")):
            report.error(path + ("sip_headers", name), codes.SIP_HEADER_PREFIX,
                         f"SIP header {name!r}: write the name without 'X-PH-'; the provider adds the prefix",
                         key=True)
        lowered = name.lower()
        if lowered in seen:
            report.error(path + ("sip_headers", name), codes.SIP_HEADER_DUPLICATE,
                         f"SIP header {name!r} repeats {seen[lowered]!r} (header names ignore case)", key=True)
        seen[lowered] = name
        if isinstance(value, str) and not HEADER_PART.fullmatch(value):
            report.error(path + ("sip_headers", name), codes.SIP_HEADER_VALUE,
                         f"SIP header {name!r}: value {value!r} may hold only A-Z, a-z and 0-9")
        elif isinstance(value, Template):
            fixed = TAGS.sub("", value.source)
            bad = sorted(set(HEADER_PART.sub("", fixed)))
            if bad:
                report.error(path + ("sip_headers", name), codes.SIP_HEADER_VALUE,
                             f"SIP header {name!r}: the fixed text of {value.source!r} holds "
                             f"{''.join(bad)!r}; values may hold only A-Z, a-z and 0-9")


def sip_header_text(ctx: Context) -> str | None:
    """The rendered `sip_headers` as Plivo takes them (`name=value,...`), or None; a rendered
    value that breaks the rule fails the node."""
    headers = ctx.value("sip_headers") or {}
    for name, value in headers.items():
        if not HEADER_PART.fullmatch(value):
            raise NodeFailed(f"SIP header {name!r}: rendered value {value!r} breaks the rule that "
                             "SIP header values hold only A-Z, a-z and 0-9")
    return ",".join(f"{k}={v}" for k, v in headers.items()) or None


def _origin(ctx: Context) -> str:
    url = ctx.state.requests[-1].get("url", "") if ctx.state.requests else ""
    return "/".join(url.split("/")[:3]) or "the configured URL"


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
