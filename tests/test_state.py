"""The run state's typed records (Step, Waiting, Call) and their stored JSON, which stays
the format stored since the first version: old stored runs load and continue."""

from __future__ import annotations

import json
from enum import Enum

import engine.executor as executor_module
from engine.events import Response, ServeDocument
from engine.executor import Executor
from engine.state import Call, RunState, Step, Waiting, WaitReason

# A run stored by the version before the typed records (steps as lists, the "doc"/"doc_key"
# keys), written by that version's executor: call answered, Hello appended to the document,
# Lookup waiting for its response.
OLD_STATE = (
    '{"run_id":"r1","flow_id":"old","status":"waiting","variables":{"Start":{"http":{"params":{}}},'
    '"Call":{"call_uuid":"u1","request_uuid":"rq","from":"+12025551234","to":"+12025550100",'
    '"status":"in-progress","hangup_cause":null,"duration":0,"params":{"CallUUID":"u1"}}},'
    '"path":["Start","Call","Hello","Lookup"],'
    '"steps":[["Start","trigger","http",1700000000.0,1700000000.0,null],'
    '["Call","call_out","answered",1700000000.0,1700000000.0,null],'
    '["Hello","speak","done",1700000000.0,1700000000.0,null],'
    '["Lookup","http_request",null,1700000000.0,null,null]],'
    '"requests":[{"node":"Call","method":"POST","url":"https://api.plivo.com/v1/Account/MAXXXXXXXXXXXXXXXXXX/Call/",'
    '"json":{"from":"+12025551234","to":"+12025550100","answer_url":"http://127.0.0.1:8080/callbacks/r1/1/answer",'
    '"answer_method":"POST","hangup_url":"http://127.0.0.1:8080/callbacks/r1/1/hangup","hangup_method":"POST",'
    '"ring_url":"http://127.0.0.1:8080/callbacks/r1/1/ring","ring_method":"POST"}},'
    '{"node":"Lookup","method":"GET","url":"https://example.com/x","json":null}],'
    '"documents":[],"waiting":{"node":"Lookup","seq":3,"for":"response"},'
    '"call":{"node":"Call","seq":1,"legs":1,"up":true,"uuid":"u1"},'
    '"doc":["<Speak voice=\\"WOMAN\\" language=\\"en-US\\">Hello</Speak>"],"doc_key":"1:answer",'
    '"served":{},"sprint":{"Hello":1,"Lookup":1},"error":null,"created_at":1700000000.0,"updated_at":1700000000.0}'
)

OLD_FLOW = """\
Start:
  type: trigger
  next: Call
Call:
  type: call_out
  from: "+12025551234"
  to: "+12025550100"
  next: {answered: Hello}
Hello:
  type: speak
  text: Hello
  next: Lookup
Lookup:
  type: http_request
  url: https://example.com/x
  next: {success: Bye}
Bye:
  type: speak
  text: bye
"""


def test_an_old_stored_state_loads_with_named_accessors():
    state = RunState.from_json(OLD_STATE)
    first, last = state.steps[0], state.steps[-1]
    assert isinstance(first, Step)
    assert (first.node, first.type, first.outcome, first.started_at, first.ended_at, first.error) == (
        "Start", "trigger", "http", 1700000000.0, 1700000000.0, None)
    assert last.node == "Lookup" and last.type == "http_request" and last.outcome is None and last.ended_at is None
    assert state.waiting == Waiting("Lookup", 3, WaitReason.RESPONSE)
    assert state.waiting.reason is WaitReason.RESPONSE
    # keys an old stored call lacks take their defaults
    assert state.call == Call("Call", 1, legs=1, up=True, uuid="u1", ringing=False, ended=False)
    # the old names of the pending document
    assert state.pending_xml == ['<Speak voice="WOMAN" language="en-US">Hello</Speak>']
    assert state.answering == "1:answer"
    assert state.record()["steps"][0] == {"node": "Start", "type": "trigger", "outcome": "http",
                                          "started_at": "2023-11-14T22:13:20.000Z",
                                          "ended_at": "2023-11-14T22:13:20.000Z", "error": None}


def test_an_old_stored_run_continues(make_flow):
    flow = make_flow(OLD_FLOW, flow_id="old")
    state = RunState.from_json(OLD_STATE)
    effects = Executor(flow, clock=lambda: 1700000001.0).advance(state, Response(200, body={}, seq=3))
    (served,) = [e for e in effects if isinstance(e, ServeDocument)]
    assert served.xml == ('<Response><Speak voice="WOMAN" language="en-US">Hello</Speak>'
                          '<Speak voice="WOMAN" language="en-US">bye</Speak></Response>')
    assert state.served == {"1:answer": 0} and state.pending_xml is None and state.answering is None
    assert state.waiting == Waiting("Call", 1, WaitReason.HANGUP)
    assert [(s.node, s.outcome) for s in state.steps][-2:] == [("Lookup", "success"), ("Bye", "done")]


def test_stored_json_keeps_the_list_and_mapping_shapes():
    state = RunState.from_json(OLD_STATE)
    state.call.ringing = True
    data = json.loads(state.to_json())
    old = json.loads(OLD_STATE)
    assert data["steps"] == old["steps"]  # 6-element lists, exactly as before
    assert data["waiting"] == {"node": "Lookup", "seq": 3, "for": "response"}
    assert data["call"] == {"node": "Call", "seq": 1, "legs": 1, "up": True, "uuid": "u1", "ringing": True,
                            "ended": False}
    assert data["pending_xml"] == old["doc"] and data["answering"] == old["doc_key"]
    assert "doc" not in data and "doc_key" not in data
    for key in set(old) - {"doc", "doc_key", "call"}:
        assert data[key] == old[key], key
    again = RunState.from_json(state.to_json())
    assert again == state


def test_a_fresh_state_round_trips():
    state = RunState(run_id="r", flow_id="f")
    assert RunState.from_json(state.to_json()) == state
    assert json.loads(state.to_json())["waiting"] is None


def test_wait_reasons_and_the_executor_sentinel_are_enums():
    assert {r.value for r in WaitReason} == {"response", "call", "input", "hangup", "timer"}
    assert WaitReason("input") is WaitReason.INPUT
    assert isinstance(executor_module._Pause.WAIT, Enum)


def test_other_leg_of_the_call():
    call = Call("Call", 1, legs=2, up=True, uuid="a")
    assert call.other_leg(1, "b") and not call.other_leg(1, "a") and not call.other_leg(2, "b")
    assert not call.other_leg(1, None) and not Call("Call", 1).other_leg(1, "b")  # no uuid yet: not known
