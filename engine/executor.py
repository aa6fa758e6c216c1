"""The executor: a pure core that turns (run state, event) into (new state, effects).

It performs no I/O and reads no clock but the one it is given, so `callflow run`, flow
tests, the HTTP service and crash recovery all drive runs through this one code path.
The state object passed in is updated in place and is the new state.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable
from urllib.parse import urlencode

from engine.errors import NodeFailed
from engine.events import (
    Callback,
    Effect,
    Expired,
    Finished,
    InboundCall,
    Response,
    ServeDocument,
    Trigger,
)
from engine.flow import Flow
from engine.node import (
    AwaitCall,
    Context,
    EndCall,
    Listen,
    Next,
    NodeSpec,
    RunEnvironment,
    Say,
    Send,
)
from engine.plivoxml import MAX_BYTES as MAX_DOCUMENT_BYTES
from engine.plivoxml import Element, element, render
from engine.state import RunState

MAX_STEPS = 1000  # per run, as Twilio Studio
MAX_REPEAT = 10  # visits of one node between two outside events (a loop that spins)
_OPEN, _CLOSE = len("<Response>"), -len("</Response>")
HANGUP_DOCUMENT = "<Response><Hangup/></Response>"
_XML_CALLBACKS = ("answer", "digits", "no_input")


def fragment(el: Element) -> str:
    return render((el,))[_OPEN:_CLOSE]


def missing_required(flow: Flow, payload: dict) -> list[str]:
    trigger = flow.trigger_spec
    static = trigger.config.get("payload") or {}
    return [k for k in trigger.config.get("required") or ()
            if payload.get(k) is None and static.get(k) is None]


class Executor:
    def __init__(self, flow: Flow, env: RunEnvironment | None = None, clock: Callable[[], float] = time.time):
        self.flow = flow
        self.env = env or RunEnvironment()
        self.clock = clock

    # -- entry points ---------------------------------------------------------------------------
    def new_run(self, run_id: str) -> RunState:
        now = self.clock()
        return RunState(run_id=run_id, flow_id=self.flow.id, created_at=now, updated_at=now)

    def advance(self, state: RunState, event) -> list[Effect]:
        effects: list[Effect] = []
        if isinstance(event, Callback) and _other_leg(state, event):
            # A later leg of a multi-destination call, or a stranger: never this run's document.
            if event.kind in _XML_CALLBACKS:
                effects.append(ServeDocument(HANGUP_DOCUMENT))
            return effects
        if state.finished:
            if isinstance(event, Callback) and event.kind in _XML_CALLBACKS:
                effects.append(ServeDocument(self._replay(state, event) or HANGUP_DOCUMENT))
            return effects
        if isinstance(event, Trigger):
            self._start(state, "http", {"http": {"params": self._payload(event.payload)}}, effects)
        elif isinstance(event, InboundCall):
            self._start_inbound(state, event.params, effects)
        elif isinstance(event, Response):
            self._on_response(state, event, effects)
        elif isinstance(event, Callback):
            self._on_callback(state, event, effects)
        elif isinstance(event, Expired):
            self._on_expired(state, event, effects)
        else:
            raise TypeError(f"not an event: {event!r}")
        state.updated_at = self.clock()
        return effects

    # -- events --------------------------------------------------------------------------------
    def _payload(self, dynamic: dict) -> dict:
        static = self.flow.trigger_spec.config.get("payload") or {}
        merged = dict(static)
        merged.update(dynamic)
        return merged

    def _start(self, state: RunState, outcome: str, outputs: dict, effects: list) -> None:
        spec = self.flow.trigger_spec
        now = self.clock()
        state.steps.append([spec.name, spec.type, outcome, now, now, None])
        state.path.append(spec.name)
        state.variables[spec.name] = outputs
        self._walk(state, spec.next.get(outcome), effects)

    def _start_inbound(self, state: RunState, params: dict, effects: list) -> None:
        headers = {k[5:]: v for k, v in params.items() if k.startswith("X-PH-")}
        call = {"from": params.get("From", ""), "to": params.get("To", ""),
                "call_uuid": params.get("CallUUID", ""), "headers": headers}
        state.call = {"node": self.flow.trigger, "seq": 0, "legs": 1, "up": True, "uuid": call["call_uuid"]}
        state.doc, state.doc_key = [], "0:answer"
        self._start(state, "call", {"call": call}, effects)

    def _on_response(self, state: RunState, event: Response, effects: list) -> None:
        waiting = state.waiting
        if not waiting or waiting["for"] != "response" or (event.seq is not None and event.seq != waiting["seq"]):
            return  # a response nobody waits for (late, or replayed after a crash): nothing to do
        state.waiting = None
        state.status = "running"
        self._resume(state, waiting, event, effects)

    def _on_callback(self, state: RunState, event: Callback, effects: list) -> None:
        replay = self._replay(state, event)
        if replay is not None:
            effects.append(ServeDocument(replay))
            return
        state.sprint = {}
        waiting = state.waiting or {}
        kind = event.kind
        if waiting.get("for") == "response" and waiting["seq"] == event.seq and kind in ("ring", "answer", "hangup"):
            # The call's own callback beat the API response here (or the response was lost in a
            # crash): the callback proves the request was accepted.
            self._resume(state, waiting, Response(status=201, body={"message": "call fired"}), effects)
            waiting = state.waiting or {}
        call = state.call
        if kind == "ring":
            if call and call["seq"] == event.seq:
                call["ringing"] = True
            return
        if kind == "hangup":
            self._on_hangup(state, event, effects)
            return
        if kind == "answer" and waiting.get("for") == "call" and waiting["seq"] == event.seq:
            call["up"], call["uuid"] = True, event.params.get("CallUUID")
            state.doc, state.doc_key = [], f"{event.seq}:{kind}"
            self._resume(state, waiting, event, effects)
        elif kind in ("digits", "no_input") and waiting.get("for") == "input" and waiting["seq"] == event.seq:
            state.doc, state.doc_key = [], f"{event.seq}:{kind}"
            self._resume(state, waiting, event, effects)
        elif kind in _XML_CALLBACKS:
            # Another leg of a multi-destination call answered after the first, or a stale URL.
            effects.append(ServeDocument(HANGUP_DOCUMENT))

    def _on_hangup(self, state: RunState, event: Callback, effects: list) -> None:
        call = state.call
        if not call or call["seq"] != event.seq or call.get("ended"):
            return  # a repeated or stale hangup: processed once already
        waiting = state.waiting or {}
        if not call["up"]:
            call["legs"] -= 1
            if call["legs"] > 0:
                return
            call["ended"] = True
            if waiting.get("for") == "call" and waiting["seq"] == event.seq:
                self._resume(state, waiting, event, effects)
            return
        call["up"] = False
        call["ended"] = True
        outputs = state.variables.get(call["node"])
        if isinstance(outputs, dict):
            outputs.update(_hangup_outputs(event.params))
        target = waiting.get("for")
        if target == "hangup":
            self._complete(state, effects)
        elif target == "input":
            step = state.steps[waiting["seq"]]
            step[4], step[5] = self.clock(), "the call ended while waiting for input"
            state.waiting = None
            self._complete(state, effects)

    def _on_expired(self, state: RunState, event: Expired, effects: list) -> None:
        waiting = state.waiting
        if not waiting or waiting["for"] == "response":
            return  # requests have their own timeouts and the in-doubt rule
        step = state.steps[waiting["seq"]]
        if step[4] is None:
            step[4] = self.clock()
        if waiting["for"] == "hangup":  # the path was done: only the call's end went unheard
            step[5] = f"no hangup callback within {event.seconds:g} s"
            self._complete(state, effects)
            return
        self._fail_run(state, f"no provider callback within {event.seconds:g} s while node "
                       f"{waiting['node']!r} waited for {'its call' if waiting['for'] == 'call' else 'input'}",
                       effects)

    # -- walking the graph ---------------------------------------------------------------------
    def _resume(self, state: RunState, waiting: dict, event, effects: list) -> None:
        state.waiting = None
        state.status = "running"
        spec = self.flow.nodes[waiting["node"]]
        seq = waiting["seq"]
        try:
            action = spec.node_type.resume(Context(spec, state, self.env, seq), event)
        except NodeFailed as e:
            self._walk(state, self._fail_node(state, spec, seq, str(e), effects), effects)
            return
        next_name = self._apply(state, spec, seq, action, effects)
        if next_name is not _WAIT:
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
            need = spec.node_type.call
            if need == "required" and not (state.call and state.call["up"] and state.doc is not None):
                if state.call and state.call.get("ended"):
                    self._complete(state, effects)  # the callee hung up: nothing left to say
                else:
                    self._fail_run(state, f"node {name!r} ({spec.type}) needs a call up", effects)
                return
            seq = len(state.steps)
            state.steps.append([name, spec.type, None, self.clock(), None, None])
            state.path.append(name)
            try:
                action = spec.node_type.run(Context(spec, state, self.env, seq))
            except NodeFailed as e:
                name = self._fail_node(state, spec, seq, str(e), effects)
                continue
            name = self._apply(state, spec, seq, action, effects)
            if name is _WAIT:
                return
        if not state.finished:
            self._path_end(state, effects)

    def _apply(self, state: RunState, spec: NodeSpec, seq: int, action, effects: list):
        step = state.steps[seq]
        kind = type(action)
        if kind is Next or kind is Say:
            if kind is Say:
                state.doc.append(fragment(action.element))
            if action.outputs is not None:
                state.variables[spec.name] = action.outputs
            step[2], step[4] = action.outcome, self.clock()
            if kind is Next and action.error:
                step[5] = action.error
            return spec.next.get(action.outcome) if action.outcome else None
        if kind is Send:
            req = replace(action.request, seq=seq)  # its Response must name the step it answers
            url = f"{req.url}{'&' if '?' in req.url else '?'}{urlencode(req.params)}" if req.params else req.url
            entry = {"node": spec.name, "method": req.method, "url": url, "json": req.json}
            if req.form is not None:
                entry["form"] = req.form
            state.requests.append(entry)
            effects.append(req)
            self._wait(state, spec.name, seq, "response")
            return _WAIT
        if kind is AwaitCall:
            if action.outputs is not None:
                state.variables[spec.name] = action.outputs
            state.call = {"node": spec.name, "seq": seq, "legs": action.legs, "up": False}
            self._wait(state, spec.name, seq, "call")
            return _WAIT
        if kind is Listen:
            state.doc.extend(fragment(el) for el in action.elements)
            self._serve(state, effects)
            if not state.finished:
                self._wait(state, spec.name, seq, "input")
            return _WAIT
        if kind is EndCall:
            state.doc.append(fragment(action.element))
            step[4] = self.clock()
            return None
        raise TypeError(f"{spec.type}.run returned {action!r}, not an action")

    def _wait(self, state: RunState, node: str, seq: int, what: str) -> None:
        state.waiting = {"node": node, "seq": seq, "for": what}
        state.status = "waiting"

    def _path_end(self, state: RunState, effects: list) -> None:
        if state.doc is not None:
            self._serve(state, effects)
            if state.finished:  # the document could not be served
                return
        call = state.call
        if call and call["up"]:
            # The call is still up: the provider hangs up once it has played the document.
            state.waiting = {"node": call["node"], "seq": call["seq"], "for": "hangup"}
            state.status = "waiting"
        else:
            self._complete(state, effects)

    def _serve(self, state: RunState, effects: list) -> None:
        xml = "<Response>" + "".join(state.doc) + "</Response>"
        if len(xml) > MAX_DOCUMENT_BYTES // 4 and len(xml.encode()) > MAX_DOCUMENT_BYTES:
            # The provider would refuse it and drop the call: end the call cleanly instead.
            state.doc = []
            self._fail_run(state, f"the XML document is {len(xml.encode())} bytes; Plivo accepts at most "
                           f"{MAX_DOCUMENT_BYTES}", effects)
            return
        state.served[state.doc_key] = len(state.documents)
        state.documents.append(xml)
        state.doc = state.doc_key = None
        effects.append(ServeDocument(xml))

    def _replay(self, state: RunState, event: Callback) -> str | None:
        index = state.served.get(f"{event.seq}:{event.kind}")
        return None if index is None else state.documents[index]

    def _fail_node(self, state: RunState, spec: NodeSpec, seq: int, message: str, effects: list) -> str | None:
        step = state.steps[seq]
        step[4], step[5] = self.clock(), message
        if spec.error is not None:
            step[2] = "error"
            return spec.error
        self._fail_run(state, f"node {spec.name!r} ({spec.type}) failed: {message}", effects)
        return None

    def _fail_run(self, state: RunState, message: str, effects: list) -> None:
        state.status, state.error, state.waiting = "failed", message, None
        if state.doc is not None:  # end the call rather than leave the caller in silence
            state.doc.append(fragment(element("Hangup")))
            self._serve(state, effects)
        effects.append(Finished("failed", message))

    def _complete(self, state: RunState, effects: list) -> None:
        state.status, state.waiting = "completed", None
        effects.append(Finished("completed"))


class _Waiting:
    def __repr__(self) -> str:
        return "<wait>"


_WAIT = _Waiting()


def _other_leg(state: RunState, event: Callback) -> bool:
    """Is this callback from another call than the one the run controls (same step)?"""
    call = state.call
    uuid_ = event.params.get("CallUUID")
    return bool(call and call.get("uuid") and uuid_ and uuid_ != call["uuid"] and call["seq"] == event.seq)


def _hangup_outputs(params: dict) -> dict:
    out = {"status": params.get("CallStatus", "completed"), "hangup_cause": params.get("HangupCause", "")}
    try:
        out["duration"] = int(params.get("Duration", 0))
    except ValueError:
        out["duration"] = 0
    return out
