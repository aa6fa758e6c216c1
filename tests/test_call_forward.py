"""call_forward: parallel and sequential Dials in the sandbox, call screening, the recording
of the bridged call, and call_out's SIP header rules."""

from __future__ import annotations

from pathlib import Path

from sdk_oracle import assert_sdk_accepts

from engine.load.build import check_file, check_text
from engine.local.run import LocalRun, run_record
from engine.local.scenario import Behaviour, Scenario

FIXTURE = Path(__file__).resolve().parent.parent / "nodes" / "testdata" / "call_forward.yaml"
DESK = {"+12025550141": "busy", "sip:desk7@example.sip.plivo.com": "busy"}


def run(forward: dict):
    flow, diags = check_file(FIXTURE)
    assert flow is not None, diags
    runner = LocalRun(flow, Scenario(default=Behaviour(forward=forward)))
    state = runner.run_inbound("+12025550123", "+12025551234")
    return state, run_record(state, runner)


def test_screening_serves_the_prompt_to_the_callee_and_the_first_to_answer_is_bridged():
    state, record = run({"+12025550141": "no_answer"})
    callbacks = record["sandbox"]["calls"][0]["callbacks"]
    assert [c["kind"] for c in callbacks] == ["answer", "confirm", "action", "hangup"]
    assert callbacks[2]["params"]["DialStatus"] == "completed"
    assert state.variables["Desk"]["to"] == "sip:desk7@example.sip.plivo.com"
    assert state.variables["Desk"]["b_leg_uuid"] == callbacks[2]["params"]["DialBLegUUID"]
    # The confirm callback changed nothing: it is answered with the prompt, from the config.
    assert "confirm" in callbacks[1]["url"] and state.status == "completed"
    assert_sdk_accepts(state.documents[0])


def test_sequential_rings_each_in_turn_and_records_the_bridged_call():
    state, record = run({**DESK, "+12025550151": "no_answer"})
    agents = [(s.outcome, s.error) for s in state.steps if s.node == "Agents"]
    assert agents == [("again", "+12025550151: no-answer; ringing the next number"), ("completed", None)]
    out = state.variables["Agents"]
    assert out["to"] == "+12025550152" and out["duration"] == 30
    assert out["recording_url"].startswith("https://media.plivo.com/v1/Account/") and out["recording_url"].endswith(".mp3")
    kinds = [c["kind"] for c in record["sandbox"]["calls"][0]["callbacks"]]
    assert kinds == ["answer", "action", "action", "recording", "action", "hangup"]
    for doc in state.documents:
        assert_sdk_accepts(doc)


def test_time_passes_with_each_ring_and_the_bridged_call():
    state, _ = run({**DESK, "+12025550151": "no_answer"})
    thanks = next(s for s in state.steps if s.node == "Thanks")
    # busy desk (1 s), agent 1 rings out (15 s), agent 2 answers (4 s) and talks 30 s
    assert round(thanks.started_at - state.created_at) == 50


def test_sip_headers_follow_call_out_s_rules():
    text = FIXTURE.read_text().replace("sip_headers: {line: support}", "sip_headers: {X-PH-line: sup-port}")
    _, diags = check_text(text, "forward.yaml")
    assert {d.code for d in diags} >= {"sip-header-prefix", "sip-header-value"}
    text = FIXTURE.read_text().replace('key: "1"}', 'key: "12"}')
    _, diags = check_text(text, "forward.yaml")
    assert [d.message for d in diags] == ["'12' is not one key: 0-9, * or #"]
