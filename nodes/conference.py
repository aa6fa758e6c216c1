"""conference: put the caller in a conference room (Plivo `<Conference>`) until they leave.

    Room:
      type: conference
      room: "team-{{ Start.call.headers.team | default: 'all' }}"
      moderator: true     # the room starts when this caller enters and ends when they leave
      wait_sound: https://cdn.example.com/hold.xml
      next: {completed: Bye, failed: Full}

A moderator's `<Conference>` has `startConferenceOnEnter="true" endConferenceOnExit="true"`;
any other member's has both false: they wait (hearing `wait_sound`) until a moderator
enters, and stay when one leaves. The element's callbackUrl notes the caller's member id
and the conference's UUID when they enter; its action (`completed`) comes when they leave;
a room that refuses them (full at `max_members`) lets the call go on to the `<Redirect>`
after it: `failed`. `duration` is the time from entering to leaving.
"""

from engine.events import Callback
from engine.node import Context, Listen, Next, NodeType
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Boolean, Integer, Text, Url

MAX_MEMBERS = 20  # Plivo's most members of one room


@register
class Conference(NodeType):
    name = "conference"
    summary = "Put the caller in a conference room until they leave (Plivo <Conference>)."
    fields = {
        "room": Text(required=True, max_length=100, description="The room's name (a template: one room per value)."),
        "moderator": Boolean(default=False, description="The room starts when this caller enters, ends when they leave."),
        "muted": Boolean(default=False, description="The caller listens only."),
        "wait_sound": Url(description="Played while the room waits for a moderator (a URL returning XML)."),
        "max_members": Integer(minimum=1, maximum=MAX_MEMBERS, description=f"Most members (at most {MAX_MEMBERS})."),
        "time_limit": Integer(minimum=1, maximum=86400, description="Longest stay in the room, in seconds."),
        "record": Boolean(default=False, description="Record the conference."),
    }
    outcomes = ("completed", "failed")
    outputs = ("room", "conference_uuid", "member_id", "duration", "recording_url")
    needs_call = "required"
    waits = True

    def default_outcome(self, config):
        return None

    def run(self, ctx: Context):
        moderator = ctx.value("moderator")
        room = element(
            "Conference", ctx.value("room"), action=ctx.callback_url("conference"), method="POST", redirect=True,
            callbackUrl=ctx.callback_url("conference_event"), callbackMethod="POST",
            startConferenceOnEnter=moderator, endConferenceOnExit=moderator,
            muted=ctx.value("muted") or None, waitSound=ctx.value("wait_sound"),
            maxMembers=ctx.value("max_members"), timeLimit=ctx.value("time_limit"),
            record=ctx.value("record") or None)
        # A room that does not take the caller: Plivo goes on with the next element.
        return Listen((room, element("Redirect", ctx.callback_url("no_input"), method="POST")))

    def side_callback(self, ctx: Context, event: Callback) -> str:
        p = event.params
        outputs = ctx.state.variables.setdefault(ctx.name, {"room": p.get("ConferenceName")})
        if p.get("ConferenceAction") == "enter":
            outputs.update(conference_uuid=p.get("ConferenceUUID"), member_id=p.get("ConferenceMemberID"),
                           entered_at=ctx.now)
        return "<Response></Response>"

    def resume(self, ctx: Context, event: Callback):
        noted = dict(ctx.state.variables.get(ctx.name) or {})
        entered = noted.pop("entered_at", None)
        p = event.params if event.kind == "conference" else {}
        outputs = {"room": p.get("ConferenceName") or ctx.value("room"),
                   "conference_uuid": p.get("ConferenceUUID") or noted.get("conference_uuid"),
                   "member_id": p.get("ConferenceMemberID") or noted.get("member_id"),
                   "duration": int(round(ctx.now - entered)) if entered is not None else 0,
                   "recording_url": p.get("RecordUrl") or None}
        if event.kind != "conference":
            return Next("failed", outputs, error=f"the room {outputs['room']!r} did not take the caller (full?)")
        return Next("completed", outputs)
