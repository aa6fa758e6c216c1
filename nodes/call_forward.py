"""call_forward: connect the caller to another number (Plivo `<Dial>` with `<Number>`/`<User>`).

    Agents:
      type: call_forward
      to: ["+12025550141", "sip:desk7@example.sip.plivo.com"]
      mode: sequential            # parallel (default): ring all, the first to answer is bridged
      ring_timeout: 20
      confirm: {prompt: "Call for support: press 1 to take it.", key: "1"}
      next: {completed: Thanks, no_answer: Voicemail, busy: Voicemail, failed: Voicemail}

`parallel` serves one `<Dial>` holding every destination: Plivo rings them together and
bridges the first to answer. `sequential` serves one `<Dial>` per destination in turn (each
its own step, outcome `again`, when the one before was not bridged): the caller waits
through each ring_timeout; the outcome after the last is that number's. `completed`: the
callee answered and the bridged call is over; the caller is still on, and the path goes on.
`confirm` is call screening: Plivo fetches `confirmSound` (a callback answered with the
prompt) and bridges only when the callee presses `key`. `record: true` records the bridged
call (a `<Record startOnDialAnswer="true" redirect="false">` before the Dial).
"""

from engine import codes
from engine.events import Callback
from engine.fields import ListOf, MapOf, Record
from engine.node import Context, Listen, Next, NodeType, Repeat
from engine.plivoxml import element, render
from engine.registry import register
from engine.scalar_fields import Boolean, Choice, Integer, Phone, Text
from nodes.call_out import check_sip_headers, sip_header_text
from nodes.record import whole

OUTCOME = {"completed": "completed", "busy": "busy", "no-answer": "no_answer", "timeout": "no_answer",
           "cancel": "no_answer", "failed": "failed"}


@register
class CallForward(NodeType):
    name = "call_forward"
    summary = "Connect the caller to numbers or SIP endpoints, at once or in turn (Plivo <Dial>)."
    fields = {
        "to": ListOf(item=Phone(), one_or_many=True, min_items=1, required=True,
                     description="Where to forward: E.164 numbers or SIP URIs (sip:...), one or a list."),
        "mode": Choice(choices=("parallel", "sequential"), default="parallel", templated=False,
                       description="parallel: ring all, bridge the first to answer; sequential: one after another."),
        "caller_id": Phone(description="Caller id the callee sees (default: the caller's)."),
        "caller_name": Text(max_length=50, description="Caller name the callee sees (at most 50 characters)."),
        "ring_timeout": Integer(minimum=1, maximum=120, default=30, description="Seconds to ring (each, in turn)."),
        "time_limit": Integer(minimum=1, maximum=14400, description="Longest bridged call in seconds."),
        "sip_headers": MapOf(value=Text(), key_pattern=r"[A-Za-z0-9]+",
                             key_hint="SIP header names hold only A-Z, a-z and 0-9",
                             description="Custom SIP headers on the forwarded call: name -> value (A-Z a-z 0-9)."),
        "confirm": Record(fields={
            "prompt": Text(required=True, description="What the callee hears on answering."),
            "key": Text(required=True, templated=False, description="The key the callee presses to take the call."),
        }, description="Call screening: the callee must press key to be bridged."),
        "record": Boolean(default=False, description="Record the bridged call."),
    }
    outcomes = ("completed", "no_answer", "busy", "failed")
    outputs = ("status", "b_leg_uuid", "to", "duration", "recording_url")
    needs_call = "required"
    waits = True

    def default_outcome(self, config):
        return None

    def check(self, config, path, report):
        check_sip_headers(config, path, report)
        key = (config.get("confirm") or {}).get("key")
        if isinstance(key, str) and (len(key) != 1 or key not in "0123456789*#"):
            report.error(path + ("confirm", "key"), codes.INVALID_CHOICE, f"{key!r} is not one key: 0-9, * or #")

    def _targets(self, ctx: Context) -> tuple[list[str], int]:
        """Who this step rings, and the index of the first of them in `to`."""
        to = ctx.value("to")
        to = to if isinstance(to, list) else [to]
        if ctx.value("mode") != "sequential":
            return to, 0
        index, steps = 0, ctx.state.steps
        while ctx.seq - index > 0 and steps[ctx.seq - index - 1].node == ctx.name \
                and steps[ctx.seq - index - 1].outcome == "again":
            index += 1  # the numbers rung before, each its own step
        return to[index:index + 1], index

    def run(self, ctx: Context):
        targets, _ = self._targets(ctx)
        numbers = [element("User" if t.startswith("sip") else "Number", t) for t in targets]
        confirm = ctx.value("confirm")
        dial = element("Dial", children=numbers, action=ctx.callback_url("dial"), method="POST", redirect=True,
                       callerId=ctx.value("caller_id"), callerName=ctx.value("caller_name"),
                       timeout=ctx.value("ring_timeout"), timeLimit=ctx.value("time_limit"),
                       sipHeaders=sip_header_text(ctx),
                       confirmSound=ctx.callback_url("confirm") if confirm else None,
                       confirmKey=confirm["key"] if confirm else None)
        if not ctx.value("record"):
            return Listen((dial,))
        recording = element("Record", action=ctx.callback_url("dial_record"), method="POST",
                            startOnDialAnswer=True, redirect=False, maxLength=ctx.value("time_limit") or 14400)
        return Listen((recording, dial))

    def side_callback(self, ctx: Context, event: Callback) -> str:
        if event.kind == "confirm":  # Plivo plays this to the callee, who presses confirmKey
            prompt = ctx.value("confirm")["prompt"]
            return render([element("Speak", prompt)])
        outputs = ctx.state.variables.setdefault(ctx.name, {})  # the bridged call's recording
        outputs["recording_url"] = event.params.get("RecordUrl") or None
        return "<Response></Response>"

    def resume(self, ctx: Context, event: Callback):
        p = event.params
        targets, index = self._targets(ctx)
        outcome = OUTCOME.get(p.get("DialStatus", "failed"), "failed")
        before = ctx.state.variables.get(ctx.name) or {}
        outputs = {"status": p.get("DialStatus", "failed"), "b_leg_uuid": p.get("DialBLegUUID") or None,
                   "to": p.get("DialBLegTo") or (targets[0] if outcome == "completed" and len(targets) == 1 else None),
                   "duration": whole(p.get("DialBLegDuration")), "recording_url": before.get("recording_url")}
        everyone = ctx.value("to")
        remaining = len(everyone) - index - 1 if isinstance(everyone, list) else 0
        if outcome != "completed" and ctx.value("mode") == "sequential" and remaining > 0:
            return Repeat(outputs, f"{targets[0]}: {outputs['status']}; ringing the next number")
        return Next(outcome, outputs)
