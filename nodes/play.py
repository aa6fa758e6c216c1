"""play: play an audio file to the caller."""

from engine.fields import Integer, Url
from engine.node import Context, NodeType, Say
from engine.plivoxml import element
from engine.registry import register


@register
class Play(NodeType):
    name = "play"
    summary = "Play an audio file (Plivo <Play>)."
    config = {
        "url": Url(required=True, description="http(s) URL of an mp3 or wav file."),
        "loop": Integer(minimum=0, maximum=10000, description="Times to repeat (0: until the call ends)."),
    }
    call = "required"

    def run(self, ctx: Context):
        return Say(element("Play", ctx.value("url"), loop=ctx.value("loop")))
