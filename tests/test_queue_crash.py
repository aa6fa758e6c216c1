"""Recorded is not sent: runs accepted while the provider is slow wait in serve's queue;
`kill -9` or SIGTERM with many queued, then a restart: every run places exactly one call
and completes. A full queue answers 429 with Retry-After; a second serve on the same SQLite
file refuses to start. Real processes: the sandbox behind a slowing proxy, serve, restarts
on the same port (the sandbox's callbacks must find it).

The issue's figures are QUEUE_RUNS=200 QUEUE_DELAY=2; the defaults keep the suite quick."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from processes import REPO, SERVE_READY, CallflowProcess, wait_for
from slow_provider import SlowProvider
from test_server_e2e import (  # noqa: F401
    AUTH_ID,
    AUTH_TOKEN,
    FLOW,
    calls_for,
    sandbox,
    serve_env,
    start_serve,
    workdir,
)

RUNS = int(os.environ.get("QUEUE_RUNS", "60"))
DELAY = float(os.environ.get("QUEUE_DELAY", "1"))
CONNECTIONS = "8"


async def _trigger_all(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(auth=(AUTH_ID, AUTH_TOKEN), timeout=30) as client:
        return await asyncio.gather(*(client.post(f"{url}/v1/account/{AUTH_ID}/phlo/{FLOW}/",
                                                  json={"to": "+12025550100", "customer": f"c{i}"})
                                      for i in range(n)))


def _all_done_once(sandbox_url: str, serve_url: str, run_ids: list[str]) -> None:
    def finished():
        with httpx.Client(auth=(AUTH_ID, AUTH_TOKEN), timeout=10) as client:
            return all(client.get(f"{serve_url}/v1/runs/{r}").json()["status"] in ("completed", "failed")
                       for r in run_ids)

    wait_for(finished, timeout=60 + RUNS * DELAY / int(CONNECTIONS), what="every run to finish", interval=0.5)
    with httpx.Client(auth=(AUTH_ID, AUTH_TOKEN), timeout=10) as client:
        records = [client.get(f"{serve_url}/v1/runs/{r}").json() for r in run_ids]
    bad = [r for r in records if r["status"] != "completed" or r["path"][-1] != "Done"]
    assert not bad, bad[:2]
    calls = httpx.get(f"{sandbox_url}/sandbox/calls").json()["calls"]
    per_run: dict[str, int] = {}
    for c in calls:
        run_id = c["request"]["answer_url"].split("/callbacks/")[1].split("/")[0]
        per_run[run_id] = per_run.get(run_id, 0) + 1
    assert {r: per_run.get(r, 0) for r in run_ids} == {r: 1 for r in run_ids}  # one call each, none twice


@pytest.mark.parametrize("stop", ["kill -9", "SIGTERM"])
def test_runs_queued_at_a_crash_or_a_stop_each_place_one_call_after_the_restart(workdir, sandbox, stop):  # noqa: F811
    slow = SlowProvider(sandbox, DELAY)
    name = stop.replace(" ", "").replace("-", "")
    env = serve_env(slow.url, CALLFLOW_PROVIDER_CONNECTIONS=CONNECTIONS)
    db = f"sqlite:///{workdir}/queue-{name}.db"
    p, url = start_serve(workdir, env, db, name=f"queue-{name}-1")
    try:
        answers = asyncio.run(_trigger_all(url, RUNS))
        assert [a.status_code for a in answers] == [201] * RUNS
        run_ids = [a.json()["api_id"] for a in answers]
        wait_for(lambda: slow.received >= int(CONNECTIONS), what="the first requests to reach the provider")
        if stop == "kill -9":
            p.kill9()
        else:
            p.proc.terminate()
            assert p.proc.wait(30) in (0, -15)  # uvicorn re-raises the signal once it has shut down
            log = (workdir / f"queue-{name}-1.log").read_text()
            assert "queued request(s) handed back unsent" in log and "Traceback" not in log
        queued_at_stop = RUNS - slow.received
        assert queued_at_stop > RUNS // 2  # most were still queued: the test bites
    finally:
        p.stop()
    p2, url2 = start_serve(workdir, env, db, port=int(url.rsplit(":", 1)[1]), name=f"queue-{name}-2")
    try:
        _all_done_once(sandbox, url2, run_ids)
        assert "Traceback" not in (workdir / f"queue-{name}-2.log").read_text()
    finally:
        p2.stop()
        slow.close()


def test_a_full_queue_answers_429_with_retry_after_and_loses_nothing(workdir, sandbox):  # noqa: F811
    slow = SlowProvider(sandbox, DELAY)
    env = serve_env(slow.url, CALLFLOW_PROVIDER_CONNECTIONS="2", CALLFLOW_MAX_QUEUED="5")
    p, url = start_serve(workdir, env, f"sqlite:///{workdir}/full.db", name="full")
    try:
        answers = asyncio.run(_trigger_all(url, 20))
        refused = [a for a in answers if a.status_code == 429]
        accepted = [a.json()["api_id"] for a in answers if a.status_code == 201]
        assert refused and len(accepted) >= 5 and len(refused) + len(accepted) == 20
        assert all(a.headers["retry-after"] == "1" and "retry" in a.json()["error"] for a in refused)
        _all_done_once(sandbox, url, accepted)
        with httpx.Client(auth=(AUTH_ID, AUTH_TOKEN)) as client:  # a refused trigger left no run
            listed = client.get(f"{url}/v1/runs", params={"limit": 100}).json()
        assert sorted(r["run_id"] for r in listed["runs"]) == sorted(accepted)
        metrics = httpx.get(f"{url}/metrics", auth=(AUTH_ID, AUTH_TOKEN)).text
        assert f'callflow_triggers_refused_total{{flow="{FLOW}"}} {len(refused)}.0' in metrics
    finally:
        p.stop()
        slow.close()


def test_a_second_serve_on_the_same_sqlite_file_refuses_to_start(workdir, sandbox):  # noqa: F811
    env = serve_env(sandbox)
    db = f"sqlite:///{workdir}/one.db"
    p, _ = start_serve(workdir, env, db, name="first")
    try:
        second = subprocess.run([sys.executable, "-m", "engine.cli", "serve", str(workdir / "flows"), "--port", "0",
                                 "--db", db], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert second.stderr.startswith("error: ") and "another callflow process is using this database" in \
            second.stderr and "Traceback" not in second.stderr
        assert SERVE_READY not in second.stdout
    finally:
        p.stop()
    p3 = CallflowProcess.start(["serve", str(workdir / "flows"), "--port", "0", "--db", db], env, SERVE_READY)
    p3.stop()  # the first one's lock went with it
