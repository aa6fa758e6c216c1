"""`callflow serve` end to end: real `callflow sandbox` and `callflow serve` processes on
127.0.0.1, free ports, the official PHLO SDK and plain httpx as clients.

Nothing sleeps for a fixed time: every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import plivo
import pytest
from conftest import FLOWS
from plivo import exceptions as plivo_exceptions
from processes import (
    DEADLINE,
    REPO,
    SANDBOX_READY,
    SERVE_READY,
    CallflowProcess,
    clean_env,
    wait_for,
)

from engine.service.signature import sign_v3_headers

AUTH_ID = "MAETWOETESTACCOUNTXX"  # MA + 18 letters, as the SDK requires
AUTH_TOKEN = "e2e-trigger-token"
PLIVO_ID = "MAPLIVOSANDBOXACCTX1"
PLIVO_TOKEN = "e2e-provider-token"
FLOW = "outbound-sip-headers"
ANSWERS = "+12025550100"
SLOW = "+12025550177"  # answers after 3 s: the window for kill -9
LATE = "+12025550188"  # answers after 1 s: the window for forged callbacks
SCENARIO = f"""\
default: answered
destinations:
  "{SLOW}": {{result: answered, answer_after: 3}}
  "{LATE}": {{result: answered, answer_after: 1}}
"""

assert len(AUTH_ID) == 20 and AUTH_ID.startswith("MA")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("serve")
    (d / "flows").mkdir()
    shutil.copy(FLOWS / f"{FLOW}.yaml", d / "flows")
    (d / "scenario.yaml").write_text(SCENARIO)
    return d


@pytest.fixture(scope="module")
def sandbox(workdir):
    p = CallflowProcess.start(["sandbox", "--port", "0", "--scenario", str(workdir / "scenario.yaml")],
                              clean_env(PLIVO_AUTH_ID=PLIVO_ID, PLIVO_AUTH_TOKEN=PLIVO_TOKEN), SANDBOX_READY,
                              workdir / "sandbox.log")
    yield p.url
    p.stop()


def serve_env(sandbox_url: str, **extra) -> dict:
    return clean_env(CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN, PLIVO_AUTH_ID=PLIVO_ID,
                     PLIVO_AUTH_TOKEN=PLIVO_TOKEN, PLIVO_API_URL=sandbox_url, **extra)


def start_serve(workdir: Path, env: dict, db: str, port: int = 0,
                name: str = "serve") -> tuple[CallflowProcess, str]:
    p = CallflowProcess.start(["serve", str(workdir / "flows"), "--port", str(port), "--db", db], env, SERVE_READY,
                              workdir / f"{name}.log")
    return p, p.url


@pytest.fixture(scope="module")
def serve(workdir, sandbox):
    p, url = start_serve(workdir, serve_env(sandbox), f"sqlite:///{workdir}/main.db")
    yield url
    p.stop()


AUTH = (AUTH_ID, AUTH_TOKEN)


def trigger(serve_url: str, to: str = ANSWERS, customer: str = "johndoe") -> str:
    r = httpx.post(f"{serve_url}/v1/account/{AUTH_ID}/phlo/{FLOW}/", json={"to": to, "customer": customer},
                   auth=AUTH)
    assert r.status_code == 201, r.text
    return r.json()["api_id"]


def record(serve_url: str, run_id: str) -> dict:
    r = httpx.get(f"{serve_url}/v1/runs/{run_id}", auth=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def finished(serve_url: str, run_id: str, timeout: float = DEADLINE) -> dict:
    return wait_for(lambda: (lambda rec: rec if rec["status"] in ("completed", "failed") else None)(
        record(serve_url, run_id)), timeout, f"run {run_id} to finish")


def calls_for(sandbox_url: str, run_id: str) -> list[dict]:
    calls = httpx.get(f"{sandbox_url}/sandbox/calls").json()["calls"]
    return [c for c in calls if f"/callbacks/{run_id}/" in c["request"].get("answer_url", "")]


def hangup_logged(sandbox_url: str, run_id: str):
    calls = calls_for(sandbox_url, run_id)
    return calls and any(cb["kind"] == "hangup" and cb.get("status") == 200 for cb in calls[0]["callbacks"])


def check_whole_path(sandbox_url: str, serve_url: str, run_id: str, customer: str = "johndoe") -> dict:
    rec = finished(serve_url, run_id)
    assert rec["status"] == "completed", rec
    assert rec["path"] == ["Start", "Call", "Greet", "Done"]
    assert [s["outcome"] for s in rec["steps"]][:3] == ["http", "answered", "done"]
    [call] = calls_for(sandbox_url, run_id)
    assert call["request"]["sip_headers"] == f"customer={customer}"
    answer = next(cb for cb in call["callbacks"] if cb["kind"] == "answer")
    assert answer["params"]["X-PH-customer"] == customer and answer["status"] == 200
    assert call["documents"] == rec["documents"]
    assert call["error"] is None
    return rec


# -- the tests ---------------------------------------------------------------------------------------------
def test_a_run_through_the_official_sdk(sandbox, serve):
    client = plivo.phlo.RestClient(AUTH_ID, AUTH_TOKEN)
    client.phlo_base_uri = f"{serve}/v1"
    response = client.phlo.get(FLOW).run(to=ANSWERS, customer="johndoe")
    run_id = response.api_id
    check_whole_path(sandbox, serve, run_id)
    # errors map to the SDK's exceptions as PHLO's do
    with pytest.raises(plivo_exceptions.ResourceNotFoundError):
        client.phlo.get("no-such-flow")
    wrong = plivo.phlo.RestClient(AUTH_ID, "wrong-token")
    wrong.phlo_base_uri = f"{serve}/v1"
    with pytest.raises(plivo_exceptions.AuthenticationError):
        wrong.phlo.get(FLOW)
    # a missing or empty required key: the SDK's ValidationError, carrying our text (issue 14.2)
    with pytest.raises(plivo_exceptions.ValidationError, match="customer"):
        client.phlo.get(FLOW).run(to=ANSWERS, customer="")


def test_a_run_through_plain_httpx_and_the_runs_api(sandbox, serve):
    run_id = trigger(serve, customer="janedoe")
    check_whole_path(sandbox, serve, run_id, customer="janedoe")
    page = httpx.get(f"{serve}/v1/runs", params={"flow_id": FLOW, "limit": 1}, auth=AUTH).json()
    assert page["runs"][0]["run_id"] == run_id
    flows = httpx.get(f"{serve}/v1/flows", auth=AUTH).json()["flows"]
    assert flows[0]["id"] == FLOW and flows[0]["valid"] and flows[0]["nodes"] == 4


def test_trigger_errors_create_no_run(serve):
    before = httpx.get(f"{serve}/v1/runs", params={"limit": 500}, auth=AUTH).json()["runs"]
    url = f"{serve}/v1/account/{AUTH_ID}/phlo/{FLOW}/"
    assert httpx.post(url, json={"to": ANSWERS, "customer": "c"}, auth=(AUTH_ID, "wrong")).status_code == 401
    assert httpx.post(f"{serve}/v1/account/{AUTH_ID}/phlo/nope/", json={}, auth=AUTH).status_code == 404
    assert httpx.post(url, json={"to": ANSWERS}, auth=AUTH).status_code == 400
    assert httpx.post(url, content=b"[]", auth=AUTH).status_code == 400
    assert httpx.post(url, content=b"x" * 70_000, auth=AUTH).status_code == 413
    after = httpx.get(f"{serve}/v1/runs", params={"limit": 500}, auth=AUTH).json()["runs"]
    assert after == before


def test_forged_or_missing_signatures_are_refused_and_change_nothing(sandbox, serve):
    run_id = trigger(serve, to=LATE)
    waiting = wait_for(lambda: (lambda r: r if r["path"] == ["Start", "Call"] and r["requests"] else None)(
        record(serve, run_id)), what="the Call request")
    url = f"{serve}/callbacks/{run_id}/1/answer"
    params = {"CallUUID": "forged", "From": "+12025551234", "To": LATE, "CallStatus": "in-progress",
              "Direction": "outbound", "X-PH-customer": "mallory"}
    assert httpx.post(url, data=params).status_code == 403
    forged = sign_v3_headers("POST", url, params, "not-the-token")
    assert httpx.post(url, data=params, headers=forged).status_code == 403
    assert httpx.post(f"{serve}/callbacks/{run_id}/1/hangup", data=params, headers=forged).status_code == 403
    now = record(serve, run_id)
    assert now["path"] == waiting["path"] and now["steps"] == waiting["steps"]
    assert now["documents"] == [] and "call_uuid" not in (now["variables"].get("Call") or {}).get("params", {})
    rec = check_whole_path(sandbox, serve, run_id)
    assert rec["variables"]["Call"]["call_uuid"] != "forged"


def test_a_repeated_hangup_callback_is_processed_once(sandbox, serve):
    run_id = trigger(serve)
    rec = check_whole_path(sandbox, serve, run_id)
    wait_for(lambda: hangup_logged(sandbox, run_id), what="the hangup callback")
    [call] = calls_for(sandbox, run_id)
    hangup = next(cb for cb in call["callbacks"] if cb["kind"] == "hangup")
    for _ in range(2):
        params = dict(hangup["params"], Duration="77")
        headers = sign_v3_headers("POST", hangup["url"], params, PLIVO_TOKEN)
        r = httpx.post(hangup["url"], data=params, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    again = record(serve, run_id)
    assert again == record(serve, run_id)
    assert again["variables"]["Call"]["duration"] == rec["variables"]["Call"]["duration"] != 77
    assert again["steps"] == rec["steps"] and again["updated_at"] == rec["updated_at"]


def test_runs_survive_kill_9_and_no_call_is_placed_twice(workdir, sandbox):
    db = f"sqlite:///{workdir}/crash.db"
    env = serve_env(sandbox, CALLFLOW_IN_DOUBT_SECONDS="30")
    p, url = start_serve(workdir, env, db, name="crash1")
    port = int(url.rsplit(":", 1)[1])
    try:
        run_id = trigger(url, to=SLOW)
        wait_for(lambda: calls_for(sandbox, run_id), what="the sandbox to fire the call", interval=0.01)
        p.kill9()  # "call fired"; the answer callback comes 3 s later
    finally:
        p.stop()
    p2, url2 = start_serve(workdir, env, db, port=port, name="crash2")
    try:
        assert url2 == url
        rec = check_whole_path(sandbox, url2, run_id)
        assert len(rec["requests"]) == 1
        assert len(calls_for(sandbox, run_id)) == 1  # exactly one Call request reached the provider
    finally:
        p2.stop()


class BlackHole:
    """A provider that reads requests and never answers (a crash window held open)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received = b""
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.received += data

    def requests(self) -> int:
        return self.received.count(b"POST /v1/Account/")

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_request_in_flight_at_a_crash_is_in_doubt_never_resent(workdir):
    """kill -9 while the Call request waits for its answer; after a restart the run is in
    doubt: no callback proves the call, so after CALLFLOW_IN_DOUBT_SECONDS the Call node
    takes `failed` and the run goes on; the request reached the provider exactly once."""
    hole = BlackHole()
    db = f"sqlite:///{workdir}/doubt.db"
    env = serve_env(hole.url, CALLFLOW_IN_DOUBT_SECONDS="1")
    try:
        p, url = start_serve(workdir, env, db, name="doubt1")
        port = int(url.rsplit(":", 1)[1])
        try:
            run_id = trigger(url)
            wait_for(lambda: hole.requests() == 1, what="the Call request to reach the provider", interval=0.01)
            p.kill9()
        finally:
            p.stop()
        p2, url2 = start_serve(workdir, env, db, port=port, name="doubt2")
        try:
            rec = finished(url2, run_id)
            assert rec["status"] == "completed" and rec["path"] == ["Start", "Call", "Done"]
            call_step = rec["steps"][1]
            assert call_step["outcome"] == "failed" and "doubt" in call_step["error"]
            assert len(rec["requests"]) == 1
        finally:
            p2.stop()
        assert hole.requests() == 1  # never resent
    finally:
        hole.close()


def test_200_concurrent_triggers_all_complete(sandbox, serve):
    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(auth=AUTH, limits=limits, timeout=30) as client:
            async def one(i):
                r = await client.post(f"{serve}/v1/account/{AUTH_ID}/phlo/{FLOW}/",
                                      json={"to": ANSWERS, "customer": f"c{i}"})
                assert r.status_code == 201, r.text
                return r.json()["api_id"]

            return await asyncio.gather(*(one(i) for i in range(200)))

    ids = asyncio.run(main())
    assert len(set(ids)) == 200

    def all_done():
        done = set()
        cursor = None
        while True:
            params = {"flow_id": FLOW, "status": "completed", "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = httpx.get(f"{serve}/v1/runs", params=params, auth=AUTH).json()
            done.update(r["run_id"] for r in page["runs"])
            cursor = page["next_cursor"]
            if not cursor:
                return set(ids) <= done

    wait_for(all_done, timeout=60, what="200 runs to complete", interval=0.2)
    calls = httpx.get(f"{sandbox}/sandbox/calls").json()["calls"]
    per_run: dict[str, int] = {}
    for c in calls:
        rid = c["request"]["answer_url"].split("/callbacks/")[1].split("/")[0]
        per_run[rid] = per_run.get(rid, 0) + 1
    assert all(per_run.get(i) == 1 for i in ids)  # one Call request per run, none lost
    failed = httpx.get(f"{serve}/v1/runs", params={"status": "failed", "limit": 500}, auth=AUTH).json()["runs"]
    assert failed == []


def test_serve_refuses_an_invalid_flow(tmp_path):
    (tmp_path / "ok.yaml").write_text((FLOWS / f"{FLOW}.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("spec: callflow/v1\nid: bad\nnodes:\n  Start: {type: nope}\n")
    r = subprocess.run([sys.executable, "-m", "engine.cli", "serve", str(tmp_path), "--port", "0",
                        "--db", f"sqlite:///{tmp_path}/x.db"], cwd=REPO, env=clean_env(), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr and "callflow serving" not in r.stdout


def test_serve_sandbox_works_without_any_credentials(tmp_path):
    shutil.copytree(FLOWS, tmp_path / "flows")
    p = CallflowProcess(["serve", str(tmp_path / "flows"), "--port", "0", "--sandbox"], clean_env(), tmp_path / "s.log",
                        cwd=tmp_path)
    try:
        url = p.wait_line(SERVE_READY).split()[-1]
        creds = dict(line.strip().split("=", 1) for line in p.output if line.strip().startswith("CALLFLOW_AUTH_"))
        auth = (creds["CALLFLOW_AUTH_ID"], creds["CALLFLOW_AUTH_TOKEN"])
        assert auth[0].startswith("MA") and len(auth[0]) == 20
        r = httpx.post(f"{url}/v1/account/{auth[0]}/phlo/{FLOW}", json={"to": ANSWERS, "customer": "x1"}, auth=auth)
        assert r.status_code == 201, r.text
        run_id = r.json()["api_id"]

        def done():
            rec = httpx.get(f"{url}/v1/runs/{run_id}", auth=auth).json()
            return rec if rec["status"] in ("completed", "failed") else None

        rec = wait_for(done, what="the run on the embedded sandbox")
        assert rec["status"] == "completed" and rec["path"] == ["Start", "Call", "Greet", "Done"]
        assert (tmp_path / "callflow.db").exists()  # the default store: callflow.db in the cwd
    finally:
        p.stop()
