"""`callflow campaign run`: a campaign offline on the embedded sandbox, on a simulated clock
(a real `callflow` process; no network): the pace, the closed window, the checks, results."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import datetime

from processes import REPO, clean_env

from engine.campaign_pace import parse_rate, parse_window
from engine.campaign_rows import check_rows, csv_records, normalise_number, read_dnc

FLOW = REPO / "flows" / "outbound-sip-headers.yaml"


def contacts(tmp_path, count: int, missing_at: int | None = None):
    lines = ["to,customer"] + [f"+1202555{i:04d},{'' if i == missing_at else f'c{i}'}" for i in range(count)]
    path = tmp_path / "contacts.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def campaign_run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", "campaign", "run", str(FLOW), *map(str, args)],
                          cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60)


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_campaign_plays_offline_at_its_rate(tmp_path):
    out = campaign_run(contacts(tmp_path, 30), "--rate", "5/s")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 30 and all(r["status"] == "completed" and r["run_id"] for r in rows)
    starts = sorted(seconds(r["started_at"]) for r in rows)
    assert max(sum(1 for t in starts if s <= t < s + 0.999) for s in starts) <= 5
    assert 5.6 <= starts[-1] - starts[0] <= 6.0  # 29 gaps of 0.2 s, on the simulated clock
    assert "30 runs (30 completed, 0 failed), 0 skipped" in out.stderr


def test_a_closed_window_starts_nothing_until_it_opens(tmp_path):
    window = tmp_path / "hours.yaml"
    window.write_text("timezone: America/New_York\nhours:\n  mon-fri: '09:00-17:00'\nclosed_on: [2026-01-02]\n")
    # Friday 2 January 2026 is closed, the weekend too: the first start is Monday 09:00 New York (14:00 UTC).
    out = campaign_run(contacts(tmp_path, 3), "--window", window, "--start-at", "2026-01-02T10:00:00-05:00")
    assert out.returncode == 0, out.stderr
    starts = [seconds(r["started_at"]) for r in csv.DictReader(io.StringIO(out.stdout))]
    assert min(starts) >= seconds("2026-01-05T14:00:00Z") and max(starts) < seconds("2026-01-05T14:00:05Z")


def test_a_bad_row_is_refused_with_its_line_and_skipped_when_asked(tmp_path):
    path, dnc = contacts(tmp_path, 8, missing_at=5), tmp_path / "dnc.txt"
    dnc.write_text("+12025550002\n")
    refused = campaign_run(path, "--dnc", dnc)
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"{path}:7: missing customer (required by Start)" in refused.stderr
    ran = campaign_run(path, "--dnc", dnc, "--skip-bad-rows", "--rate", "100/s")
    rows = {r["row"]: r for r in csv.DictReader(io.StringIO(ran.stdout))}
    assert ran.returncode == 0 and rows["7"]["status"] == "skipped" and rows["4"]["error"] == "on the do-not-call list"
    assert sum(r["status"] == "completed" for r in rows.values()) == 6


def test_bad_options_are_one_error_line(tmp_path):
    path = contacts(tmp_path, 2)
    window = tmp_path / "w.yaml"
    window.write_text("timezone: Mars/Olympus\nhours: {mon: '09:00-17:00'}\n")
    for args, message in [(("--rate", "0/s"), "error: rate '0/s'"), (("--window", window), "error: timezone"),
                          (("--max-in-flight", "0"), "Error: Invalid value for '--max-in-flight'")]:
        out = campaign_run(path, *args)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_row_checks_and_normalisation():
    assert normalise_number("+1 (202) 555-0100") == "+12025550100" == normalise_number("001 202 555 0100")
    assert normalise_number("2025550100") is None
    assert read_dnc(["number", "+44 20 7946 0958", "# comment", ""]) == {"+442079460958"}
    assert parse_rate("120/m") == 2.0 and parse_rate(3) == 3.0
    assert parse_window({"hours": {"sat-sun": ["10:00-12:00", "14:00-16:00"]}}).hours[6] == ((600, 720), (840, 960))
    from engine.load.build import load_flow

    text = "to,customer\n2025550100,a\n+12025550101,b\n+1 202 555 0101,c\n\"+12025550102\",\n"
    rows = list(check_rows(load_flow(str(FLOW)), csv_records(io.StringIO(text))))
    assert [r.line for r in rows] == [2, 3, 4, 5]
    assert "no country code: write it as '+2025550100'" in rows[0].problem
    assert rows[1].problem is None and rows[2].problem == "destination +12025550101 already on line 3"
    assert rows[3].problem.startswith("missing customer")
