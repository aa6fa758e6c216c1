"""The executor: a pure core that turns (run state, event) into (new state, effects).

It performs no I/O and reads no clock but the one it is given, so `callflow run`, flow
tests, the HTTP service and crash recovery all drive runs through this one code path.
The state object passed in is updated in place and is the new state.

    executor = Executor(flow, RunEnvironment(public_url="https://calls.example.com"))
    state = executor.new_run("run-1")
    effects = executor.advance(state, Trigger({"to": "+12025550100"}))
"""

from __future__ import annotations

import time
from dataclasses import replace
from enum import Enum
from typing import Callable

from engine.call_events import HANGUP_DOCUMENT, CallEvents
from engine.errors import NodeFailed
from engine.events import (
    XML_KINDS,
    Callback,
    CallbackKind,
    Effects,
    Event,
    Expired,
    Finished,
    InboundCall,
    InboundMessage,
    Response,
    ServeDocument,
    StartEvent,
    TimerFired,
    Trigger,
)
from engine.flow import Flow
from engine.node import (
    Action,
    AddVerb,
    AwaitCall,
    Context,
    EndCall,
    Listen,
    Next,
    NodeSpec,
    Repeat,
    RunEnvironment,
    Send,
    SetTimer,
)
from engine.params import Redactor
from engine.plivoxml import MAX_BYTES as MAX_DOCUMENT_BYTES
from engine.plivoxml import element, render_fragment
from engine.state import Call, RunState, Step, Waiting, WaitReason

MAX_STEPS = 1000  # per run, as Twilio Studio
MAX_REPEAT = 10  # visits of one node between two outside events (a loop that spins)


class _Pause(Enum):
    """What `_apply` returns instead of the next node's name: the run now waits."""

    WAIT = "wait"


class Executor(CallEvents):
    """Runs one flow: `advance(state, event)` for each event of each of its runs.

    `env` says where callbacks and the provider API are; `clock` gives the time steps are
    stamped with (the tests and flow tests pass a fake one)."""

    def __init__(self, flow: Flow, env: RunEnvironment | None = None, clock: Callable[[], float] = time.time,
                 params: dict | None = None):
        self.flow = flow
        self.env = env or RunEnvironment()
        self.clock = clock
        # Param values render into effects; whatever goes into the state is redacted first
        # (`_keep`), so a secret reaches the request and never the record.
        self.params = dict(params or {})
        self.redactor = Redactor.of(flow.params, self.params)
        self._keep = self.redactor.redact

    def context(self, spec: NodeSpec, state: RunState, seq: int) -> Context:
        """What node `spec` sees at step `seq` of the run."""
        return Context(spec, state, self.env, seq, self.params, self.clock())

    # -- entry points ---------------------------------------------------------------------------
    def new_run(self, run_id: str) -> RunState:
        """A fresh state; the first event (Trigger, InboundCall or InboundMessage) starts it."""
        now = self.clock()
        return RunState(run_id=run_id, flow_id=self.flow.id, created_at=now, updated_at=now,
                        flow_revision=self.flow.revision)

    def advance(self, state: RunState, event: Event) -> Effects:
        """Apply `event` to `state` (in place) and return the effects to perform, in order.
        `effects.changed` is False when the event changed nothing (a replayed or stale
        callback, a response nobody waits for): shells need not store the state again."""
        effects = Effects()
        call = state.call
        if isinstance(event, Callback) and call and call.other_leg(event.seq, event.params.get("CallUUID")):
            # A later leg of a multi-destination call, or a stranger: never this run's document.
            if event.kind in XML_KINDS:
                effects.append(ServeDocument(HANGUP_DOCUMENT))
            effects.changed = False
            return effects
        if state.finished:
            if isinstance(event, Callback) and event.kind in XML_KINDS:
                effects.append(ServeDocument(self._replay(state, event) or HANGUP_DOCUMENT))
            effects.changed = False
            return effects
        if isinstance(event, (Trigger, InboundCall, InboundMessage)):
            self._start(state, event, effects)
        elif isinstance(event, Response):
            effects.changed = self._on_response(state, event, effects)
        elif isinstance(event, Callback):
            effects.changed = self._on_callback(state, event, effects)
        elif isinstance(event, Expired):
            effects.changed = self._on_expired(state, event, effects)
        elif isinstance(event, TimerFired):
            effects.changed = self._on_timer(state, event, effects)
        else:
            raise TypeError(f"not an event: {event!r}")
        if effects.changed:
            state.updated_at = self.clock()
        return effects

    # -- events --------------------------------------------------------------------------------
    def _start(self, state: RunState, event: StartEvent, effects: list) -> None:
        spec = self.flow.trigger_spec
        first = spec.node_type.start(spec.config, event)
        if isinstance(event, InboundCall):
            # The run answers the incoming call: it controls that call from its first step.
            state.call = Call(spec.name, 0, up=True, uuid=event.params.get("CallUUID", ""))
            state.pending_xml, state.answering = [], f"0:{CallbackKind.ANSWER}"
        now = self.clock()
        state.steps.append(Step(spec.name, spec.type, first.outcome, now, now, self._keep(first.error)))
        state.path.append(spec.name)
        state.variables[spec.name] = self._keep(first.outputs)
        self._walk(state, spec.next.get(first.outcome), effects)

    def _on_response(self, state: RunState, event: Response, effects: list) -> bool:
        waiting = state.waiting
        if waiting is None or waiting.reason is not WaitReason.RESPONSE \
                or (event.seq is not None and event.seq != waiting.seq):
            return False  # a response nobody waits for (late, or replayed after a crash): nothing to do
        if event.attempts and state.requests:  # the record shows each attempt of a refused request
            state.requests[-1]["attempts"] = [self._keep(dict(a)) for a in event.attempts]
        if state.requests:  # a run waits on one request at a time: the last one sent
            state.requests[-1]["response"] = self._keep(event.summary())
        self._resume(state, waiting, event, effects)
        return True

    def _on_timer(self, state: RunState, event: TimerFired, effects: list) -> bool:
        waiting = state.waiting
        if not state.waits_for(WaitReason.TIMER, event.seq) or (waiting.until or 0) > self.clock():
            return False  # another step's timer, one fired already, or not due yet
        state.sprint = {}  # time paced the run: a loop through a timer does not spin
        self._resume(state, waiting, event, effects)
        return True

    def _on_expired(self, state: RunState, event: Expired, effects: list) -> bool:
        waiting = state.waiting
        if waiting is None or waiting.reason in (WaitReason.RESPONSE, WaitReason.TIMER):
            return False  # requests have their own timeouts and the in-doubt rule; timers are due when due
        step = state.steps[waiting.seq]
        if step.ended_at is None:
            step.ended_at = self.clock()
        if waiting.reason is WaitReason.HANGUP:  # the path was done: only the call's end went unheard
            step.error = f"no hangup callback within {event.seconds:g} s"
            self._complete(state, effects)
            return True
        waited_for = "its call" if waiting.reason is WaitReason.CALL else "input"
        self._fail_run(state, f"no provider callback within {event.seconds:g} s while node "
                       f"{waiting.node!r} waited for {waited_for}", effects)
        return True

    # -- walking the graph ---------------------------------------------------------------------
    def _resume(self, state: RunState, waiting: Waiting, event, effects: list) -> None:
        state.waiting = None
        state.status = "running"
        spec = self.flow.nodes[waiting.node]
        seq = waiting.seq
        try:
            action = spec.node_type.resume(self.context(spec, state, seq), event)
        except NodeFailed as e:
            self._walk(state, self._fail_node(state, spec, seq, str(e), effects), effects)
            return
        next_name = self._apply(state, spec, seq, action, effects)
        if next_name is not _Pause.WAIT:
            self._walk(state, next_name, effects)

    def _walk(self, state: RunState, name: str | None, effects: list) -> None:
        nodes = self.flow.nodes
        while name is not None:
            if state.finished:
                return
            if len(state.steps) >= MAX_STEPS:
                self._fail_run(state, f"the run reached {MAX_STEPS} steps (a loop?)", effects)
                return
            visits = state.sprint.get(name, 0) + 1
            if visits > MAX_REPEAT:
                self._fail_run(state, f"node {name!r} ran {MAX_REPEAT} times without waiting for a call "
                               "or a caller (a loop that spins)", effects)
                return
            state.sprint[name] = visits
            spec = nodes[name]
            needs_call = spec.node_type.needs_call
            if needs_call == "optional" and state.pending_xml is not None and state.call and state.call.ended:
                self._complete(state, effects)  # hung up while its document was being built: nothing left to say
                return
            if needs_call == "required" and not (state.call and state.call.up and state.pending_xml is not None):
                if state.call and state.call.ended:
                    self._complete(state, effects)  # the callee hung up: nothing left to say
                else:
                    self._fail_run(state, f"node {name!r} ({spec.type}) needs a call up", effects)
                return
            seq = len(state.steps)
            state.steps.append(Step(name, spec.type, None, self.clock()))
            state.path.append(name)
            try:
                action = spec.node_type.run(self.context(spec, state, seq))
            except NodeFailed as e:
                name = self._fail_node(state, spec, seq, str(e), effects)
                continue
            name = self._apply(state, spec, seq, action, effects)
            if name is _Pause.WAIT:
                return
        if not state.finished:
            self._path_end(state, effects)

    def _apply(self, state: RunState, spec: NodeSpec, seq: int, action: Action,
               effects: list) -> str | None | _Pause:
        """Do what the node asked; the next node's name, None (the path ends) or WAIT."""
        step = state.steps[seq]
        kind = type(action)
        keep = self._keep
        if kind is Next or kind is AddVerb:
            if kind is AddVerb:
                state.pending_xml.append(keep(render_fragment(action.element)))
            if action.outputs is not None:
                state.variables[spec.name] = keep(action.outputs)
            step.outcome, step.ended_at = action.outcome, self.clock()
            if kind is Next and action.error:
                step.error = keep(action.error)
            return spec.next.get(action.outcome) if action.outcome else None
        if kind is Send:
            if self._speaks_first(state, seq):
                self._serve_redirect(state, seq, effects)
                if state.finished:  # the document could not be served
                    return None
            req = replace(action.request, seq=seq)  # its Response must name the step it answers
            state.requests.append(keep(req.recorded(spec.name)))
            effects.append(req)
            self._wait(state, spec.name, seq, WaitReason.RESPONSE)
            return _Pause.WAIT
        if kind is AwaitCall:
            if action.outputs is not None:
                state.variables[spec.name] = keep(action.outputs)
            state.call = Call(spec.name, seq, legs=action.legs)
            self._wait(state, spec.name, seq, WaitReason.CALL)
            return _Pause.WAIT
        if kind is Listen:
            state.pending_xml.extend(keep(render_fragment(el)) for el in action.elements)
            self._serve(state, effects)
            if not state.finished:
                self._wait(state, spec.name, seq, WaitReason.INPUT)
            return _Pause.WAIT
        if kind is EndCall:
            state.pending_xml.append(keep(render_fragment(action.element)))
            step.ended_at = self.clock()
            return None
        if kind is Repeat:  # the same node again, as a new step (the record shows each attempt)
            state.variables[spec.name] = keep(action.outputs)
            step.outcome, step.ended_at, step.error = "again", self.clock(), keep(action.note)
            return spec.name
        if kind is SetTimer:
            if action.outputs is not None:
                state.variables[spec.name] = keep(action.outputs)
            self._wait(state, spec.name, seq, WaitReason.TIMER, until=self.clock() + action.seconds)
            return _Pause.WAIT
        raise TypeError(f"{spec.type}.run returned {action!r}, not an action")

    @staticmethod
    def _speaks_first(state: RunState, seq: int) -> bool:
        """Is a request at step `seq` made while the call's document is being built, so that
        the caller must hear what comes before it first (no dead air)? Not when the open
        document already answers this step's own Redirect with nothing in it yet (the node
        sends again): the provider still waits on that Redirect."""
        call = state.call
        return state.pending_xml is not None and call is not None and call.up and (
            bool(state.pending_xml) or state.answering != f"{seq}:{CallbackKind.REDIRECT}")

    def _serve_redirect(self, state: RunState, seq: int, effects: list) -> None:
        """Serve the document so far, ending in a Redirect whose callback is answered with the
        next document, opened here, once the request is done."""
        url = self.env.callback_url(state.run_id, seq, CallbackKind.REDIRECT)
        state.pending_xml.append(render_fragment(element("Redirect", url, method="POST")))
        self._serve(state, effects)
        if not state.finished:
            state.pending_xml, state.answering = [], f"{seq}:{CallbackKind.REDIRECT}"

    def _wait(self, state: RunState, node: str, seq: int, reason: WaitReason, until: float | None = None) -> None:
        state.waiting = Waiting(node, seq, reason, until)
        state.status = "waiting"

    def _path_end(self, state: RunState, effects: list) -> None:
        if state.pending_xml is not None:
            self._serve(state, effects)
            if state.finished:  # the document could not be served
                return
        call = state.call
        if call and call.up:
            # The call is still up: the provider hangs up once it has played the document.
            self._wait(state, call.node, call.seq, WaitReason.HANGUP)
        else:
            self._complete(state, effects)

    def _serve(self, state: RunState, effects: list) -> None:
        xml = "<Response>" + "".join(state.pending_xml) + "</Response>"
        if len(xml) > MAX_DOCUMENT_BYTES // 4 and len(xml.encode()) > MAX_DOCUMENT_BYTES:
            # The provider would refuse it and drop the call: end the call cleanly instead.
            state.pending_xml = []
            self._fail_run(state, f"the XML document is {len(xml.encode())} bytes; Plivo accepts at most "
                           f"{MAX_DOCUMENT_BYTES}", effects)
            return
        state.served[state.answering] = len(state.documents)
        state.documents.append(xml)
        state.pending_xml = state.answering = None
        effects.append(ServeDocument(xml))

    def _fail_node(self, state: RunState, spec: NodeSpec, seq: int, message: str, effects: list) -> str | None:
        step = state.steps[seq]
        step.ended_at, step.error = self.clock(), self._keep(message)
        if spec.error is not None:
            step.outcome = "error"
            return spec.error
        self._fail_run(state, f"node {spec.name!r} ({spec.type}) failed: {message}", effects)
        return None

    def _fail_run(self, state: RunState, message: str, effects: list) -> None:
        message = self._keep(message)
        state.status, state.error, state.waiting = "failed", message, None
        if state.pending_xml is not None:  # end the call rather than leave the caller in silence
            state.pending_xml.append(render_fragment(element("Hangup")))
            self._serve(state, effects)
        effects.append(Finished("failed", message))

    def _complete(self, state: RunState, effects: list) -> None:
        state.status, state.waiting = "completed", None
        effects.append(Finished("completed"))
