"""ivr_menu: choices name outcomes (checked), each re-prompt is its own step, `#` as a choice."""

from __future__ import annotations

from engine.load.build import check_text
from engine.local.run import LocalRun
from engine.local.scenario import Behaviour, Scenario

FLOW = """\
spec: callflow/v1
id: menu
nodes:
  Start:
    type: trigger
    next: {call: Menu}
  Menu:
    type: ivr_menu
    prompt: "Press 1 or hash."
    choices: CHOICES
    retries: 1
    next: NEXT
  Done:
    type: hangup
"""


def build(choices='{"1": one, "#": hash}', nxt="{one: Done, hash: Done, no_input: Done, wrong_input: Done}"):
    return check_text(FLOW.replace("CHOICES", choices).replace("NEXT", nxt), "menu.yaml")


def test_choice_names_must_be_outcome_words():
    _, diags = build('{"1": no_input, "2": "two words", "x": three}', "{three: Done}")
    found = [f"{d.line}:{d.col} {d.code} {d.message}" for d in diags if d.severity == "error"]
    assert found == [
        "10:20 invalid-name choice 'no_input' names an outcome: a word (letters, digits, '_'), "
        "not no_input, wrong_input, again, error",
        "10:35 invalid-name choice 'two words' names an outcome: a word (letters, digits, '_'), "
        "not no_input, wrong_input, again, error",
        "10:48 invalid-name 'x': a choice is one key: 0-9, * or #"], found


def test_hash_as_a_choice_moves_the_finish_key_and_each_attempt_is_a_step():
    flow, diags = build()
    assert flow is not None, diags
    state = LocalRun(flow, Scenario(default=Behaviour(digits=("5", "#")))).run_inbound("+12025550123", "+12025551234")
    assert 'finishOnKey="*"' in state.documents[0]
    assert [(s.node, s.outcome) for s in state.steps] == [
        ("Start", "call"), ("Menu", "again"), ("Menu", "hash"), ("Done", None)]
    assert state.steps[1].error == "key '5' is not a choice: asking again (attempt 2 of 2)"
    assert state.variables["Menu"] == {"digits": "#", "choice": "hash", "attempts": 2}
