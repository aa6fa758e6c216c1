"""get_input: prompt the caller and collect digits; the run waits for them."""

from engine import codes
from engine.events import Callback
from engine.node import Context, Listen, Next, NodeType
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Integer, Text, Url


@register
class GetInput(NodeType):
    name = "get_input"
    summary = "Prompt and collect DTMF digits (Plivo <GetDigits>)."
    fields = {
        "prompt": Text(description="Text spoken while waiting for digits."),
        "play": Url(description="Audio played while waiting for digits (instead of prompt)."),
        "num_digits": Integer(minimum=1, maximum=99, description="Digits to collect."),
        "timeout": Integer(minimum=1, maximum=100, default=5, description="Seconds to wait for the first digit."),
        "finish_on_key": Text(default="#", description="Key that ends the input."),
        "valid_digits": Text(description="Digits accepted, e.g. 0123456789*#."),
        "voice": Text(default="WOMAN", description="Voice of the prompt."),
        "language": Text(default="en-US", description="Language of the prompt."),
    }
    outcomes = ("input", "no_input")
    outputs = ("digits",)
    needs_call = "required"
    waits = True

    def check(self, config, path, report):
        if "prompt" in config and "play" in config:
            report.error(path + ("play",), codes.CONFLICTING_KEYS, "give prompt or play, not both", key=True)

    def run(self, ctx: Context):
        if ctx.has("play"):
            inner = (element("Play", ctx.value("play")),)
        elif ctx.has("prompt"):
            inner = (element("Speak", ctx.value("prompt"), voice=ctx.value("voice"),
                             language=ctx.value("language")),)
        else:
            inner = ()
        gather = element(
            "GetDigits", children=inner, action=ctx.callback_url("digits"), method="POST",
            timeout=ctx.value("timeout"), numDigits=ctx.value("num_digits"),
            finishOnKey=ctx.value("finish_on_key"), validDigits=ctx.value("valid_digits"), redirect=True,
        )
        # Plivo moves on to the next element when no digit comes: that is our no_input.
        return Listen((gather, element("Redirect", ctx.callback_url("no_input"), method="POST")))

    def resume(self, ctx: Context, event: Callback):
        digits = event.params.get("Digits", "") if event.kind == "digits" else ""
        return Next("input" if digits else "no_input", {"digits": digits})
