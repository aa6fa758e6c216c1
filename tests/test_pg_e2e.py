"""Two `callflow serve` processes on one PostgreSQL database behind a round-robin proxy, the
sandbox as provider, triggered with the official Plivo SDK: every run completes, with exactly
one call each, whichever process took the trigger and whichever got each callback."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import plivo
from conftest import FLOWS
from processes import (
    SANDBOX_READY,
    SERVE_READY,
    CallflowProcess,
    clean_env,
    free_port,
    wait_for,
)
from proxy import RoundRobinProxy
from test_server_e2e import (  # FLOW: the seed flow
    AUTH_ID,
    AUTH_TOKEN,
    FLOW,
    PLIVO_ID,
    PLIVO_TOKEN,
)

RUNS = 100


def _trigger(base: str, i: int) -> str:
    client = plivo.phlo.RestClient(AUTH_ID, AUTH_TOKEN)  # a client (a connection) per run: round robin
    client.phlo_base_uri = f"{base}/v1"
    return client.phlo.get(FLOW).run(to="+12025550100", customer=f"c{i}").api_id


def test_two_processes_on_one_database_behind_a_proxy_complete_every_run_once(pg_url, tmp_path):
    (tmp_path / "flows").mkdir()
    shutil.copy(FLOWS / f"{FLOW}.yaml", tmp_path / "flows")
    sandbox = CallflowProcess.start(["sandbox", "--port", "0"], clean_env(PLIVO_AUTH_ID=PLIVO_ID,
                                    PLIVO_AUTH_TOKEN=PLIVO_TOKEN), SANDBOX_READY, tmp_path / "sandbox.log")
    ports = [free_port(), free_port()]
    serves: list[CallflowProcess] = []
    try:
        with RoundRobinProxy([f"http://127.0.0.1:{p}" for p in ports]) as proxy:
            env = clean_env(CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN, PLIVO_AUTH_ID=PLIVO_ID,
                            PLIVO_AUTH_TOKEN=PLIVO_TOKEN, PLIVO_API_URL=sandbox.url, CALLFLOW_PUBLIC_URL=proxy.url)
            for n, port in enumerate(ports):  # both open (and migrate) the same database
                serves.append(CallflowProcess.start(["serve", str(tmp_path / "flows"), "--port", str(port),
                                                     "--db", pg_url], env, SERVE_READY, tmp_path / f"serve{n}.log"))
            with ThreadPoolExecutor(8) as pool:
                run_ids = list(pool.map(lambda i: _trigger(proxy.url, i), range(RUNS)))
            assert len(set(run_ids)) == RUNS

            def all_finished():
                page = httpx.get(f"{proxy.url}/v1/runs", params={"flow_id": FLOW, "limit": 500},
                                 auth=(AUTH_ID, AUTH_TOKEN), timeout=10).json()["runs"]
                statuses = {r["run_id"]: r["status"] for r in page}
                done = [statuses.get(r) for r in run_ids if statuses.get(r) in ("completed", "failed")]
                return statuses if len(done) == RUNS else None

            statuses = wait_for(all_finished, 60, f"{RUNS} runs to finish")
            assert {statuses[r] for r in run_ids} == {"completed"}
            assert min(proxy.connections.values()) >= RUNS // 4, proxy.connections  # both processes served
            calls = httpx.get(f"{sandbox.url}/sandbox/calls", timeout=10).json()["calls"]
            per_run = {r: 0 for r in run_ids}
            for call in calls:
                run_id = call["request"]["answer_url"].split("/callbacks/", 1)[1].split("/", 1)[0]
                per_run[run_id] += 1
                assert call["request"]["answer_url"].startswith(proxy.url)
            assert set(per_run.values()) == {1}, {r: n for r, n in per_run.items() if n != 1}
    finally:
        for p in serves:
            p.stop()
        sandbox.stop()
