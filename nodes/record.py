"""record: record the caller (a voicemail), Plivo `<Record>`; the run waits for the recording.

The document is the prompt (if any), `<Record action=... redirect="true">` and a
`<Redirect>`: Plivo posts the recording to the action URL (`RecordUrl`, `RecordingID`,
`RecordingDuration`, `Digits`: the key that ended it) and plays the document the run answers
with. A recording of no length, or the call moving on to the `<Redirect>` without posting
one, is `no_recording`.
"""

from engine.events import Callback
from engine.node import Context, Listen, Next, NodeType
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Boolean, Choice, Integer, Text


def whole(value) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


@register
class Record(NodeType):
    name = "record"
    summary = "Record the caller, e.g. a voicemail (Plivo <Record>)."
    fields = {
        "prompt": Text(description="Spoken before the recording starts."),
        "max_length": Integer(minimum=1, maximum=14400, default=60, description="Longest recording in seconds."),
        "silence_timeout": Integer(minimum=1, maximum=3600, default=15,
                                   description="Seconds of silence that end the recording."),
        "finish_on_key": Text(default="#", description="Key(s) that end the recording."),
        "beep": Boolean(default=True, description="Play a beep when the recording starts."),
        "format": Choice(choices=("mp3", "wav"), default="mp3", description="The recording's file format."),
        "voice": Text(default="WOMAN", description="Voice of the prompt."),
        "language": Text(default="en-US", description="Language of the prompt."),
    }
    outcomes = ("recorded", "no_recording")
    outputs = ("recording_url", "recording_id", "duration", "digits")
    needs_call = "required"
    waits = True

    def default_outcome(self, config):
        return None

    def run(self, ctx: Context):
        elements = []
        if ctx.has("prompt"):
            elements.append(element("Speak", ctx.value("prompt"), voice=ctx.value("voice"),
                                    language=ctx.value("language")))
        elements.append(element(
            "Record", action=ctx.callback_url("record"), method="POST", fileFormat=ctx.value("format"),
            maxLength=ctx.value("max_length"), timeout=ctx.value("silence_timeout"),
            finishOnKey=ctx.value("finish_on_key"), playBeep=ctx.value("beep"), redirect=True))
        # Nothing posted to the action (nothing recorded): Plivo moves on to the next element.
        elements.append(element("Redirect", ctx.callback_url("no_input"), method="POST"))
        return Listen(tuple(elements))

    def resume(self, ctx: Context, event: Callback):
        p = event.params if event.kind == "record" else {}
        outputs = {"recording_url": p.get("RecordUrl") or None, "recording_id": p.get("RecordingID") or None,
                   "duration": whole(p.get("RecordingDuration")), "digits": p.get("Digits", "")}
        recorded = bool(outputs["recording_url"]) and outputs["duration"] > 0
        return Next("recorded" if recorded else "no_recording", outputs)
