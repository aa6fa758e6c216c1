"""Simulated incoming calls end to end: a real `callflow serve --sandbox --scenario` process,
`callflow call` as a subprocess, and `POST /sandbox/inbound` over HTTP (issue 14, point 9).

The call goes the whole way a Plivo incoming call goes: the embedded sandbox posts the signed
answer request to the flow's incoming-call URL, plays the XML it gets back, presses the digits,
posts the action callbacks and the hangup; the run it starts is in GET /v1/runs.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from conftest import FLOWS
from processes import (
    REPO,
    SANDBOX_READY,
    SERVE_READY,
    CallflowProcess,
    clean_env,
    free_port,
)

AUTH_ID = "MAINBOUNDTESTACCOUNT"
AUTH_TOKEN = "inbound-e2e-token"
AUTH = (AUTH_ID, AUTH_TOKEN)
FLOW = "inbound-support"
SUPPORT_LINE = "+12025551234"  # flows/inbound-support.scenario.yaml: numbers: maps it to the flow
PRESSES_TWO = "+12025550188"  # ... and this caller presses 2
SCENARIO = FLOWS / "inbound-support.scenario.yaml"
GOLD_PATH = ["Start", "Tier", "GoldWelcome", "Menu", "Route", "Sales", "Bye"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(serve URL, embedded sandbox URL, scenario path, provider pair) of one `serve flows --sandbox --scenario`."""
    d = tmp_path_factory.mktemp("inbound")
    env = clean_env(CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN)
    p = CallflowProcess.start(["serve", str(FLOWS), "--port", "0", "--db", f"sqlite:///{d}/runs.db", "--sandbox",
                               "--scenario", str(SCENARIO)], env, SERVE_READY, d / "serve.log")
    embedded = next(line for line in p.output if line.startswith("embedded sandbox provider on ")).split()[4]
    pair = tuple(next(line.strip().split("=", 1)[1] for line in p.output if line.strip().startswith(f"{key}="))
                 for key in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN"))  # the provider pair serve generated
    yield p.url, embedded, SCENARIO, pair
    p.stop()


def callflow_call(*args: str, auth: bool = True) -> subprocess.CompletedProcess:
    env = clean_env(CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN) if auth else clean_env()
    return subprocess.run([sys.executable, "-m", "engine.cli", "call", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_gold_caller_takes_the_call_path_and_the_gold_branch_and_its_run_is_listed(served):
    serve, embedded, _, _ = served
    url = f"{serve}/callbacks/inbound/{FLOW}"
    done = callflow_call(url, "--from", "+12025550123", "-H", "tier=gold", "--digits", "1#")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("incoming call from +12025550123 to +12025551234  headers tier=gold")
    assert "  Start (trigger) -> call" in lines and "  Tier (branch) -> gold" in lines
    assert "  pressed 1" in lines and "  Menu (get_input) -> input  digits 1" in lines  # "1#": the finish
    # key ends the input and is not sent
    assert any(line.startswith("  heard: says \"Welcome back, gold member.\"") for line in lines)
    assert all(len(line) <= 120 for line in lines)
    run_id = lines[-1].split()[1]
    assert lines[-1] == f"run {run_id} completed"

    listed = httpx.get(f"{serve}/v1/runs", params={"flow_id": FLOW}, auth=AUTH).json()["runs"]
    assert run_id in [r["run_id"] for r in listed]
    record = httpx.get(f"{serve}/v1/runs/{run_id}", auth=AUTH).json()
    assert record["status"] == "completed" and record["path"] == GOLD_PATH

    # What the app was sent: Plivo's params, the header as X-PH-tier, every callback accepted
    # (a 200 from serve: the V3 signature checked out), the hangup to the application's URL.
    [call] = [c for c in httpx.get(f"{embedded}/sandbox/calls").json()["calls"] if c["documents"] == record["documents"]]
    answer, action, hangup = call["callbacks"]
    assert answer["url"] == url and answer["status"] == 200
    assert {k: answer["params"][k] for k in ("From", "To", "Direction", "CallStatus", "X-PH-tier")} == {
        "From": "+12025550123", "To": SUPPORT_LINE, "Direction": "inbound", "CallStatus": "in-progress",
        "X-PH-tier": "gold"}
    assert action["kind"] == "action" and action["params"]["Digits"] == "1" and action["status"] == 200
    assert hangup["url"] == f"{url}/hangup" and hangup["status"] == 200


def test_the_sandbox_api_places_a_call_to_a_number_of_the_scenario(served):
    serve, _, _, _ = served
    r = httpx.post(f"{serve}/sandbox/inbound", json={"to": SUPPORT_LINE, "from": PRESSES_TWO}, auth=AUTH,
                   timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed" and body["hangup_cause"] == "NORMAL_CLEARING"
    assert body["digits"] == ["2"]  # the scenario's behaviour for this caller
    assert body["run"]["path"] == ["Start", "Tier", "Welcome", "Menu", "Route", "Support", "Bye"]
    assert body["run_id"] == body["run"]["run_id"] and len(body["documents"]) == 2


def test_bad_input_is_one_line_and_places_no_call(served):
    serve, embedded, _, _ = served
    before = len(httpx.get(f"{embedded}/sandbox/calls").json()["calls"])
    url = f"{serve}/callbacks/inbound/{FLOW}"
    for args, says in (((url, "--from", "12025550123"), "write it as '+12025550123'"),
                       ((url, "--from", "+12025550123", "-H", "tier=go-ld"), "letters and digits only"),
                       (("inbound-support", "--from", "+12025550123"), "not an http(s) URL")):
        done = callflow_call(*args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and says in done.stderr
        assert "Traceback" not in done.stderr
    r = httpx.post(f"{serve}/sandbox/inbound", json={"url": url, "form": "+12025550123"}, auth=AUTH)
    assert r.status_code == 400 and "did you mean 'from'" in r.json()["error"]
    r = httpx.post(f"{serve}/sandbox/inbound", json={"to": "+12025550999", "from": "+12025550123"}, auth=AUTH)
    assert r.status_code == 400 and "numbers:" in r.json()["error"]
    assert httpx.post(f"{serve}/sandbox/inbound", json={"url": url, "from": "+12025550123"}).status_code == 401
    denied = callflow_call(url, "--from", "+12025550123", auth=False)
    assert denied.returncode == 1 and "CALLFLOW_AUTH_ID" in denied.stderr
    assert len(httpx.get(f"{embedded}/sandbox/calls").json()["calls"]) == before


def test_the_embedded_sandbox_itself_places_calls_without_credentials(served):
    serve, embedded, _, _ = served
    done = callflow_call(f"{serve}/callbacks/inbound/{FLOW}", "--from", "sip:alice@example.com",
                         "--sandbox", embedded, auth=False)
    assert done.returncode == 0, done.stderr
    assert "heard: says \"Thanks for calling.\"" in done.stdout  # no header: the standard branch
    assert "call ended: completed (NORMAL_CLEARING)" in done.stdout


def test_a_standalone_sandbox_calls_a_serve_that_shares_its_provider_token(served, tmp_path):
    """`callflow sandbox` with serve's provider pair (PLIVO_AUTH_ID/TOKEN, printed by serve):
    its signed answer request is accepted and the call plays; a flow id in numbers: needs the
    serve --sandbox that knows where flows are served."""
    serve, _, scenario, pair = served
    p = CallflowProcess.start(["sandbox", "--port", "0", "--scenario", str(scenario)],
                              clean_env(PLIVO_AUTH_ID=pair[0], PLIVO_AUTH_TOKEN=pair[1]), SANDBOX_READY,
                              tmp_path / "sandbox.log")
    try:
        r = httpx.post(f"{p.url}/sandbox/inbound", json={"to": SUPPORT_LINE, "from": "+12025550123"})
        assert r.status_code == 400 and "only serve --sandbox does" in r.json()["error"]
        done = callflow_call(f"{serve}/callbacks/inbound/{FLOW}", "--from", "+12025550123", "-H", "X-PH-tier=gold",
                             "--digits", "2", "--sandbox", p.url, auth=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert 'heard: says "Welcome back, gold member."' in done.stdout
        assert 'heard: says "Support tickets are answered within a day."' in done.stdout
    finally:
        p.stop()


def test_an_unreachable_sandbox_is_one_line(served):
    done = callflow_call(f"http://127.0.0.1:{free_port()}/callbacks/inbound/{FLOW}", "--from", "+12025550123")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: cannot reach the sandbox at ") and "serve --sandbox" in done.stderr


def test_serve_takes_a_scenario_only_with_its_sandbox(tmp_path):
    (tmp_path / "s.yaml").write_text("numbers: {'+12025551234': inbound-support}\n")
    done = subprocess.run([sys.executable, "-m", "engine.cli", "serve", str(FLOWS), "--port", "0",
                           "--db", f"sqlite:///{tmp_path}/x.db", "--scenario", str(tmp_path / "s.yaml")],
                          cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "add --sandbox" in done.stderr


def test_scenario_numbers_are_checked_with_line_and_column():
    from engine.errors import FlowInvalid
    from engine.local.scenario import parse_scenario

    assert parse_scenario('numbers: {"+12025551234": inbound-support}').numbers == {"+12025551234": "inbound-support"}
    with pytest.raises(FlowInvalid) as e:
        parse_scenario('numbers:\n  "12025551234": inbound-support\n  "+12025551235": "ftp://x"\n', "s.yaml")
    lines = [str(d) for d in e.value.diagnostics]
    assert any(line.startswith("s.yaml:2:3: error") and "'+12025551234'" in line for line in lines), lines
    assert any(line.startswith("s.yaml:3:") and "neither a flow id nor an http(s) answer URL" in line
               for line in lines), lines
