"""play: play an audio file to the caller."""

from engine.node import AddVerb, Context, NodeType
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Integer, Url


@register
class Play(NodeType):
    name = "play"
    summary = "Play an audio file (Plivo <Play>)."
    fields = {
        "url": Url(required=True, description="http(s) URL of an mp3 or wav file."),
        "loop": Integer(minimum=0, maximum=10000, description="Times to repeat (0: until the call ends)."),
    }
    needs_call = "required"

    def run(self, ctx: Context):
        return AddVerb(element("Play", ctx.value("url"), loop=ctx.value("loop")))
