"""send_sms: send a text message through the provider's Message API."""

from engine.events import Request, Response
from engine.node import Context, Next, NodeType, Send
from engine.registry import register
from engine.scalar_fields import Phone, Text


@register
class SendSms(NodeType):
    name = "send_sms"
    summary = "Send an SMS (Plivo Message API)."
    fields = {
        "from": Phone(required=True, description="Sender number."),
        "to": Phone(required=True, description="Destination number."),
        "text": Text(required=True, description="Message text."),
    }
    outcomes = ("sent", "failed")
    outputs = ("message_uuid",)

    def run(self, ctx: Context):
        body = {"src": ctx.value("from"), "dst": ctx.value("to"), "text": ctx.value("text")}
        return Send(Request(ctx.name, "POST", ctx.env.api("Message"), json=body, provider=True))

    def resume(self, ctx: Context, event: Response):
        if event.error or event.in_doubt:
            return Next("failed", {"message_uuid": None}, error=event.error or "the request was left in doubt; not resent")
        body = event.body if isinstance(event.body, dict) else {}
        if not 200 <= event.status < 300:
            return Next("failed", {"message_uuid": None},
                        error=f"Message API answered {event.status}: {body.get('error', event.body)}")
        uuids = body.get("message_uuid")
        if not uuids:  # not Plivo's "message(s) queued": some other server (a wrong PLIVO_API_URL?) said 2xx
            return Next("failed", {"message_uuid": None},
                        error=f"Message API answered {event.status} without a message_uuid: no message was sent")
        return Next("sent", {"message_uuid": uuids[0] if isinstance(uuids, list) else uuids})
