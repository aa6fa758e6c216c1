"""`callflow run --live`: the same run, but through a provider over HTTP and real callbacks.

`callflow sandbox` stands in for Plivo's cloud: a separate process, reached through
PLIVO_API_URL, posting V3-signed callbacks to the run's own callback listener.
"""

import json
import os
import subprocess

import httpx
import pytest
from conftest import CALLFLOW, FLOWS, ROOT
from processes import SANDBOX_READY, CallflowProcess, clean_env, free_port

AUTH_ID, AUTH_TOKEN = "MALIVETESTACCOUNTXYZ", "live-test-token"


@pytest.fixture
def sandbox(tmp_path):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text('destinations:\n  "+12025550111": busy\n')
    proc = CallflowProcess.start(["sandbox", "--port", "0", "--scenario", str(scenario)],
                                 clean_env(PLIVO_AUTH_ID=AUTH_ID, PLIVO_AUTH_TOKEN=AUTH_TOKEN), SANDBOX_READY,
                                 tmp_path / "sandbox.log")
    yield proc.url
    proc.stop()


def live_run(sandbox_url, *args):
    port = free_port()
    env = dict(os.environ, PLIVO_AUTH_ID=AUTH_ID, PLIVO_AUTH_TOKEN=AUTH_TOKEN, PLIVO_API_URL=sandbox_url)
    return subprocess.run([*CALLFLOW, "run", str(FLOWS / "outbound-sip-headers.yaml"), *args, "--live",
                           "--public-url", f"http://127.0.0.1:{port}", "--port", str(port), "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_live_run_through_a_provider_over_http(sandbox):
    p = live_run(sandbox, "-p", "to=+12025550100", "-p", "customer=johndoe")
    assert p.returncode == 0, p.stderr
    record = json.loads(p.stdout)
    assert record["status"] == "completed"
    assert record["path"] == ["Start", "Call", "Greet", "Done"]
    assert record["requests"][0]["url"] == f"{sandbox}/v1/Account/{AUTH_ID}/Call/"
    assert record["variables"]["Call"]["params"]["X-PH-customer"] == "johndoe"
    calls = httpx.get(f"{sandbox}/sandbox/calls").json()["calls"]
    assert len(calls) == 1 and calls[0]["request"]["sip_headers"] == "customer=johndoe"
    statuses = {c["kind"]: c["status"] for c in calls[0]["callbacks"]}
    assert statuses == {"ring": 200, "answer": 200, "hangup": 200}  # every signed callback accepted
    assert calls[0]["documents"] == record["documents"]


def test_live_busy_and_missing_settings(sandbox):
    p = live_run(sandbox, "-p", "to=+12025550111", "-p", "customer=johndoe")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["path"] == ["Start", "Call", "Done"]
    p = subprocess.run([*CALLFLOW, "run", str(FLOWS / "outbound-sip-headers.yaml"), "-p", "to=+12025550100",
                        "-p", "customer=a", "--live"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "CALLFLOW_PUBLIC_URL"})
    assert p.returncode == 2 and "--public-url" in p.stderr
