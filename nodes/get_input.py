"""get_input: prompt the caller and collect digits, speech or either; the run waits for them.

`input: digits` (the default) is a `<GetDigits>`; `speech` or `digits speech` a `<GetInput
inputType="speech">` / `"dtmf speech"`, which recognises speech in `language` (helped by
`hints`, words likely said) and waits up to `timeout` seconds (Plivo's executionTimeout,
5-60 s). Its action brings `Speech` and `SpeechConfidenceScore`, or `Digits`.
"""

from engine import codes
from engine.errors import NodeFailed
from engine.events import Callback
from engine.fields import ListOf
from engine.node import Context, Listen, Next, NodeType
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Choice, Integer, Text, Url

INPUT_TYPES = {"digits": "dtmf", "speech": "speech", "digits speech": "dtmf speech"}  # ours -> Plivo's inputType
SPEECH_TIMEOUT = (5, 60)  # GetInput's executionTimeout bounds


@register
class GetInput(NodeType):
    name = "get_input"
    summary = "Prompt and collect DTMF digits (Plivo <GetDigits>) or speech (<GetInput>)."
    fields = {
        "prompt": Text(description="Text spoken while waiting for input."),
        "play": Url(description="Audio played while waiting for input (instead of prompt)."),
        "input": Choice(choices=tuple(INPUT_TYPES), default="digits", templated=False,
                        description="What the caller may give: digits, speech, or 'digits speech' (either)."),
        "num_digits": Integer(minimum=1, maximum=99, description="Digits to collect."),
        "timeout": Integer(minimum=1, maximum=100, default=5,
                           description="Seconds to wait for the first digit (with speech: for the input, 5-60)."),
        "finish_on_key": Text(default="#", description="Key that ends the input."),
        "valid_digits": Text(description="Digits accepted, e.g. 0123456789*# (digits input only)."),
        "hints": ListOf(item=Text(), description="Words or phrases the caller is likely to say (speech)."),
        "voice": Text(default="WOMAN", description="Voice of the prompt."),
        "language": Text(default="en-US", description="Language of the prompt (and of the speech recognised)."),
    }
    outcomes = ("input", "no_input")
    outputs = ("digits", "speech", "confidence")
    needs_call = "required"
    waits = True

    def check(self, config, path, report):
        if "prompt" in config and "play" in config:
            report.error(path + ("play",), codes.CONFLICTING_KEYS, "give prompt or play, not both", key=True)
        speech = config.get("input", "digits") != "digits"
        if speech and "valid_digits" in config:
            report.error(path + ("valid_digits",), codes.CONFLICTING_KEYS,
                         "valid_digits is for digits input only (Plivo's <GetInput> has no validDigits)", key=True)
        if not speech and "hints" in config:
            report.error(path + ("hints",), codes.CONFLICTING_KEYS, "hints help speech input: set input: speech",
                         key=True)
        timeout = config.get("timeout")
        low, high = SPEECH_TIMEOUT
        if speech and isinstance(timeout, int) and not low <= timeout <= high:
            report.error(path + ("timeout",), codes.OUT_OF_RANGE,
                         f"with speech input the timeout is {low}-{high} s (Plivo's executionTimeout), got {timeout}")

    def node_outputs(self, config):
        # speech and confidence only where speech can come: reading them elsewhere is a mistake
        return self.outputs if config.get("input", "digits") != "digits" else ("digits",)

    def _prompt(self, ctx: Context) -> tuple:
        if ctx.has("play"):
            return (element("Play", ctx.value("play")),)
        if ctx.has("prompt"):
            return (element("Speak", ctx.value("prompt"), voice=ctx.value("voice"), language=ctx.value("language")),)
        return ()

    def run(self, ctx: Context):
        kind = ctx.value("input")
        if kind == "digits":
            gather = element(
                "GetDigits", children=self._prompt(ctx), action=ctx.callback_url("digits"), method="POST",
                timeout=ctx.value("timeout"), numDigits=ctx.value("num_digits"),
                finishOnKey=ctx.value("finish_on_key"), validDigits=ctx.value("valid_digits"), redirect=True)
        else:
            timeout, (low, high) = ctx.value("timeout"), SPEECH_TIMEOUT
            if not low <= timeout <= high:
                raise NodeFailed(f"timeout: with speech input must be {low}-{high}, got {timeout}")
            hints = ctx.value("hints")
            gather = element(
                "GetInput", children=self._prompt(ctx), action=ctx.callback_url("digits"), method="POST",
                inputType=INPUT_TYPES[kind], executionTimeout=timeout,
                numDigits=ctx.value("num_digits") if kind != "speech" else None,
                finishOnKey=ctx.value("finish_on_key") if kind != "speech" else None,
                language=ctx.value("language"), hints=",".join(hints) if hints else None, redirect=True)
        # Plivo moves on to the next element when no input comes: that is our no_input.
        return Listen((gather, element("Redirect", ctx.callback_url("no_input"), method="POST")))

    def resume(self, ctx: Context, event: Callback):
        p = event.params if event.kind == "digits" else {}
        digits, speech = p.get("Digits", ""), p.get("Speech", "")
        outputs = {"digits": digits}
        if ctx.value("input") != "digits":
            outputs.update(speech=speech, confidence=_confidence(p.get("SpeechConfidenceScore")))
        return Next("input" if digits or speech else "no_input", outputs)


def _confidence(value) -> float | None:
    try:
        return round(float(value), 3)
    except (TypeError, ValueError):
        return None
