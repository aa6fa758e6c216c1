"""wait: silence on the call for some seconds."""

from engine.fields import Integer
from engine.node import Context, NodeType, Say
from engine.plivoxml import element
from engine.registry import register


@register
class Wait(NodeType):
    name = "wait"
    summary = "Pause the call (Plivo <Wait>)."
    config = {"seconds": Integer(required=True, minimum=1, maximum=3600, description="Seconds of silence.")}
    call = "required"

    def run(self, ctx: Context):
        return Say(element("Wait", length=ctx.value("seconds")))
