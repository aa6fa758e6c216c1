"""call_out `retry:` on the simulated clock: a busy callee is called `attempts` times,
`interval` apart, each attempt a step with its own Call request; what may have left a call
up is never retried; the executor's crash rules hold for each attempt; the config checks."""

from __future__ import annotations

import pytest

from engine.events import Callback, Request, Response, TimerFired, Trigger
from engine.executor import Executor
from engine.load.build import check_text
from engine.local.run import LocalRun
from engine.local.scenario import Behaviour, Scenario, parse_scenario
from engine.resend import pending_request
from engine.state import WaitReason

FLOW = """\
spec: callflow/v1
id: redial
nodes:
  Start:
    type: trigger
    required: [to]
    next: Call
  Call:
    type: call_out
    from: "+12025551234"
    to: "{{ Start.http.params.to }}"
    retry: RETRY
    next: {answered: Greet, busy: Done, no_answer: Done, failed: Done}
  Greet:
    type: speak
    text: Hello
    next: Done
  Done:
    type: hangup
"""
TO = "+12025550100"


def build(retry="{attempts: 3, interval: 60}"):
    flow, diags = check_text(FLOW.replace("RETRY", retry), "redial.yaml")
    assert flow is not None, diags
    return flow


def test_a_busy_callee_is_called_three_times_60_s_apart_on_the_simulated_clock():
    runner = LocalRun(build(), Scenario(default=Behaviour(result="busy")))
    state = runner.run({"to": TO})
    assert state.status == "completed" and state.path == ["Start", "Call", "Call", "Call", "Done"]
    calls = [s for s in state.steps if s.node == "Call"]
    assert [s.outcome for s in calls] == ["again", "again", "busy"]
    assert [round(b.started_at - a.started_at, 3) for a, b in zip(calls, calls[1:])] == [60, 60]
    assert calls[0].error == "the call ended busy: placing it again after 60 s (attempt 2 of 3)"
    assert state.variables["Call"]["attempts"] == 3 and state.variables["Call"]["status"] == "busy"
    placed = runner.sandbox.calls
    assert len(placed) == 3 and len(state.requests) == 3
    # each attempt is its own Call request, with the callback URLs of its own step
    assert [c.request["answer_url"].rsplit("/", 2)[1] for c in placed] == ["1", "2", "3"]


def test_busy_then_answered_takes_answered_on_the_second_attempt():
    scenario = parse_scenario('default: [busy, answered]\n')
    state = LocalRun(build(), scenario).run({"to": TO})
    assert state.path == ["Start", "Call", "Call", "Greet", "Done"]
    assert state.variables["Call"]["attempts"] == 2 and state.variables["Call"]["status"] == "completed"


def test_only_the_outcomes_in_on_are_retried():
    flow = build("{attempts: 3, interval: 5, on: [no_answer]}")
    state = LocalRun(flow, Scenario(default=Behaviour(result="busy"))).run({"to": TO})
    assert state.path == ["Start", "Call", "Done"] and state.variables["Call"]["attempts"] == 1
    state = LocalRun(flow, parse_scenario("default: [no_answer, failed]\n")).run({"to": TO})
    assert [s.outcome for s in state.steps[1:3]] == ["again", "failed"]


def test_failed_is_retried_when_asked_but_never_after_a_request_in_doubt():
    flow = build("{attempts: 2, interval: 5, on: [failed]}")
    ex = Executor(flow, clock=lambda: 1000.0)
    state = ex.new_run("r1")
    [req] = [e for e in ex.advance(state, Trigger({"to": TO})) if isinstance(e, Request)]
    ex.advance(state, Response(in_doubt=True, error="connection reset", seq=req.seq))
    assert state.status == "completed" and state.steps[1].outcome == "failed"
    assert state.variables["Call"]["attempts"] == 1 and len(state.requests) == 1
    state = ex.new_run("r2")  # refused outright: no call was placed, so it is placed again
    [req] = [e for e in ex.advance(state, Trigger({"to": TO})) if isinstance(e, Request)]
    ex.advance(state, Response(status=400, body={"error": "invalid"}, seq=req.seq))
    assert state.waits_for(WaitReason.TIMER, 1) and state.waiting.until == 1005.0


def test_each_attempt_is_one_request_a_repeated_timer_changes_nothing_and_a_crash_rebuilds_it():
    now = [1000.0]
    ex = Executor(build("{attempts: 2, interval: 30}"), clock=lambda: now[0])
    state = ex.new_run("r")
    [first] = [e for e in ex.advance(state, Trigger({"to": TO})) if isinstance(e, Request)]
    ex.advance(state, Response(status=201, body={"request_uuid": "u1"}, seq=first.seq))
    ex.advance(state, Callback("hangup", first.seq, {"CallUUID": "u1", "CallStatus": "busy"}))
    assert state.waits_for(WaitReason.TIMER, 1) and state.waiting.until == 1030.0
    assert not ex.advance(state, TimerFired(1)).changed  # not due yet
    now[0] = 1030.0
    [second] = [e for e in ex.advance(state, TimerFired(1)) if isinstance(e, Request)]
    assert second.seq == 2 and "/callbacks/r/2/answer" in second.json["answer_url"]
    assert not ex.advance(state, TimerFired(1)).changed  # fired once: no second request
    # a crash before the second request left: rebuilt exactly as recorded (Claim.UNSENT)
    assert pending_request(ex, state) == second
    # a late hangup of the first call is stale: the second attempt still waits for its answer
    assert not ex.advance(state, Callback("hangup", 1, {"CallUUID": "u1", "CallStatus": "busy"})).changed
    assert state.waits_for(WaitReason.RESPONSE, 2)


@pytest.mark.parametrize(("retry", "expected"), [
    ("{attempts: 0}", "12:23 out-of-range must be at least 1, got 0"),
    ("{attempts: 11}", "12:23 out-of-range must be at most 10, got 11"),
    ("{attempts: 2, interval: 0}", "12:36 out-of-range must be at least 1, got 0"),
    ("{interval: 5}", "12:5 missing-key missing required key 'attempts'"),
    ("{attempts: 2, on: [busy, answered]}", "12:37 retry-on retry on 'answered': it leaves the call up; "
                                            "a call is placed again on busy, no_answer, failed"),
    ("{attempts: 2, on: [bussy]}", "12:31 retry-on retry on 'bussy': not an outcome of call_out; "
                                   "a call is placed again on busy, no_answer, failed"),
    ("{attempts: 2, on: []}", "12:30 too-few-items needs at least 1 item(s)"),
])
def test_retry_config_is_checked_with_line_and_column(retry, expected):
    _, diags = check_text(FLOW.replace("RETRY", retry), "redial.yaml")
    found = [f"{d.line}:{d.col} {d.code} {d.message}" for d in diags if d.severity == "error"]
    assert found == [expected], found
