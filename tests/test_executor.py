"""The executor through the in-process shell: outcomes, XML, guards, idempotency, resumability."""

import json

import pytest

from engine.events import Callback, Response, Trigger
from engine.executor import MAX_REPEAT, Executor
from engine.local.run import SANDBOX_ENV, LocalRun, parse_callback_url
from engine.local.scenario import parse_scenario
from engine.plivoxml import parse
from engine.state import RunState, WaitReason

SEED = """
Start:
  type: trigger
  payload: {from: "+12025551234"}
  required: [to, customer]
  next: Call
Call:
  type: call_out
  from: "{{ Start.http.params.from }}"
  to: "{{ Start.http.params.to }}"
  sip_headers: {customer: "{{ Start.http.params.customer }}"}
  machine_detection: true
  next: {answered: Greet, no_answer: NoAnswer, busy: Busy, failed: Failed, machine: Machine}
Greet: {type: speak, text: "Hello", next: Done}
NoAnswer: {type: set_variables, values: {why: no answer}, next: Done}
Busy: {type: set_variables, values: {why: busy}, next: Done}
Failed: {type: set_variables, values: {why: failed}, next: Done}
Machine: {type: play, url: "https://example.com/voicemail.mp3", next: Done}
Done: {type: hangup}
"""


def run(flow, payload, scenario_text=None, **kw):
    scenario = parse_scenario(scenario_text) if scenario_text else None
    runner = LocalRun(flow, scenario, **kw)
    return runner.run(payload), runner


@pytest.mark.parametrize("result,path,status,cause", [
    ("answered", ["Start", "Call", "Greet", "Done"], "completed", "NORMAL_CLEARING"),
    ("busy", ["Start", "Call", "Busy", "Done"], "busy", "USER_BUSY"),
    ("no_answer", ["Start", "Call", "NoAnswer", "Done"], "no-answer", "NO_ANSWER"),
    ("failed", ["Start", "Call", "Failed", "Done"], "failed", "UNALLOCATED_NUMBER"),
    ("machine", ["Start", "Call", "Machine", "Done"], "completed", "NORMAL_CLEARING"),
])
def test_each_callee_behaviour_takes_its_outcome(make_flow, result, path, status, cause):
    state, runner = run(make_flow(SEED), {"to": "+12025550100", "customer": "ada"}, f"default: {result}")
    assert state.status == "completed", state.error
    assert state.path == path
    assert state.variables["Call"]["status"] == status
    assert state.variables["Call"]["hangup_cause"] == cause
    call = runner.sandbox.calls[0]
    kinds = [c["kind"] for c in call.log["callbacks"]]
    if result in ("answered", "machine"):
        assert kinds == ["ring", "answer", "hangup"]
        assert state.variables["Call"]["params"]["X-PH-customer"] == "ada"
    else:
        assert kinds == ["ring", "hangup"]
        assert state.documents == []


def test_answered_call_serves_one_batched_document(make_flow):
    state, _ = run(make_flow(SEED), {"to": "+12025550100", "customer": "ada"})
    assert state.documents == [
        '<Response><Speak voice="WOMAN" language="en-US">Hello</Speak><Hangup/></Response>']
    assert parse(state.documents[0]).tag == "Response"
    assert [s["node"] for s in state.record()["steps"]] == state.path
    assert all(s["started_at"] and s["ended_at"] for s in state.record()["steps"])


def test_machine_document_plays_the_voicemail(make_flow):
    state, _ = run(make_flow(SEED), {"to": "+12025550100", "customer": "ada"}, "default: machine")
    assert state.documents == ['<Response><Play>https://example.com/voicemail.mp3</Play><Hangup/></Response>']


def test_call_request_body(make_flow):
    state, _ = run(make_flow(SEED), {"to": "+12025550100", "customer": "ada"})
    req = state.requests[0]
    assert req["method"] == "POST" and req["url"].endswith("/v1/Account/MAXXXXXXXXXXXXXXXXXX/Call/")
    body = req["json"]
    assert body["from"] == "+12025551234" and body["to"] == "+12025550100"
    assert body["sip_headers"] == "customer=ada" and body["machine_detection"] == "true"
    run_id, seq, kind = parse_callback_url(body["answer_url"])
    assert (run_id, seq, kind) == (state.run_id, 1, "answer")
    assert parse_callback_url(body["hangup_url"])[2] == "hangup"


def test_rendered_sip_header_breaking_the_rule_fails_before_any_request(make_flow):
    state, runner = run(make_flow(SEED), {"to": "+12025550100", "customer": "john-doe"})
    assert state.status == "failed"
    assert "SIP header 'customer'" in state.error and "A-Z, a-z and 0-9" in state.error
    assert state.requests == [] and runner.sandbox.calls == []


def test_bad_rendered_phone_number_takes_the_error_edge(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Call}
    Call:
      type: call_out
      from: "+12025551234"
      to: "{{ Start.http.params.to }}"
      error: Oops
      next: {answered: Done}
    Oops: {type: set_variables, values: {handled: "yes"}}
    Done: {type: hangup}
    """)
    state, _ = run(flow, {"to": "not a number"})
    assert state.status == "completed"
    assert state.path == ["Start", "Call", "Oops"]
    step = state.record()["steps"][1]
    assert step["outcome"] == "error" and "neither an E.164 number" in step["error"]


def test_get_input_digits_and_no_input(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Call}
    Call: {type: call_out, from: "+12025551234", to: "+12025550100", next: {answered: Menu}}
    Menu:
      type: get_input
      prompt: "Press a key"
      num_digits: 1
      next: {input: Said, no_input: Again}
    Again: {type: speak, text: "Once more", next: Menu}
    Said: {type: speak, text: "You pressed {{ Menu.digits }}"}
    """)
    state, runner = run(flow, {}, 'default: {result: answered, digits: ["", "7"]}')
    assert state.status == "completed", state.error
    assert state.path == ["Start", "Call", "Menu", "Again", "Menu", "Said"]
    first = parse(state.documents[0])
    assert [c.tag for c in first.children] == ["GetDigits", "Redirect"]
    gd = dict(first.children[0].attrs)
    assert gd["numDigits"] == "1" and parse_callback_url(gd["action"])[2] == "digits"
    assert parse_callback_url(first.children[1].text)[2] == "no_input"
    assert state.documents[-1].startswith('<Response><Speak voice="WOMAN" language="en-US">You pressed 7</Speak>')
    assert state.variables["Menu"] == {"digits": "7"}


def test_callee_hanging_up_while_waiting_for_input_ends_the_run(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Call}
    Call: {type: call_out, from: "+12025551234", to: "+12025550100", next: {answered: Menu}}
    Menu: {type: get_input, prompt: "Press a key", next: {input: Done}}
    Done: {type: hangup}
    """)
    state, _ = run(flow, {}, "default: {result: answered, hangup_after: 0.5}")
    assert state.status == "completed"
    assert state.record()["steps"][-1]["error"] == "the call ended while waiting for input"


BRANCH = """
Start: {type: trigger, next: Pick}
Pick:
  type: branch
  value: "{{ Start.http.params.v }}"
  conditions:
    - {name: eq, op: equals, value: "abc"}
    - {name: ne, op: not_equals, value: "zzz"}
  next: {eq: A, ne: B, no_match: C}
A: {type: set_variables, values: {x: a}}
B: {type: set_variables, values: {x: b}}
C: {type: set_variables, values: {x: c}}
"""


@pytest.mark.parametrize("op,operand,value,matched", [
    ("equals", "1", "1", True), ("equals", "1", "2", False),
    ("not_equals", "1", "2", True), ("contains", "ell", "hello", True), ("contains", "x", "hello", False),
    ("starts_with", "he", "hello", True), ("ends_with", "lo", "hello", True), ("ends_with", "he", "hello", False),
    ("greater_than", "10", "11", True), ("greater_than", "10", "9", False), ("less_than", "10", "9.5", True),
    ("matches", "^h.l+o$", "hello", True), ("matches", "^\\d+$", "12a", False),
])
def test_branch_ops(make_flow, op, operand, value, matched):
    flow = make_flow(f"""
    Start: {{type: trigger, next: Pick}}
    Pick:
      type: branch
      value: "{{{{ Start.http.params.v }}}}"
      conditions:
        - {{name: hit, op: {op}, value: '{operand}'}}
      next: {{hit: Hit, no_match: Miss}}
    Hit: {{type: set_variables, values: {{r: hit}}}}
    Miss: {{type: set_variables, values: {{r: miss}}}}
    """)
    state, _ = run(flow, {"v": value})
    assert state.path[-1] == ("Hit" if matched else "Miss")
    assert state.variables["Pick"]["matched"] == ("hit" if matched else None)


def test_branch_first_matching_condition_wins_and_numeric_op_on_text_fails(make_flow):
    flow = make_flow(BRANCH)
    assert run(flow, {"v": "abc"})[0].path[-1] == "A"
    assert run(flow, {"v": "q"})[0].path[-1] == "B"
    assert run(flow, {"v": "zzz"})[0].path[-1] == "C"
    numeric = make_flow("""
    Start: {type: trigger, next: Pick}
    Pick:
      type: branch
      value: "{{ Start.http.params.v }}"
      conditions: [{name: big, op: greater_than, value: "5"}]
    """)
    state, _ = run(numeric, {"v": "lots"})
    assert state.status == "failed" and "'lots' is not a number" in state.error


def test_set_variables_templates_and_undefined_variables(make_flow):
    flow = make_flow("""
    Start: {type: trigger, payload: {name: Ada}, next: Vars}
    Vars:
      type: set_variables
      values:
        greeting: "Hi {{ Start.http.params.name | upcase }}"
        fallback: "{{ Start.http.params.missing | default: 'none' }}"
        flag: "{% if Start.http.params.missing %}yes{% else %}no{% endif %}"
        count: 3
      next: Use
    Use: {type: set_variables, values: {echo: "{{ Vars.greeting }}/{{ Vars.count }}"}, next: Bad}
    Bad: {type: set_variables, values: {oops: "{{ Start.http.params.missing }}"}}
    """)
    state, _ = run(flow, {})
    assert state.variables["Vars"] == {"greeting": "Hi ADA", "fallback": "none", "flag": "no", "count": 3}
    assert state.variables["Use"] == {"echo": "Hi ADA/3"}
    assert state.status == "failed" and "undefined" in state.error


def test_payload_values_are_data_never_rendered(make_flow):
    flow = make_flow("""
    Start: {type: trigger, payload: {note: "{{ 7 | times: 6 }}"}, next: Vars}
    Vars: {type: set_variables, values: {copy: "{{ Start.http.params.note }}"}}
    """)
    state, _ = run(flow, {"evil": "{{ Start }}"})
    assert state.variables["Vars"]["copy"] == "{{ 7 | times: 6 }}"
    assert state.variables["Start"]["http"]["params"]["evil"] == "{{ Start }}"


def test_self_loop_without_wait_is_stopped_after_ten_visits(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Spin}
    Spin:
      type: branch
      value: "x"
      conditions: [{name: again, op: equals, value: "x"}]
      next: {again: Spin}
    """)
    state, _ = run(flow, {})
    assert state.status == "failed"
    assert f"ran {MAX_REPEAT} times" in state.error
    assert state.path.count("Spin") == MAX_REPEAT


def test_http_polling_loop_is_stopped_too(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Poll}
    Poll: {type: http_request, url: "https://api.example.com/x", next: {success: Poll, failed: Poll}}
    """)
    state, _ = run(flow, {}, "http: {Poll: {status: 200, json: {}}}")
    assert state.status == "failed" and "'Poll'" in state.error
    assert len(state.requests) == MAX_REPEAT


def test_run_stops_at_one_thousand_steps(make_flow, monkeypatch):
    import engine.executor as ex

    monkeypatch.setattr(ex, "MAX_REPEAT", 10_000)
    flow = make_flow("""
    Start: {type: trigger, next: A}
    A: {type: set_variables, values: {x: 1}, next: B}
    B: {type: set_variables, values: {x: 2}, next: A}
    """)
    state, _ = run(flow, {})
    assert state.status == "failed" and "1000 steps" in state.error
    assert len(state.steps) == 1000


def test_http_request_failure_routes_to_failed_and_unmocked_request_never_touches_network(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Get}
    Get: {type: http_request, url: "https://api.example.com/x", next: {success: Ok, failed: Bad}}
    Ok: {type: set_variables, values: {r: ok}}
    Bad: {type: set_variables, values: {r: "{{ Get.status_code }}"}}
    """)
    assert run(flow, {}, "http: {Get: {status: 503, body: down}}")[0].variables["Bad"] == {"r": "503"}
    state, _ = run(flow, {}, "http: {Get: {status: 200, json: {a: [1, 2]}}}")
    assert state.path[-1] == "Ok" and state.variables["Get"]["body"] == {"a": [1, 2]}
    state, _ = run(flow, {})
    assert state.path[-1] == "Bad" and "no mocked response" in state.record()["steps"][1]["error"]


def test_send_sms_sent_and_failed(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Sms}
    Sms:
      type: send_sms
      from: "+12025551234"
      to: "{{ Start.http.params.to }}"
      text: "{{ Start.http.params.text }}"
      next: {sent: Ok, failed: Bad}
    Ok: {type: set_variables, values: {id: "{{ Sms.message_uuid }}"}}
    Bad: {type: set_variables, values: {r: bad}}
    """)
    state, runner = run(flow, {"to": "+12025550100", "text": "hello"})
    assert state.path[-1] == "Ok" and state.variables["Ok"]["id"] == runner.sandbox.messages[0]["message_uuid"]
    assert state.requests[0]["json"] == {"src": "+12025551234", "dst": "+12025550100", "text": "hello"}
    state, _ = run(flow, {"to": "+12025550100", "text": ""})
    assert state.path[-1] == "Bad"
    assert "text parameter is missing" in state.record()["steps"][1]["error"]


def test_wait_play_and_hangup_reason_render_as_plivo_xml(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Call}
    Call: {type: call_out, from: "+12025551234", to: "sip:alice@example.com", next: {answered: Hold}}
    Hold: {type: wait, seconds: 2, next: Music}
    Music: {type: play, url: "https://example.com/a.mp3", loop: 2, next: Bye}
    Bye: {type: hangup, reason: rejected}
    """)
    state, _ = run(flow, {})
    assert state.documents == ['<Response><Wait length="2"/><Play loop="2">https://example.com/a.mp3</Play>'
                               '<Hangup reason="rejected"/></Response>']


def test_multiple_destinations_first_answer_wins(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Call}
    Call:
      type: call_out
      from: "+12025551234"
      to: ["+12025550101", "+12025550102"]
      next: {answered: Greet, busy: Done}
    Greet: {type: speak, text: "hi {{ Call.to }}", next: Done}
    Done: {type: hangup}
    """)
    state, runner = run(flow, {}, 'destinations: {"+12025550101": busy}')
    assert state.requests[0]["json"]["to"] == "+12025550101<+12025550102"
    assert state.path == ["Start", "Call", "Greet", "Done"]
    assert state.status == "completed"
    state, _ = run(flow, {}, "default: busy")
    assert state.path == ["Start", "Call", "Done"]


def _pump(executor, state, event):
    """Deliver an event and return (effects, served xml)."""
    effects = executor.advance(state, event)
    xml = [e.xml for e in effects if hasattr(e, "xml")]
    return effects, xml[0] if xml else None


def test_callbacks_are_idempotent_and_state_survives_serialisation(make_flow):
    flow = make_flow(SEED)
    ex = Executor(flow)
    state = ex.new_run("r1")
    effects, _ = _pump(ex, state, Trigger({"to": "+12025550100", "customer": "ada"}))
    assert state.status == "waiting" and state.waiting.reason is WaitReason.RESPONSE
    # crash-and-reload between every event: the state is plain JSON
    state = RunState.from_json(state.to_json())
    _pump(ex, state, Response(201, body={"request_uuid": "rq"}))
    state = RunState.from_json(state.to_json())
    params = {"CallUUID": "cu", "CallStatus": "in-progress"}
    _, xml1 = _pump(ex, state, Callback("answer", 1, params))
    steps = len(state.steps)
    _, xml2 = _pump(ex, state, Callback("answer", 1, params))  # provider retry
    assert xml1 == xml2 and "Hello" in xml1 and len(state.steps) == steps
    hangup = {"CallUUID": "cu", "CallStatus": "completed", "HangupCause": "NORMAL_CLEARING", "Duration": "4"}
    effects, _ = _pump(ex, state, Callback("hangup", 1, hangup))
    assert state.status == "completed" and any(type(e).__name__ == "Finished" for e in effects)
    effects, _ = _pump(ex, state, Callback("hangup", 1, hangup))
    assert effects == [] and state.variables["Call"]["duration"] == 4
    _, xml = _pump(ex, state, Callback("digits", 9, {}))
    assert xml == "<Response><Hangup/></Response>"


def test_answer_callback_before_the_api_response_still_advances(make_flow):
    ex = Executor(make_flow(SEED))
    state = ex.new_run("r2")
    _pump(ex, state, Trigger({"to": "+12025550100", "customer": "ada"}))
    _, xml = _pump(ex, state, Callback("answer", 1, {"CallUUID": "cu"}))
    assert "Hello" in xml
    effects, _ = _pump(ex, state, Response(201, body={"request_uuid": "rq"}))  # late: ignored
    assert effects == [] and state.path == ["Start", "Call", "Greet", "Done"]


def test_request_in_doubt_takes_failed_without_resending(make_flow):
    ex = Executor(make_flow(SEED))
    state = ex.new_run("r3")
    _pump(ex, state, Trigger({"to": "+12025550100", "customer": "ada"}))
    effects, _ = _pump(ex, state, Response(in_doubt=True))
    assert not any(type(e).__name__ == "Request" for e in effects)
    assert state.path == ["Start", "Call", "Failed", "Done"] and len(state.requests) == 1
    assert "in doubt" in state.record()["steps"][1]["error"]


def test_run_record_is_json(make_flow):
    state, _ = run(make_flow(SEED), {"to": "+12025550100", "customer": "ada"})
    record = json.loads(json.dumps(state.record()))
    assert set(record) >= {"run_id", "flow_id", "status", "path", "steps", "requests", "documents"}
    assert record["requests"][0].keys() >= {"method", "url", "json"}


def test_incoming_call_takes_the_call_outcome_with_its_sip_headers(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: {call: Welcome}}
    Welcome:
      type: speak
      text: "Hello {{ Start.call.headers.account }}, you called {{ Start.call.to }}"
      next: Menu
    Menu: {type: get_input, prompt: "Press 1", num_digits: 1, next: {input: Bye}}
    Bye: {type: hangup}
    """)
    runner = LocalRun(flow, parse_scenario('default: {result: answered, digits: "1"}'))
    state = runner.run_inbound("+12025550199", "+12025551234", headers={"account": "A42"})
    assert state.status == "completed", state.error
    assert state.path == ["Start", "Welcome", "Menu", "Bye"]
    assert state.steps[0].outcome == "call"
    call = state.variables["Start"]["call"]
    assert call["from"] == "+12025550199" and call["headers"] == {"account": "A42"}
    assert state.documents[0].startswith('<Response><Speak voice="WOMAN" language="en-US">Hello A42, you called '
                                         '+12025551234</Speak><GetDigits')
    assert state.documents[1] == "<Response><Hangup/></Response>"
    log = runner.sandbox.calls[0].log
    assert log["direction"] == "inbound"
    assert [c["params"]["Direction"] for c in log["callbacks"]] == ["inbound"] * 3


MULTI = """
Start: {type: trigger, next: Call}
Call:
  type: call_out
  from: "+12025551234"
  to: ["+12025550101", "+12025550102"]
  next: {answered: Menu}
Menu: {type: get_input, prompt: "Press a key", next: {input: Said}}
Said: {type: speak, text: "You pressed {{ Menu.digits }}"}
"""


def test_other_legs_never_get_the_document_nor_end_the_answered_call(make_flow):
    ex = Executor(make_flow(MULTI))
    state = ex.new_run("legs")
    _pump(ex, state, Trigger({}))
    _pump(ex, state, Response(201, body={"request_uuid": ["ra", "rb"]}, seq=1))
    _, xml = _pump(ex, state, Callback("answer", 1, {"CallUUID": "leg-a"}))
    assert "<GetDigits" in xml
    _, xml = _pump(ex, state, Callback("answer", 1, {"CallUUID": "leg-b"}))  # answers too late
    assert xml == "<Response><Hangup/></Response>"
    effects, _ = _pump(ex, state, Callback("hangup", 1, {"CallUUID": "leg-b", "CallStatus": "completed"}))
    assert effects == [] and state.status == "waiting" and state.call.up
    _, xml = _pump(ex, state, Callback("digits", 2, {"CallUUID": "leg-a", "Digits": "5"}))
    assert "You pressed 5" in xml


def test_a_late_response_is_not_taken_by_a_later_node(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: A}
    A: {type: http_request, url: "https://api.example.com/a", next: {success: B, failed: B}}
    B: {type: http_request, url: "https://api.example.com/b", params: {q: "x y"}, next: {success: Done}}
    Done: {type: set_variables, values: {b: "{{ B.body }}"}}
    """)
    ex = Executor(flow)
    state = ex.new_run("late")
    effects, _ = _pump(ex, state, Trigger({}))
    assert effects[0].seq == 1
    effects, _ = _pump(ex, state, Response(200, body="a", seq=1))
    assert effects[0].seq == 2 and state.requests[1]["url"] == "https://api.example.com/b?q=x+y"
    effects, _ = _pump(ex, state, Response(200, body="a again", seq=1))  # a retry's late answer
    assert effects == [] and state.waiting.node == "B"
    _pump(ex, state, Response(200, body="b", seq=2))
    assert state.variables["Done"] == {"b": "b"}


def test_a_document_over_plivos_limit_ends_the_call_and_fails_the_run(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Call}
    Call: {type: call_out, from: "+12025551234", to: "+12025550100", next: {answered: Get}}
    Get: {type: http_request, url: "https://api.example.com/text", next: {success: Read}}
    Read: {type: speak, text: "{{ Get.body }}"}
    """)
    state, runner = run(flow, {}, "http: {Get: {status: 200, body: '" + "x" * 150_000 + "'}}")
    assert state.status == "failed" and "Plivo accepts at most 102400" in state.error
    # The request's Redirect came first (no dead air); the document it fetched ends the call.
    redirect = f'<Redirect method="POST">{SANDBOX_ENV.callback_url(state.run_id, 2, "redirect")}</Redirect>'
    assert state.documents == [f"<Response>{redirect}</Response>", "<Response><Hangup/></Response>"]
    assert runner.sandbox.calls[0].log["documents"] == state.documents
    assert runner.sandbox.calls[0].log["hangup_cause"] == "NORMAL_CLEARING"


def test_null_payload_values_do_not_supply_required_keys(make_flow):

    flow = make_flow(SEED)
    assert flow.missing_payload({"to": None, "customer": "a"}) == ["to"]
    assert flow.missing_payload({"to": "+12025550100", "customer": "a"}) == []


def test_an_oversized_prompt_document_fails_instead_of_waiting(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: Call}
    Call: {type: call_out, from: "+12025551234", to: "+12025550100", next: {answered: Ask}}
    Ask: {type: get_input, prompt: "{{ Start.http.params.long }}", next: {input: Done}}
    Done: {type: hangup}
    """)
    state, _ = run(flow, {"long": "y" * 120_000})
    assert state.status == "failed" and state.waiting is None
    assert state.documents == ["<Response><Hangup/></Response>"]


def test_the_record_keeps_each_requests_answer_with_the_body_cut(make_flow):
    ex = Executor(make_flow(SEED))
    state = ex.new_run("r4")
    _pump(ex, state, Trigger({"to": "+12025550100", "customer": "ada"}))
    _pump(ex, state, Response(status=201, body={"message": "call fired", "filler": "x" * 500}))
    response = state.record()["requests"][0]["response"]
    assert response["status"] == 201 and "error" not in response
    assert response["body"].startswith('{"message":"call fired"') and len(response["body"]) == 200
    assert response["body"].endswith("\u2026")
    assert Response(status=0, error="timed out").summary() == {"status": 0, "error": "timed out"}
    assert Response(status=204, body="").summary() == {"status": 204}
