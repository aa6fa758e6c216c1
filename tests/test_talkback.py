"""Talking back to the provider, end to end: real `callflow sandbox` and `callflow serve`
processes on 127.0.0.1 (tests/processes.py).

* The Call API refusing a request (429, 503) is answered by sending it again: one call.
* A 2xx without a request_uuid (PLIVO_API_URL at some other web server) fails the step.
* Callbacks that never arrive (a scenario's `drop:`, or serve down during the call) are
  reconciled from the provider's lookups, long before the run timeout.
* The sandbox's lookups parse with the official SDK (`calls`, `live_calls`, `queued_calls`).
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import httpx
import plivo
import plivo.rest.client as plivo_client
import pytest
from conftest import FLOWS
from plivo import exceptions as plivo_exceptions
from processes import (
    SANDBOX_READY,
    SERVE_READY,
    CallflowProcess,
    clean_env,
    free_port,
    wait_for,
)

AUTH_ID = "MATALKBACKTESTACCTXX"
AUTH_TOKEN = "talkback-trigger-token"
PLIVO_ID = "MATALKBACKPROVIDERXX"
PLIVO_TOKEN = "talkback-provider-token"
AUTH = (AUTH_ID, AUTH_TOKEN)
FLOW = "outbound-sip-headers"
ANSWERS = "+12025550100"
LOSES_HANGUP = "+12025550131"  # answers; its hangup callback never arrives
BUSY_UNHEARD = "+12025550132"  # busy; neither its ring nor its hangup callback arrives
SLOW = "+12025550133"  # answers after 3 s: the window to stop serve
RINGS = "+12025550134"  # rings for 4 s, then busy: a live call to look up
SCENARIO = f"""\
default: answered
destinations:
  "{LOSES_HANGUP}": {{result: answered, drop: [hangup]}}
  "{BUSY_UNHEARD}": {{result: busy, drop: [ring, hangup]}}
  "{SLOW}": {{result: answered, answer_after: 3}}
  "{RINGS}": {{result: busy, answer_after: 4}}
"""
REFUSING = "api:\n  Call: [429, 503, {status: 429, retry_after: 1}]\n" + SCENARIO  # then as usual
RUN_TIMEOUT = "600"  # reconciliation must finish runs long before this


@pytest.fixture
def workdir(tmp_path) -> Path:
    (tmp_path / "flows").mkdir()
    shutil.copy(FLOWS / f"{FLOW}.yaml", tmp_path / "flows")
    return tmp_path


def start_sandbox(workdir: Path, scenario: str) -> CallflowProcess:
    (workdir / "scenario.yaml").write_text(scenario)
    return CallflowProcess.start(["sandbox", "--port", "0", "--scenario", str(workdir / "scenario.yaml")],
                                 clean_env(PLIVO_AUTH_ID=PLIVO_ID, PLIVO_AUTH_TOKEN=PLIVO_TOKEN), SANDBOX_READY,
                                 workdir / "sandbox.log")


@pytest.fixture
def sandbox(workdir):
    p = start_sandbox(workdir, SCENARIO)
    yield p.url
    p.stop()


def start_serve(workdir: Path, api_url: str, port: int = 0, **extra) -> CallflowProcess:
    env = clean_env(CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN, PLIVO_AUTH_ID=PLIVO_ID,
                    PLIVO_AUTH_TOKEN=PLIVO_TOKEN, PLIVO_API_URL=api_url, CALLFLOW_RECONCILE_SECONDS="1",
                    CALLFLOW_RUN_TIMEOUT=RUN_TIMEOUT, **extra)
    return CallflowProcess.start(["serve", str(workdir / "flows"), "--port", str(port),
                                  "--db", f"sqlite:///{workdir}/runs.db"], env, SERVE_READY, workdir / "serve.log")


@pytest.fixture
def serve(workdir, sandbox):
    p = start_serve(workdir, sandbox)
    yield p.url
    p.stop()


def trigger(serve_url: str, to: str) -> str:
    r = httpx.post(f"{serve_url}/v1/account/{AUTH_ID}/phlo/{FLOW}/", json={"to": to, "customer": "ada"}, auth=AUTH)
    assert r.status_code == 201, r.text
    return r.json()["api_id"]


def record(serve_url: str, run_id: str) -> dict:
    r = httpx.get(f"{serve_url}/v1/runs/{run_id}", auth=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def finished(serve_url: str, run_id: str, timeout: float = 30) -> dict:
    def done():
        rec = record(serve_url, run_id)
        return rec if rec["status"] in ("completed", "failed") else None

    return wait_for(done, timeout, f"run {run_id} to finish")


def calls_for(sandbox_url: str, run_id: str) -> list[dict]:
    calls = httpx.get(f"{sandbox_url}/sandbox/calls").json()["calls"]
    return [c for c in calls if f"/callbacks/{run_id}/" in c["request"].get("answer_url", "")]


def test_refused_three_times_then_fired_places_one_call(workdir):
    sandbox_process = start_sandbox(workdir, REFUSING)  # refuses the first three Call requests
    sandbox = sandbox_process.url
    serve_process = start_serve(workdir, sandbox)
    try:
        _refused_then_fired(sandbox, serve_process.url)
    finally:
        serve_process.stop()
        sandbox_process.stop()


def _refused_then_fired(sandbox: str, serve: str) -> None:
    run_id = trigger(serve, ANSWERS)
    rec = finished(serve, run_id)
    assert rec["status"] == "completed", rec
    assert rec["path"] == ["Start", "Call", "Greet", "Done"]
    [request] = rec["requests"]
    attempts = request["attempts"]
    assert [a.get("status") for a in attempts] == [429, 503, 429, 201]
    assert attempts[2]["retry_in"] >= 1  # Retry-After: 1 honoured
    assert all(0 < a["retry_in"] <= 8 for a in attempts[:3]) and "retry_in" not in attempts[3]
    assert "token" not in json.dumps(rec).lower()  # no secret in the record
    [call] = calls_for(sandbox, run_id)
    assert call["status"] == "completed" and call["hangup_cause"] == "NORMAL_CLEARING"
    assert len(httpx.get(f"{sandbox}/sandbox/calls").json()["calls"]) == 1  # one call fired in all


class _NotPlivo(http.server.BaseHTTPRequestHandler):
    """Some web server that answers every request 200 `{}`."""

    hits: ClassVar[list[str]] = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).hits.append(self.path)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_2xx_without_request_uuid_fails_the_step_at_once(workdir):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotPlivo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    serve = start_serve(workdir, f"http://127.0.0.1:{server.server_address[1]}")
    try:
        run_id = trigger(serve.url, ANSWERS)
        rec = finished(serve.url, run_id, timeout=10)
    finally:
        serve.stop()
        server.shutdown()
        server.server_close()
    assert _NotPlivo.hits == [f"/v1/Account/{PLIVO_ID}/Call/"]  # sent once, not resent
    call_step = rec["steps"][1]
    assert call_step["node"] == "Call" and call_step["outcome"] == "failed"
    assert "without a request_uuid" in call_step["error"] and "no call was placed" in call_step["error"]
    assert rec["path"] == ["Start", "Call", "Done"] and rec["status"] == "completed"


def test_a_lost_hangup_is_reconciled_from_the_call_record(sandbox, serve):
    run_id = trigger(serve, LOSES_HANGUP)
    rec = finished(serve, run_id, timeout=20)  # the run timeout is 600 s
    assert rec["status"] == "completed", rec
    assert rec["path"] == ["Start", "Call", "Greet", "Done"]
    [call] = calls_for(sandbox, run_id)
    assert [cb["kind"] for cb in call["callbacks"] if cb.get("dropped")] == ["hangup"]
    outputs = rec["variables"]["Call"]
    # the cause as the call record names it (a hangup callback would say NORMAL_CLEARING)
    assert outputs["hangup_cause"] == "Normal Hangup" and outputs["status"] == "completed"
    assert outputs["call_uuid"] == call["call_uuid"]


def test_a_busy_call_whose_callbacks_were_lost_takes_busy(sandbox, serve):
    run_id = trigger(serve, BUSY_UNHEARD)
    rec = finished(serve, run_id, timeout=20)
    [call] = calls_for(sandbox, run_id)
    assert all(cb.get("dropped") for cb in call["callbacks"])  # nothing reached serve
    assert rec["steps"][1]["outcome"] == "busy", rec
    assert rec["variables"]["Call"]["hangup_cause"] == "Busy Line"
    assert rec["variables"]["Call"]["params"]["CallflowReconciled"] == "true"
    assert rec["path"] == ["Start", "Call", "Done"] and rec["status"] == "completed"


def test_callbacks_missed_while_serve_was_down_are_reconciled_on_restart(workdir, sandbox):
    port = free_port()
    serve = start_serve(workdir, sandbox, port=port)
    run_id = trigger(serve.url, SLOW)  # answers after 3 s
    wait_for(lambda: (record(serve.url, run_id)["variables"].get("Call") or {}).get("request_uuid"),
             what="the call fired")
    serve.kill9()
    # the answer callback finds nobody: the provider ends the call (ANSWER_URL_ERROR)
    wait_for(lambda: [c for c in calls_for(sandbox, run_id) if c["status"] == "completed"], timeout=15,
             what="the call's end")
    serve = start_serve(workdir, sandbox, port=port)
    try:
        rec = finished(serve.url, run_id, timeout=20)
    finally:
        serve.stop()
    [call] = calls_for(sandbox, run_id)
    assert call["hangup_cause"] == "ANSWER_URL_ERROR"
    step = rec["steps"][1]
    assert step["outcome"] == "failed" and "answer callback never reached" in step["error"], rec
    assert rec["variables"]["Call"]["params"]["CallflowReconciled"] == "true"


def _sdk(sandbox_url: str) -> plivo.RestClient:
    for name in ("PLIVO_API_BASE_URI", "API_VOICE_BASE_URI", "API_VOICE_BASE_URI_FALLBACK_1",
                 "API_VOICE_BASE_URI_FALLBACK_2"):
        setattr(plivo_client, name, f"{sandbox_url}/v1/Account")
    return plivo.RestClient(PLIVO_ID, PLIVO_TOKEN)


def test_the_official_sdk_reads_the_sandboxs_lookups(sandbox, serve, monkeypatch):
    for name in ("PLIVO_API_BASE_URI", "API_VOICE_BASE_URI", "API_VOICE_BASE_URI_FALLBACK_1",
                 "API_VOICE_BASE_URI_FALLBACK_2"):
        monkeypatch.setattr(plivo_client, name, getattr(plivo_client, name))  # restored after the test
    client = _sdk(sandbox)
    run_id = trigger(serve, RINGS)
    [call] = wait_for(lambda: calls_for(sandbox, run_id), what="the call")
    uuid = call["call_uuid"]
    live = wait_for(lambda: _or_none(lambda: client.live_calls.get(uuid)), what="a live call")
    assert live.call_uuid == uuid and live.call_status == "ringing" and live.to == RINGS
    assert live.request_uuid == uuid  # a call the API placed shows under its request_uuid
    assert uuid in client.live_calls.list_ids().calls
    assert client.live_calls.list_ids(from_number=call["from"], to_number=RINGS).calls == [uuid]
    assert client.live_calls.list_ids(to_number=ANSWERS).calls == []
    with pytest.raises(plivo_exceptions.ResourceNotFoundError):
        client.calls.get(uuid)  # not ended yet: no record
    with pytest.raises(plivo_exceptions.ResourceNotFoundError):
        client.queued_calls.get(uuid)  # ringing, no longer queued
    assert client.queued_calls.list_ids().calls == []
    rec = finished(serve, run_id)
    assert rec["steps"][1]["outcome"] == "busy"
    # looked up while it rang (reconciling after 1 s): live, so the run kept waiting for the real callback
    assert rec["variables"]["Call"]["hangup_cause"] == "USER_BUSY"
    assert "CallflowReconciled" not in rec["variables"]["Call"]["params"]
    ended = client.calls.get(uuid)
    assert ended.call_uuid == uuid and ended.hangup_cause_name == "Busy Line" and ended.answer_time is None
    assert ended.to_number == RINGS and ended.call_direction == "outbound" and ended.bill_duration == 0
    page = client.calls.list(to_number=RINGS, limit=5)
    assert [c.call_uuid for c in page.objects] == [uuid]
    ended_at = datetime.strptime(ended.end_time[:19], "%Y-%m-%d %H:%M:%S")
    around = {"from_number": call["from"], "to_number": RINGS}
    assert [c.call_uuid for c in client.calls.list(
        end_time__gte=f"{ended_at - timedelta(seconds=1):%Y-%m-%d %H:%M}", **around).objects] == [uuid]
    assert client.calls.list(end_time__gt=f"{ended_at:%Y-%m-%d %H:%M:%S}", **around).objects == []
    assert client.calls.list(end_time__lte=f"{ended_at:%Y-%m-%d %H:%M:%S.%f}", **around).meta["total_count"] == 1
    assert client.queued_calls.list_ids(limit=5, offset=0).calls == []
    with pytest.raises(plivo_exceptions.ResourceNotFoundError):
        client.live_calls.get(uuid)


def _or_none(fn):
    try:
        return fn()
    except plivo_exceptions.ResourceNotFoundError:
        return None
