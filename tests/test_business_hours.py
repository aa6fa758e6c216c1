"""business_hours: open and closed by an IANA zone's local time; `now:` and `--now` fix the
clock; mistakes in zones, hours and dates are diagnostics at their line:col."""

from __future__ import annotations

import json

from click.testing import CliRunner

from engine.cli import main
from engine.load.build import check_text
from engine.local.in_call import parse_now
from engine.local.run import LocalRun
from engine.local.scenario import Scenario
from engine.local.testfile import parse_test_file

FLOW = """\
spec: callflow/v1
id: hours
nodes:
  Start:
    type: trigger
    next: {{http: Hours}}
  Hours:
    type: business_hours
    timezone: {zone}
    hours: {hours}
    closed_on: {closed}
    next: {{open: Done, closed: Done}}
  Done:
    type: hangup
"""


def flow_text(zone="America/New_York", hours='{mon-fri: "09:00-17:00"}', closed='["2026-12-25"]') -> str:
    return FLOW.format(zone=zone, hours=hours, closed=closed)


def outcome_at(now: str, **kw) -> tuple[str, dict]:
    flow, diags = check_text(flow_text(**kw), "hours.yaml")
    assert flow is not None, diags
    state = LocalRun(flow, Scenario(now=parse_now(now))).run({})
    step = next(s for s in state.steps if s.node == "Hours")
    return step.outcome, state.variables["Hours"]


def test_a_weekday_at_four_in_new_york_is_open_and_christmas_is_closed():
    assert outcome_at("2026-12-24T16:00:00-05:00") == (
        "open", {"local_time": "2026-12-24T16:00:00-05:00", "weekday": "thu"})
    assert outcome_at("2026-12-25T16:00:00-05:00")[0] == "closed"
    assert outcome_at("2026-12-24T21:00:00Z")[0] == "open"  # the same instant, written in UTC
    assert outcome_at("2026-12-24T08:59:00-05:00")[0] == "closed"


def test_summer_time_is_the_zone_s_own():
    # 13:30 UTC is 09:30 in New York in July (EDT, -04:00) but 08:30 in January (EST).
    assert outcome_at("2026-07-01T13:30:00Z")[0] == "open"
    assert outcome_at("2026-01-07T13:30:00Z")[0] == "closed"


def test_day_ranges_wrap_round_the_week_and_lists_of_ranges():
    hours = '{fri-mon: ["08:00-12:00", "14:00-24:00"]}'
    assert outcome_at("2026-12-27T23:59:00-05:00", hours=hours)[0] == "open"  # a Sunday
    assert outcome_at("2026-12-27T13:00:00-05:00", hours=hours)[0] == "closed"
    assert outcome_at("2026-12-23T10:00:00-05:00", hours=hours)[0] == "closed"  # a Wednesday


def diagnostics(**kw) -> list[str]:
    _, diags = check_text(flow_text(**kw), "hours.yaml")
    return [f"{d.line}:{d.col} {d.code} {d.message}" for d in diags]


def test_an_unknown_zone_is_a_diagnostic_at_its_line_and_column():
    assert diagnostics(zone="America/Gotham") == [
        "9:15 unknown-timezone 'America/Gotham' is not an IANA time zone (e.g. America/New_York, Europe/Paris, UTC)"]


def test_bad_days_ranges_and_dates_and_overlaps_are_diagnostics():
    found = diagnostics(hours='{weekdays: "09:00-17:00", sat: "9-5", sun: "18:00-08:00", mon-fri: "16:00-18:00"}',
                        closed='["2026-12-25", "25/12/2026"]')
    assert [" ".join(d.split(" ")[:2]) for d in found] == [
        "10:13 invalid-hours", "10:43 invalid-hours", "10:55 invalid-hours", "11:31 invalid-hours"], found
    assert "'18:00-08:00' ends before it starts" in found[2]
    found = diagnostics(hours='{mon-fri: "09:00-17:00", fri: "16:30-18:00"}')
    assert found == ["10:42 overlapping-hours '16:30-18:00' overlaps '09:00-17:00' on fri"]


def test_now_in_a_test_case_must_have_an_offset(tmp_path):
    (tmp_path / "hours.yaml").write_text(flow_text())
    test = tmp_path / "hours.test.yaml"
    test.write_text("cases:\n  a:\n    now: '2026-12-24T16:00:00'\n  b:\n    now: 'tomorrow'\n")
    found = [f"{d.line}:{d.col} {d.message}" for d in parse_test_file(test).diagnostics]
    assert found == ["3:10 2026-12-24T16:00:00 has no UTC offset: add one (-05:00, +01:00, Z)",
                     "5:10 'tomorrow' is not a time: write ISO 8601 with its offset, e.g. 2026-12-24T16:00:00-05:00"]


def test_callflow_run_now_fixes_the_clock(tmp_path):
    path = tmp_path / "hours.yaml"
    path.write_text(flow_text())
    runner = CliRunner()
    done = runner.invoke(main, ["run", str(path), "--json", "--now", "2026-12-25T10:00:00-05:00"])
    assert done.exit_code == 0, done.output
    record = json.loads(done.output)
    assert record["steps"][1]["outcome"] == "closed" and record["variables"]["Hours"]["weekday"] == "fri"
    bad = runner.invoke(main, ["run", str(path), "--now", "noon"])
    assert bad.exit_code == 2 and "error: --now: 'noon' is not a time" in bad.output
