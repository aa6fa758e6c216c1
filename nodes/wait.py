"""wait: silence on the call for some seconds."""

from engine.node import AddVerb, Context, NodeType
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Integer


@register
class Wait(NodeType):
    name = "wait"
    summary = "Pause the call (Plivo <Wait>)."
    fields = {"seconds": Integer(required=True, minimum=1, maximum=3600, description="Seconds of silence.")}
    needs_call = "required"

    def run(self, ctx: Context):
        return AddVerb(element("Wait", length=ctx.value("seconds")))
