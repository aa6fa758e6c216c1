"""Reads guarded by the run's entry outcome: a flow with both entry points passes --strict."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.load.build import check_text

FLOW = """\
spec: callflow/v1
id: both
nodes:
  Start:
    type: trigger
    payload: {from: "+12025551234"}
    required: [to]
    next: {http: Call, call: Greet}
  Call:
    type: call_out
    from: "{{ Start.http.params.from }}"
    to: "{{ Start.http.params.to }}"
    next: {answered: Greet}
  Greet:
    type: speak
    text: "{text}"
"""


def codes_of(text: str) -> list[str]:
    _, diagnostics = check_text(FLOW.replace("{text}", text).encode(), "both.yaml")
    return [d.code for d in diagnostics]


@pytest.mark.parametrize("text", [
    "Hi {% if Start.call %}{{ Start.call.from }}{% else %}{{ Start.http.params.to }}{% endif %}",
    "Hi {% if Start.http %}{{ Start.http.params.to }}{% else %}{{ Start.call.from }}{% endif %}",
    "Hi {% unless Start.call %}{{ Start.http.params.to }}{% endunless %}",
    "Hi {% unless Start.http %}{{ Start.call.from }}{% else %}{{ Start.http.params.to }}{% endunless %}",
    "Hi {% if Start.call %}x{% elsif Call.status %}{{ Start.http.params.to }}{% endif %}",
])
def test_reads_guarded_by_the_entry_outcome_are_not_maybe_unset(text):
    assert codes_of(text) == []


@pytest.mark.parametrize("text", [
    "Hi {{ Start.http.params.to }}",
    "Hi {% if Start.call.from %}x{% else %}{{ Start.http.params.to }}{% endif %}",  # not the outcome itself
    "Hi {% if Call.status %}x{% else %}{{ Start.http.params.to }}{% endif %}",
])
def test_unguarded_entry_reads_still_warn(text):
    assert "maybe-unset" in codes_of(text)


def test_a_flow_with_both_entry_points_passes_strict(tmp_path):
    flow = tmp_path / "both.yaml"
    flow.write_text(FLOW.replace("{text}", "Hello {% if Start.call %}{{ Start.call.from }}{% else %}"
                                     "{{ Start.http.params.to }}{% endif %}"))
    result = CliRunner().invoke(main, ["validate", "--strict", str(flow)])
    assert result.exit_code == 0, result.output
