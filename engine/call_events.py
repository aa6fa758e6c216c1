"""The provider callbacks of a run's call, for the executor: which callback moves the run.

A ring, answer, hangup, digits or no_input callback names the step that minted its URL; a
replayed one gets the document served the first time, a stale or repeated one changes
nothing, and a hangup ends what waited on the call. `CallEvents` is a part of `Executor`
(engine/executor.py): it uses the executor's `clock`, `_resume` and `_complete`.
"""

from __future__ import annotations

from engine.events import XML_KINDS, Callback, CallbackKind, Response, ServeDocument
from engine.plivoxml import element, render
from engine.state import RunState, WaitReason

HANGUP_DOCUMENT = "<Response><Hangup/></Response>"


class CallEvents:
    """The callback rules of `Executor` (a mixin: the executor supplies `flow`, `env`,
    `context`, `clock`, `_resume`, `_complete`)."""

    def _on_callback(self, state: RunState, event: Callback, effects: list) -> bool:
        """Apply a callback; False when it changed nothing (a replay, a repeated ring or
        hangup, a callback for a step that no longer waits)."""
        replay = self._replay(state, event)
        if replay is not None:
            effects.append(ServeDocument(replay))
            return False
        kind = event.kind
        if kind == CallbackKind.REDIRECT:
            effects.append(ServeDocument(self._still_busy(state, event)))
            return False
        call = state.call
        resumes_request = state.waits_for(WaitReason.RESPONSE, event.seq) and kind in _CALL_KINDS
        if not resumes_request:
            if kind == CallbackKind.RING and not (call and call.seq == event.seq and not call.ringing):
                return False
            if kind == CallbackKind.HANGUP and (not call or call.seq != event.seq or call.ended):
                return False  # a repeated or stale hangup: processed once already
        state.sprint = {}
        if resumes_request:
            # The call's own callback beat the API response here (or the response was lost in a
            # crash): the callback proves the request was accepted.
            proven = {"message": "call fired", "request_uuid": event.params.get("RequestUUID")
                      or event.params.get("ALegRequestUUID") or event.params.get("CallUUID") or "unknown"}
            self._resume(state, state.waiting, Response(status=201, body=proven), effects)
            call = state.call
        if kind == CallbackKind.RING:
            if call and call.seq == event.seq:
                call.ringing = True
                if call.legs == 1 and not call.uuid:  # one leg: its CallUUID, for looking the call up
                    call.uuid = event.params.get("CallUUID") or None
            return True
        if kind == CallbackKind.HANGUP:
            self._on_hangup(state, event, effects)
            return True
        if kind == CallbackKind.ANSWER and state.waits_for(WaitReason.CALL, event.seq):
            call.up, call.uuid = True, event.params.get("CallUUID")
            state.pending_xml, state.answering = [], f"{event.seq}:{kind}"
            self._resume(state, state.waiting, event, effects)
            return True
        if kind in _SIDE_KINDS and state.waits_for(WaitReason.INPUT, event.seq):
            # Answered by the waiting node (a confirm sound) or noted in its outputs (a
            # recording of its bridged call); the run goes on waiting.
            spec = self.flow.nodes[state.waiting.node]
            ctx = self.context(spec, state, event.seq)
            effects.append(ServeDocument(spec.node_type.side_callback(ctx, event)))
            return kind != CallbackKind.CONFIRM
        if kind in _INPUT_KINDS and state.waits_for(WaitReason.INPUT, event.seq):
            state.pending_xml, state.answering = [], f"{event.seq}:{kind}"
            self._resume(state, state.waiting, event, effects)
            return True
        if kind in XML_KINDS:
            # Another leg of a multi-destination call answered after the first, or a stale URL.
            effects.append(ServeDocument(HANGUP_DOCUMENT))
        return resumes_request

    def _on_hangup(self, state: RunState, event: Callback, effects: list) -> None:
        call = state.call
        if not call or call.seq != event.seq or call.ended:
            return  # a repeated or stale hangup: processed once already
        if not call.up:
            call.legs -= 1
            if call.legs > 0:
                return
            call.ended = True
            if state.waits_for(WaitReason.CALL, event.seq):
                self._resume(state, state.waiting, event, effects)
            return
        call.up = False
        call.ended = True
        outputs = state.variables.get(call.node)
        if isinstance(outputs, dict):
            outputs.update(_hangup_outputs(event.params))
        waiting = state.waiting
        reason = waiting.reason if waiting is not None else None
        if reason is WaitReason.HANGUP:
            self._complete(state, effects)
        elif reason is WaitReason.INPUT:
            step = state.steps[waiting.seq]
            step.ended_at, step.error = self.clock(), "the call ended while waiting for input"
            state.waiting = None
            self._complete(state, effects)

    def _still_busy(self, state: RunState, event: Callback) -> str:
        """A Redirect callback before its document is built: the request it waits on is still
        out (the shell held the callback as long as it would). The caller hears a second of
        silence and the provider asks again (a keep-alive), rather than the call dropping."""
        key = f"{event.seq}:{CallbackKind.REDIRECT}"
        waiting = state.waiting
        if state.answering != key or waiting is None or waiting.reason is not WaitReason.RESPONSE:
            return HANGUP_DOCUMENT  # a stale or forged URL: no document will ever answer it
        url = self.env.callback_url(state.run_id, event.seq, CallbackKind.REDIRECT)
        return render([element("Wait", length=1), element("Redirect", url, method="POST")])

    def _replay(self, state: RunState, event: Callback) -> str | None:
        index = state.served.get(f"{event.seq}:{event.kind}")
        return None if index is None else state.documents[index]


_SIDE_KINDS = frozenset({CallbackKind.CONFIRM, CallbackKind.DIAL_RECORD, CallbackKind.CONFERENCE_EVENT})
_CALL_KINDS = frozenset({CallbackKind.RING, CallbackKind.ANSWER, CallbackKind.HANGUP})  # of a placed call
# Of a served document the run waits on: GetDigits (digits, no_input), Record, Dial, Conference.
_INPUT_KINDS = frozenset({CallbackKind.DIGITS, CallbackKind.NO_INPUT, CallbackKind.RECORD, CallbackKind.DIAL,
                          CallbackKind.CONFERENCE})


def _hangup_outputs(params: dict) -> dict:
    out = {"status": params.get("CallStatus", "completed"), "hangup_cause": params.get("HangupCause", "")}
    try:
        out["duration"] = int(params.get("Duration", 0))
    except ValueError:
        out["duration"] = 0
    return out
