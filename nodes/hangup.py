"""hangup: end the call (if one is up) and the path."""

from engine.node import Context, EndCall, Next, NodeType
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Choice


@register
class Hangup(NodeType):
    name = "hangup"
    summary = "Hang up the call if one is up; ends the path either way."
    fields = {"reason": Choice(choices=("rejected", "busy"), description="Reason given to the caller's network.")}
    outcomes = ()
    # Optional, so one `Done: hangup` node can close every path, answered or not.
    needs_call = "optional"

    def run(self, ctx: Context):
        if ctx.in_call:
            return EndCall(element("Hangup", reason=ctx.value("reason")))
        return Next(None)
