"""Durable timers: `wait` outside a call, in the executor, validation and the local shell.

The service side (fire_timers on a real store) is in tests/test_timer_service.py.
"""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import FLOWS, flow_text

from engine.cli import main
from engine.events import Callback, Expired, Response, TimerFired, Trigger
from engine.executor import MAX_STEPS, Executor
from engine.load.build import check_text
from engine.local.run import LocalRun
from engine.local.scenario import parse_scenario
from engine.state import RunState, WaitReason

REMINDER = """
Start:
  type: trigger
  payload: {from: "+12025551234"}
  required: [to]
  next: Later
Later:
  type: wait
  seconds: 3600
  next: Note
Note: {type: set_variables, values: {fired: "yes"}}
"""


class Clock:
    """A settable clock for the executor."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def waiting_run(make_flow, body: str = REMINDER):
    clock = Clock()
    executor = Executor(make_flow(body), clock=clock)
    state = executor.new_run("r1")
    effects = executor.advance(state, Trigger({"to": "+12025550100"}))
    return executor, state, clock, effects


def diagnostics(body: str) -> list[str]:
    _, found = check_text(flow_text(body), "t.yaml")
    return [str(d) for d in found]


# -- the executor ------------------------------------------------------------------------------
def test_a_wait_outside_a_call_sets_a_timer_due_after_its_seconds(make_flow):
    _, state, clock, effects = waiting_run(make_flow)
    assert effects.changed and list(effects) == []  # no request: the shell fires the timer
    assert state.status == "waiting"
    assert state.waiting.reason is WaitReason.TIMER
    assert (state.waiting.node, state.waiting.seq, state.waiting.until) == ("Later", 1, clock.now + 3600)
    assert state.steps[1].outcome is None and state.steps[1].ended_at is None


def test_the_timer_fires_once_due_and_the_node_takes_done(make_flow):
    executor, state, clock, _ = waiting_run(make_flow)
    set_at = clock.now
    clock.now += 3599.9
    early = executor.advance(state, TimerFired(1))
    assert not early.changed and state.status == "waiting"  # not due yet
    clock.now = set_at + 3600
    fired = executor.advance(state, TimerFired(1))
    assert fired.changed
    assert state.status == "completed" and state.path == ["Start", "Later", "Note"]
    assert state.variables["Note"] == {"fired": "yes"}
    step = state.steps[1]
    assert step.outcome == "done" and (step.started_at, step.ended_at) == (set_at, set_at + 3600)


def test_firing_twice_or_for_another_step_changes_nothing(make_flow):
    executor, state, clock, _ = waiting_run(make_flow)
    clock.now += 3600
    assert not executor.advance(state, TimerFired(0)).changed  # another step's timer
    assert not executor.advance(state, TimerFired(2)).changed
    assert state.status == "waiting"
    assert executor.advance(state, TimerFired(1)).changed
    before = state.to_json()
    clock.now += 10
    again = executor.advance(state, TimerFired(1))
    assert not again.changed and list(again) == [] and state.to_json() == before


def test_callbacks_and_the_run_timeout_leave_a_timer_alone(make_flow):
    executor, state, clock, _ = waiting_run(make_flow)
    before = state.to_json()
    clock.now += 10 * 86400
    assert not executor.advance(state, Expired(600)).changed  # a timer is due when due, not stale
    assert state.to_json() == before
    stray = executor.advance(state, Callback("answer", 1, {"CallUUID": "x"}))
    assert not stray.changed and stray[0].xml == "<Response><Hangup/></Response>"
    assert state.status == "waiting" and state.waiting.reason is WaitReason.TIMER


def test_the_state_round_trips_through_json_with_until_and_fires_after(make_flow):
    executor, state, clock, _ = waiting_run(make_flow)
    text = state.to_json()
    assert json.loads(text)["waiting"] == {"node": "Later", "seq": 1, "for": "timer", "until": clock.now + 3600}
    loaded = RunState.from_json(text)
    assert loaded.waiting == state.waiting and loaded.to_json() == text
    clock.now += 3600
    assert executor.advance(loaded, TimerFired(1)).changed and loaded.status == "completed"


def test_a_loop_paced_by_a_timer_is_not_a_spinning_loop(make_flow):
    body = """
    Start: {type: trigger, next: Later}
    Later: {type: wait, seconds: 60, next: Count}
    Count: {type: set_variables, values: {n: "1"}, next: Later}
    """
    assert not any("loop-without-wait" in d for d in diagnostics(body))
    state = LocalRun(make_flow(body)).run({})
    # each timer is an outside event: far more than 10 visits of a node, stopped only by the step cap
    assert state.status == "failed" and f"reached {MAX_STEPS} steps" in state.error


# -- validation ----------------------------------------------------------------------------------
def test_a_wait_outside_a_call_is_valid_up_to_30_days():
    body = REMINDER.replace("seconds: 3600", "seconds: 2592000")
    assert diagnostics(body) == []


def test_seconds_out_of_bounds_are_reported_at_the_value():
    over = diagnostics(REMINDER.replace("seconds: 3600", "seconds: 2592001"))
    assert over == ["t.yaml:13:14: error out-of-range must be at most 2592000, got 2592001"]
    under = diagnostics(REMINDER.replace("seconds: 3600", "seconds: 0"))
    assert under == ["t.yaml:13:14: error out-of-range must be at least 1, got 0"]


IN_CALL = """
Start: {type: trigger, next: {http: Call}}
Call:
  type: call_out
  from: "+12025551234"
  to: "+12025550100"
  next: {answered: Hold, no_answer: Retry}
Hold:
  type: wait
  seconds: 7200
  next: Done
Retry:
  type: wait
  seconds: 7200
Done: {type: hangup}
"""


def test_a_wait_during_a_call_is_still_capped_at_an_hour():
    found = diagnostics(IN_CALL)
    assert found == ["t.yaml:14:14: error out-of-range this wait can run during a call, where it lasts at most "
                     "3600 s, got 7200 (only outside a call is it a timer of up to 2592000 s)"]  # Hold, not Retry


def test_a_wait_during_a_call_renders_wait_and_over_an_hour_fails_the_node(make_flow):
    body = IN_CALL.replace("seconds: 7200\n  next: Done", 'seconds: "{{ Start.http.params.hold }}"\n  next: Done')
    flow = make_flow(body)
    state = LocalRun(flow).run({"hold": 5})
    assert state.status == "completed" and '<Wait length="5"/>' in state.documents[0]
    assert state.waiting is None and all(s.ended_at is not None for s in state.steps)
    failed = LocalRun(flow).run({"hold": 7200})
    assert failed.status == "failed" and "seconds: during a call must be at most 3600, got 7200" in failed.error


def test_a_wait_reached_after_the_callee_hung_up_mid_document_ends_the_run(make_flow):
    body = """
    Start: {type: trigger, next: {http: Call}}
    Call: {type: call_out, from: "+12025551234", to: "+12025550100", next: {answered: Fetch}}
    Fetch: {type: http_request, url: "https://example.com/x", next: {success: Hold}}
    Hold: {type: wait, seconds: 5, next: Bye}
    Bye: {type: speak, text: Bye}
    """
    executor = Executor(make_flow(body), clock=Clock())
    state = executor.new_run("r1")
    [call] = executor.advance(state, Trigger({}))
    executor.advance(state, Response(status=201, body={"request_uuid": "q"}, seq=call.seq))
    [redirect, fetch] = executor.advance(state, Callback("answer", call.seq, {"CallUUID": "c"}))
    executor.advance(state, Callback("hangup", call.seq, {"CallUUID": "c", "CallStatus": "completed"}))
    executor.advance(state, Response(status=200, body={}, seq=fetch.seq))
    # the caller is gone: no timer, no document for nobody (only the Redirect served before the request)
    assert state.status == "completed" and state.path == ["Start", "Call", "Fetch"]
    assert state.waiting is None and state.documents == [redirect.xml]


# -- the local shell --------------------------------------------------------------------------
def test_local_run_fires_the_timer_on_the_simulated_clock_at_once(make_flow):
    runner = LocalRun(make_flow(REMINDER.replace("seconds: 3600", "seconds: 2592000")))
    state = runner.run({"to": "+12025550100"})
    assert state.status == "completed" and state.path == ["Start", "Later", "Note"]
    assert runner.simulated == 2592000  # thirty days passed on the simulated clock, none on the wall clock
    step = state.steps[1]
    assert step.ended_at - step.started_at == 2592000


def test_a_call_not_answered_retries_after_a_timer(make_flow):
    body = """
    Start: {type: trigger, next: {http: First}}
    First:
      type: call_out
      from: "+12025551234"
      to: "{{ Start.http.params.to }}"
      next: {answered: Hello, no_answer: Later, busy: Later}
    Later: {type: wait, seconds: 900, next: Second}
    Second:
      type: call_out
      from: "+12025551234"
      to: "{{ Start.http.params.to }}"
      next: {answered: Hello}
    Hello: {type: speak, text: Hi, next: Done}
    Done: {type: hangup}
    """
    runner = LocalRun(make_flow(body), parse_scenario("default: busy\n"))
    state = runner.run({"to": "+12025550100"})
    assert state.path == ["Start", "First", "Later", "Second"]
    assert [r["node"] for r in state.requests] == ["First", "Second"]
    assert state.steps[2].ended_at - state.steps[2].started_at == 900
    assert runner.simulated >= 900


def test_callflow_run_traces_the_simulated_time_of_the_timer():
    flow = str(FLOWS / "appointment-reminder.yaml")
    result = CliRunner().invoke(main, ["run", flow, "-p", "to=+12025550100", "-p", "when=Friday", "-p", "delay=90061"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split() == ["90061.0s", "Later", "(wait)", "->", "done", "waited", "1", "d", "1", "h", "1",
                                "min", "1", "s", "on", "a", "timer"] for line in lines), result.output
    assert "completed in 90066.0 s simulated time" in lines[-1]
    verbose = CliRunner().invoke(main, ["run", flow, "-p", "to=+12025550100", "-p", "when=Friday", "-p",
                                        "delay=60", "-v"])
    assert "Later (wait) ... waiting for timer (due at 60.0s)" in verbose.output
    assert "<- timer of Later due at 60.0s (simulated clock: no real wait)" in verbose.output


def test_callflow_test_runs_the_reminder_flow():
    result = CliRunner().invoke(main, ["test", str(FLOWS / "appointment-reminder.test.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "8 passed, 0 failed"
