"""get_input with speech: <GetInput inputType>, the sandbox's speech, the checks."""

from __future__ import annotations

from sdk_oracle import assert_sdk_accepts

from engine.load.build import check_text
from engine.local.run import LocalRun
from engine.local.scenario import Behaviour, Scenario

FLOW = """\
spec: callflow/v1
id: speech
nodes:
  Start:
    type: trigger
    next: {call: Ask}
  Ask:
    type: get_input
    input: speech
    prompt: "Which city?"
EXTRA    next: {input: Done, no_input: Done}
  Done:
    type: hangup
"""


def build(extra=""):
    return check_text(FLOW.replace("EXTRA", extra), "speech.yaml")


def test_speech_only_takes_what_is_said_and_ignores_digits():
    flow, diags = build("    hints: [Paris, London]\n")
    assert flow is not None, diags
    said = LocalRun(flow, Scenario(default=Behaviour(digits=("1",), speech=("London",)))).run_inbound(
        "+12025550123", "+12025551234")
    assert said.variables["Ask"] == {"digits": "", "speech": "London", "confidence": 0.92}
    doc = said.documents[0]
    assert '<GetInput action="' in doc and 'inputType="speech" executionTimeout="5"' in doc
    assert 'hints="Paris,London"' in doc and "numDigits" not in doc
    assert_sdk_accepts(doc)
    pressed = LocalRun(flow, Scenario(default=Behaviour(digits=("1",)))).run_inbound("+12025550123", "+12025551234")
    assert [s.outcome for s in pressed.steps if s.node == "Ask"] == ["no_input"]


def test_digit_only_keys_and_speech_timeouts_are_checked():
    _, diags = build('    valid_digits: "123"\n    timeout: 90\n')
    assert sorted((d.code, d.line) for d in diags) == [("conflicting-keys", 11), ("out-of-range", 12)]
    _, diags = check_text(FLOW.replace("    input: speech\n", "").replace("EXTRA", "    hints: [a]\n"), "d.yaml")
    assert [d.message for d in diags] == ["hints help speech input: set input: speech"]
