"""http_request: call an HTTP API; 2xx takes `success`, anything else `failed`."""

from engine import codes
from engine.events import Request, Response
from engine.fields import AnyJson, MapOf
from engine.node import Context, Next, NodeType, Send
from engine.registry import register
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
    }
    outcomes = ("success", "failed")
    calls_http = True
    outputs = ("status_code", "headers.*", "body.*")  # body: parsed JSON (any shape) or text

    def check(self, config, path, report):
        if "json" in config and "form" in config:
            report.error(path + ("form",), codes.CONFLICTING_KEYS, "give json or form, not both", key=True)

    def run(self, ctx: Context):
        return Send(Request(
            ctx.name, ctx.value("method"), ctx.value("url"),
            json=ctx.value("json"), form=ctx.value("form"), params=ctx.value("params"),
            headers=ctx.value("headers"), timeout=float(ctx.value("timeout")),
        ))

    def resume(self, ctx: Context, event: Response):
        outputs = {"status_code": event.status, "headers": dict(event.headers), "body": event.body}
        if event.error or event.in_doubt:
            return Next("failed", outputs, error=event.error or "the request was left in doubt; not resent")
        if 200 <= event.status < 300:
            return Next("success", outputs)
        return Next("failed", outputs, error=f"HTTP {event.status}")
