"""wait: silence on the call for some seconds, or, with no call up, a durable timer.

During a call the node adds `<Wait length>` to the document being built (at most an hour:
a caller left in silence longer has hung up). Outside a call the run waits on a durable
timer, up to 30 days: the shell fires it when due (`callflow serve` from the store, so it
survives restarts and fires once; `callflow run` and `callflow test` on the simulated
clock, at once), and the node takes `done`.
"""

from engine import codes
from engine.errors import NodeFailed
from engine.events import TimerFired
from engine.node import AddVerb, Context, Next, NodeType, SetTimer
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Integer

MAX_CALL_WAIT = 3600  # seconds of silence during a call
MAX_TIMER = 30 * 24 * 3600  # seconds of a durable timer outside a call (30 days)


@register
class Wait(NodeType):
    name = "wait"
    summary = "Pause the call (Plivo <Wait>), or with no call up wait on a durable timer (up to 30 days)."
    fields = {"seconds": Integer(required=True, minimum=1, maximum=MAX_TIMER,
                                 description=f"Seconds of silence during a call (at most {MAX_CALL_WAIT}), or of "
                                             f"a durable timer outside one (at most {MAX_TIMER}, 30 days).")}
    # Call-optional: in a call it is a verb of the document, outside one a timer.
    needs_call = "optional"

    def waits_with(self, call_up: bool) -> bool:
        return not call_up  # a timer paces a loop; silence in a document does not

    def check_during_call(self, config, path, report):
        seconds = config.get("seconds")
        if isinstance(seconds, int) and seconds > MAX_CALL_WAIT:
            report.error(path + ("seconds",), codes.OUT_OF_RANGE,
                         f"this wait can run during a call, where it lasts at most {MAX_CALL_WAIT} s, got {seconds} "
                         f"(only outside a call is it a timer of up to {MAX_TIMER} s)")

    def run(self, ctx: Context):
        seconds = ctx.value("seconds")
        if ctx.in_call:
            if seconds > MAX_CALL_WAIT:
                raise NodeFailed(f"seconds: during a call must be at most {MAX_CALL_WAIT}, got {seconds}")
            return AddVerb(element("Wait", length=seconds))
        return SetTimer(seconds)

    def resume(self, ctx: Context, event: TimerFired):
        return Next("done")
