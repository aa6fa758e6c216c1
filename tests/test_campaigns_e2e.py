"""Campaigns end to end: real `callflow serve --sandbox` processes, the real `callflow campaign`
CLI, a real SQLite file and a real kill -9.

The issue's figures (200 rows at 5/s, paused at 50) take ~45 s; the suite runs a smaller
campaign by default. CALLFLOW_TEST_CAMPAIGN_ROWS / _RATE / _PAUSE_AT set the issue's figures:

    CALLFLOW_TEST_CAMPAIGN_ROWS=200 CALLFLOW_TEST_CAMPAIGN_RATE=5 CALLFLOW_TEST_CAMPAIGN_PAUSE_AT=50 \
        .venv/bin/python -m pytest tests/test_campaigns_e2e.py
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from datetime import datetime

import httpx
import pytest
from hostile.harness import FLOW, FLOWS, Serve
from processes import REPO, clean_env, wait_for

ROWS = int(os.environ.get("CALLFLOW_TEST_CAMPAIGN_ROWS", "40"))
RATE = float(os.environ.get("CALLFLOW_TEST_CAMPAIGN_RATE", "10"))
PAUSE_AT = int(os.environ.get("CALLFLOW_TEST_CAMPAIGN_PAUSE_AT", "15"))
# Never faster than the rate is the guarantee; not slower is the figure, held to +-10%
# when its size is asked for, and with a little room in the suite, where 2 cores run it beside
# other tests and a starved process can lag a few hundred ms behind its schedule.
LAG = 0.0 if "CALLFLOW_TEST_CAMPAIGN_ROWS" in os.environ else 1.5
MS = 0.0015  # run times are stored to the millisecond: a window of 1 s is [t, t + 1 - MS)


def contacts(count: int, start: int = 0, missing_at: int | None = None) -> str:
    lines = ["to,customer"]
    for i in range(start, start + count):
        lines.append(f"+1 202 555 {i:04d},{'' if i - start == missing_at else f'c{i}'}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("campaigns")
    (d / "flows").mkdir()
    shutil.copy(FLOWS / f"{FLOW}.yaml", d / "flows")
    return d


@pytest.fixture(scope="module")
def serve(workdir):
    s = Serve.start(workdir, db=f"sqlite:///{workdir}/shared.db")
    yield s
    s.stop()


def cli(s: Serve, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    env = clean_env(CALLFLOW_AUTH_ID=s.auth[0], CALLFLOW_AUTH_TOKEN=s.auth[1], CALLFLOW_SERVER=s.url)
    return subprocess.run([sys.executable, "-m", "engine.cli", "campaign", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def started_id(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[1]  # "campaign <id> running: ..."


def record(s: Serve, campaign_id: str) -> dict:
    return s.get(f"/v1/campaigns/{campaign_id}").json()


def done(s: Serve, campaign_id: str, timeout: float) -> dict:
    return wait_for(lambda: (r := record(s, campaign_id))["status"] == "done" and r, timeout, "the campaign",
                    interval=0.2)


def results(s: Serve, campaign_id: str) -> list[dict]:
    out = cli(s, "results", campaign_id)
    assert out.returncode == 0, out.stderr
    return list(csv.DictReader(io.StringIO(out.stdout)))


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_starts(s: Serve, run_ids: list[str]) -> list[float]:
    """When each run was created (its record's created_at), sorted."""
    with httpx.Client(base_url=s.url, auth=s.auth, timeout=10) as client:
        return sorted(seconds(client.get(f"/v1/runs/{r}").json()["created_at"]) for r in run_ids)


def max_in_any_second(starts: list[float]) -> int:
    return max(sum(1 for t in starts if s <= t < s + 1.0 - MS) for s in starts)


def test_a_campaign_is_paced_and_lists_every_run(serve, workdir):
    path = workdir / "paced.csv"
    path.write_text(contacts(ROWS))
    campaign_id = started_id(cli(serve, "start", FLOW, str(path), "--rate", f"{RATE:g}/s"))
    rec = done(serve, campaign_id, timeout=ROWS / RATE * 1.5 + 20)
    rows = results(serve, campaign_id)
    assert len(rows) == ROWS and all(r["status"] == "completed" and r["last_node"] == "Done" for r in rows), rows
    assert [r["destination"] for r in rows][:2] == ["+12025550000", "+12025550001"]  # E.164-normalised
    starts = run_starts(serve, [r["run_id"] for r in rows])
    assert max_in_any_second(starts) <= RATE
    expected = (ROWS - 1) / RATE
    assert expected * 0.9 <= starts[-1] - starts[0] <= expected * 1.1 + LAG, (starts[-1] - starts[0], expected)
    p = rec["progress"]
    assert (p["started"], p["completed"], p["failed"], p["in_flight"], p["remaining"]) == (ROWS, ROWS, 0, 0, 0)
    assert (ROWS - 1) / (expected * 1.1 + LAG) <= p["achieved_rate"] <= RATE * 1.05
    status = cli(serve, "status", campaign_id, "--watch")
    assert status.returncode == 0 and f"{ROWS}/{ROWS} started" in status.stdout, status.stdout + status.stderr


def test_a_bad_row_refuses_the_campaign_naming_its_line_and_skip_runs_the_rest(serve, workdir):
    path, dnc = workdir / "bad.csv", workdir / "dnc.txt"
    path.write_text(contacts(8, start=100, missing_at=5))  # data row 6 = CSV line 7
    dnc.write_text("# numbers that asked not to be called\n+1 (202) 555-0102\n")
    before = serve.get("/v1/campaigns").json()["campaigns"]
    refused = cli(serve, "start", FLOW, str(path), "--dnc", str(dnc), "--rate", "50/s")
    assert refused.returncode == 2
    assert f"{path}:7: missing customer" in refused.stderr and "error: 1 bad row: line 7" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert serve.get("/v1/campaigns").json()["campaigns"] == before  # nothing stored, nothing started
    campaign_id = started_id(cli(serve, "start", FLOW, str(path), "--dnc", str(dnc), "--rate", "50/s",
                                 "--skip-bad-rows"))
    rec = done(serve, campaign_id, timeout=20)
    rows = {int(r["row"]): r for r in results(serve, campaign_id)}
    assert rows[7]["status"] == "skipped" and "missing customer" in rows[7]["error"] and not rows[7]["run_id"]
    assert rows[4]["status"] == "skipped" and rows[4]["error"] == "on the do-not-call list"
    assert rows[4]["destination"] == "+12025550102"
    assert sorted(n for n, r in rows.items() if r["status"] == "completed") == [2, 3, 5, 6, 8, 9]
    assert rec["progress"]["skipped"] == 2 and rec["progress"]["completed"] == 6


def test_bad_input_is_one_error_line(serve, workdir):
    before = serve.get("/v1/campaigns").json()["campaigns"]
    path = workdir / "ok.csv"
    path.write_text(contacts(2, start=200))
    for args, message in [(("start", "nope", str(path)), "error: no flow with id 'nope'"),
                          (("start", FLOW, str(path), "--rate", "fast"), "error: rate 'fast'"),
                          (("start", FLOW, str(workdir / "none.csv")), "error: cannot read CSV"),
                          (("status", "no-such-id"), "error: no campaign with this id"),
                          (("pause", "no-such-id"), "error: no campaign with this id")]:
        out = cli(serve, *args)
        assert out.returncode == 2 and out.stderr.startswith(message) and len(out.stderr.splitlines()) == 1, \
            (args, out.stderr)
    r = httpx.post(f"{serve.url}/v1/campaigns", json={"flow_id": FLOW, "csv": "a,b\n1,2\n"}, auth=serve.auth)
    assert r.status_code == 400 and "destination column" in r.json()["error"]
    assert httpx.get(f"{serve.url}/v1/campaigns").status_code == 401
    # A form on another site cannot send JSON without asking first: text/plain is refused.
    forged = httpx.post(f"{serve.url}/v1/campaigns", content='{"flow_id": "%s", "csv": "to\\n+12025550100\\n"}' % FLOW,
                        headers={"Content-Type": "text/plain"}, auth=serve.auth)
    assert forged.status_code == 415 and serve.get("/v1/campaigns").json()["campaigns"] == before
    assert httpx.post(f"{serve.url}/v1/campaigns/x/pause", auth=serve.auth).status_code == 415


def test_the_console_has_a_campaigns_page(serve):
    page = serve.get("/console/campaigns.html")
    assert page.status_code == 200 and "campaigns.js" in page.text
    assert serve.get("/console/campaigns.js").status_code == 200 and 'href="/console/campaigns.html"' in serve.get("/").text


def test_paused_killed_restarted_resumed_every_row_runs_once(workdir):
    rows_count, pause_at = max(ROWS, PAUSE_AT * 2), PAUSE_AT
    db = f"sqlite:///{workdir}/restart.db"
    path = workdir / "restart.csv"
    path.write_text(contacts(rows_count, start=1000))
    first = Serve.start(workdir, db=db)
    try:
        campaign_id = started_id(cli(first, "start", FLOW, str(path), "--rate", f"{RATE:g}/s"))
        wait_for(lambda: record(first, campaign_id)["progress"]["started"] >= pause_at, 60, "the first rows",
                 interval=0.02)
        assert cli(first, "pause", campaign_id).returncode == 0
        paused = wait_for(lambda: (r := record(first, campaign_id))["progress"]["in_flight"] == 0 and r, 30,
                          "the started runs to finish")
        assert paused["status"] == "paused" and pause_at <= paused["progress"]["started"] < rows_count
        first.process.kill9()
    finally:
        first.stop()
    second = Serve.start(workdir, db=db)
    try:
        assert record(second, campaign_id)["progress"]["started"] == paused["progress"]["started"]
        assert cli(second, "resume", campaign_id).returncode == 0
        done(second, campaign_id, timeout=rows_count / RATE * 1.5 + 20)
        rows = results(second, campaign_id)
        run_ids = [r["run_id"] for r in rows]
        assert len(rows) == rows_count and len(set(run_ids)) == rows_count and all(run_ids)
        runs = second.get("/v1/runs", params={"flow_id": FLOW, "limit": 500}).json()["runs"]
        assert sorted(r["run_id"] for r in runs) == sorted(run_ids)  # every run is a row's: none twice
    finally:
        second.stop()
