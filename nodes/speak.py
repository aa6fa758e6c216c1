"""speak: text-to-speech to the caller."""

from engine.node import AddVerb, Context, NodeType
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Integer, Text


@register
class Speak(NodeType):
    name = "speak"
    summary = "Speak text to the caller (Plivo <Speak>)."
    fields = {
        "text": Text(required=True, description="What to say."),
        "voice": Text(default="WOMAN", description="WOMAN, MAN or a Polly.* voice."),
        "language": Text(default="en-US", description="Language code, e.g. en-US."),
        "loop": Integer(minimum=0, maximum=10000, description="Times to repeat (0: until the call ends)."),
    }
    needs_call = "required"

    def run(self, ctx: Context):
        return AddVerb(element("Speak", ctx.value("text"), voice=ctx.value("voice"),
                           language=ctx.value("language"), loop=ctx.value("loop")))
