"""http_request: call an HTTP API; 2xx takes `success`, anything else `failed`.

`retry: {attempts: 3, interval: 2, on: [connect, 429, 503]}` makes the request again on
those answers (default `on`: connect, 429, 502, 503, 504; a Retry-After is honoured up to
60 s), within the step: engine/retries.py says why. `attempts` counts the requests made;
the run record lists each one beside the request.
"""

from engine import codes
from engine.events import Request, Response
from engine.fields import AnyJson, Field, MapOf
from engine.node import Context, Next, NodeType, Send
from engine.registry import register
from engine.retries import (
    CLASSES,
    DEFAULT_ON,
    MAX_INTERVAL,
    HttpRetry,
    check_retry_on,
    on_problem,
    retry_field,
)
from engine.scalar_fields import Choice, Number, Text, Url


@register
class HttpRequest(NodeType):
    name = "http_request"
    summary = "Make an HTTP request; the response is available as status_code, headers and body."
    fields = {
        "method": Choice(choices=("GET", "POST", "PUT", "PATCH", "DELETE"), default="GET"),
        "url": Url(required=True, description="http(s) URL; may be a template."),
        "headers": MapOf(value=Text(), description="Request headers."),
        "params": MapOf(value=Text(), description="Query parameters."),
        "json": AnyJson(description="JSON body."),
        "form": MapOf(value=Text(), description="Form body (application/x-www-form-urlencoded)."),
        "timeout": Number(minimum=0.1, maximum=60, default=10, description="Seconds before failed."),
        "retry": retry_field(
            counts="Requests made",
            interval=Number(minimum=0.1, maximum=MAX_INTERVAL, default=1, templated=False,
                            description="Seconds between two attempts (at least; a longer Retry-After wins)."),
            on_item=Field(templated=False), on=f"What makes it again: {', '.join(CLASSES)} or HTTP status codes.",
            description="Make the request again after `interval` s (default 1) on an answer in `on` (default "
                        "connect, 429, 502, 503, 504), up to `attempts` requests; Retry-After honoured up to 60 s."),
    }
    outcomes = ("success", "failed")
    calls_http = True
    outputs = ("status_code", "headers.*", "body.*", "attempts")  # body: parsed JSON (any shape) or text

    def check(self, config, path, report):
        if "json" in config and "form" in config:
            report.error(path + ("form",), codes.CONFLICTING_KEYS, "give json or form, not both", key=True)
        check_retry_on(config, path, report, on_problem)

    def run(self, ctx: Context):
        return Send(Request(
            ctx.name, ctx.value("method"), ctx.value("url"),
            json=ctx.value("json"), form=ctx.value("form"), params=ctx.value("params"),
            headers=ctx.value("headers"), timeout=float(ctx.value("timeout")), retry=_retry(ctx),
        ))

    def resume(self, ctx: Context, event: Response):
        outputs = {"status_code": event.status, "headers": dict(event.headers), "body": event.body,
                   "attempts": len(event.attempts) or 1}
        if event.error or event.in_doubt:
            return Next("failed", outputs, error=event.error or "the request was left in doubt; not resent")
        if 200 <= event.status < 300:
            return Next("success", outputs)
        return Next("failed", outputs, error=f"HTTP {event.status}")


def _retry(ctx: Context) -> HttpRetry | None:
    if not ctx.has("retry"):
        return None
    retry = ctx.value("retry")
    on = tuple(retry["on"]) if retry.get("on") else DEFAULT_ON
    return HttpRetry(retry["attempts"], float(retry.get("interval", 1)), on)
