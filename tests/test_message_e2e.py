"""Incoming SMS end to end: a real `callflow serve --sandbox` process running
flows/sms-auto-reply.yaml against a real lookup server, SMS delivered through
`POST /sandbox/inbound-message`, `callflow message` and a standalone `callflow sandbox`.

The message goes the way Plivo delivers one: the sandbox posts Plivo's message parameters,
signed (X-Plivo-Signature-V3), to the flow's message URL; serve starts the run, whose
http_request asks the lookup and whose send_sms replies through the sandbox's Message API.
A retried webhook (the same MessageUUID) starts no second run; an unsigned or forged one is
refused with 403 and starts nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import FLOWS
from processes import (
    REPO,
    SANDBOX_READY,
    SERVE_READY,
    CallflowProcess,
    clean_env,
    reply,
)

from engine.local.incoming import message_params
from engine.service.signature import sign_v3_headers

AUTH = ("MAMESSAGETESTACCOUNT", "message-e2e-token")
FLOW = "sms-auto-reply"
SENDER = "+12025550123"
REPLY = "We are open 9 to 5."


class _Replies(BaseHTTPRequestHandler):
    """The lookup: answers every POST with the reply, keeping what it was sent."""

    asked: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.asked.append(json.loads(body))
        reply(self, 200, json.dumps({"reply": REPLY}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(serve URL, embedded sandbox URL, provider token, lookup requests) of one serve --sandbox."""
    d = tmp_path_factory.mktemp("message")
    (d / "flows").mkdir()
    (d / "flows" / f"{FLOW}.yaml").write_text((FLOWS / f"{FLOW}.yaml").read_text())
    lookup = ThreadingHTTPServer(("127.0.0.1", 0), _Replies)
    threading.Thread(target=lookup.serve_forever, daemon=True).start()
    env = clean_env(CALLFLOW_AUTH_ID=AUTH[0], CALLFLOW_AUTH_TOKEN=AUTH[1], CALLFLOW_HTTP_ALLOW_PRIVATE="1",
                    CALLFLOW_PARAM_REPLIES_URL=f"http://127.0.0.1:{lookup.server_port}/answer")
    p = CallflowProcess.start(["serve", str(d / "flows"), "--port", "0", "--db", f"sqlite:///{d}/runs.db",
                               "--sandbox"], env, SERVE_READY, d / "serve.log")
    embedded = next(line for line in p.output if line.startswith("embedded sandbox provider on ")).split()[4]
    token = next(line.strip().split("=", 1)[1] for line in p.output if line.strip().startswith("PLIVO_AUTH_TOKEN="))
    yield p.url, embedded, token, _Replies.asked
    p.stop()
    lookup.shutdown()


def _sent(embedded: str, text: str) -> list[dict]:
    """The SMS the sandbox's Message API took with this text."""
    return [m["request"] for m in httpx.get(f"{embedded}/sandbox/calls").json()["messages"] if m["request"]["text"] == text]


def _runs(serve: str) -> list[str]:
    return [r["run_id"] for r in httpx.get(f"{serve}/v1/runs", params={"flow_id": FLOW}, auth=AUTH).json()["runs"]]


def test_an_sms_through_the_sandbox_starts_a_run_that_replies_by_sms(served):
    serve, embedded, _, asked = served
    r = httpx.post(f"{serve}/sandbox/inbound-message", auth=AUTH, timeout=30,
                   json={"url": f"{serve}/callbacks/inbound-message/{FLOW}", "from": SENDER, "text": "Open today?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == 200 and body["error"] is None
    run = body["run"]
    assert run["run_id"] == body["run_id"] and run["status"] == "completed"
    assert run["path"] == ["Start", "Lookup", "Reply"]
    assert run["variables"]["Start"]["message"] == {"from": SENDER, "to": "+12025551234", "text": "Open today?",
                                                    "message_uuid": body["message_uuid"]}
    assert {"from": SENDER, "text": "Open today?"} in asked
    [sms] = [m for m in _sent(embedded, REPLY) if m["dst"] == SENDER]
    assert sms["src"] == "+12025551234"  # from the number written to
    delivered = httpx.get(f"{embedded}/sandbox/calls").json()["inbound_messages"]
    assert [m["status"] for m in delivered if m["message_uuid"] == body["message_uuid"]] == [200]


def test_a_retried_webhook_starts_no_second_run(served):
    serve, embedded, token, _ = served
    url = f"{serve}/callbacks/inbound-message/{FLOW}"
    sender = "+12025550124"
    first = httpx.post(f"{serve}/sandbox/inbound-message", auth=AUTH, timeout=30,
                       json={"url": url, "from": sender, "text": "hi", "message_uuid": "retried-1"}).json()
    again = httpx.post(f"{serve}/sandbox/inbound-message", auth=AUTH, timeout=30,
                       json={"url": url, "from": sender, "text": "hi", "message_uuid": "retried-1"}).json()
    assert first["status"] == again["status"] == 200 and again["run_id"] == first["run_id"]
    # Plivo's own retry: the very same signed request, sent again.
    params = message_params(sender, "+12025551234", "hi", "retried-1")
    headers = sign_v3_headers("POST", url, params, token)
    replayed = httpx.post(url, data=params, headers=headers)
    assert replayed.status_code == 200 and replayed.content == b""
    assert replayed.headers["X-Callflow-Run-Id"] == first["run_id"]
    assert _runs(serve).count(first["run_id"]) == 1
    assert len([m for m in _sent(embedded, REPLY) if m["dst"] == sender]) == 1  # one reply, not three
    other = httpx.post(url, data={**params, "MessageUUID": "retried-2"},
                       headers=sign_v3_headers("POST", url, {**params, "MessageUUID": "retried-2"}, token))
    assert other.status_code == 200 and other.headers["X-Callflow-Run-Id"] != first["run_id"]  # a new message


def test_unsigned_forged_or_tampered_webhooks_are_refused_and_start_nothing(served):
    serve, _, token, _ = served
    url = f"{serve}/callbacks/inbound-message/{FLOW}"
    params = message_params("+12025550125", "+12025551234", "forged", "forged-1")
    before = _runs(serve)
    signed = sign_v3_headers("POST", url, params, token)
    for data, headers in ((params, {}),
                          (params, sign_v3_headers("POST", url, params, "not-the-token")),
                          ({**params, "Text": "tampered"}, signed),
                          (params, sign_v3_headers("POST", f"{serve}/callbacks/inbound-message/other", params, token))):
        r = httpx.post(url, data=data, headers=headers)
        assert r.status_code == 403 and r.json()["error"] == "invalid or missing X-Plivo-Signature-V3"
    assert _runs(serve) == before
    # Signed, but not something a run can start from: JSON errors, no run.
    unknown = f"{serve}/callbacks/inbound-message/no-such-flow"
    r = httpx.post(unknown, data=params, headers=sign_v3_headers("POST", unknown, params, token))
    assert r.status_code == 404 and "no-such-flow" in r.json()["error"]
    bare = {"From": "+12025550125", "Text": "no id"}
    r = httpx.post(url, data=bare, headers=sign_v3_headers("POST", url, bare, token))
    assert r.status_code == 400 and "MessageUUID" in r.json()["error"]
    assert _runs(serve) == before


def test_callflow_message_prints_the_run(served):
    serve, _, _, _ = served
    env = clean_env(CALLFLOW_AUTH_ID=AUTH[0], CALLFLOW_AUTH_TOKEN=AUTH[1])
    done = subprocess.run([sys.executable, "-m", "engine.cli", "message", f"{serve}/callbacks/inbound-message/{FLOW}",
                           "--from", SENDER, "--text", "hours?"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"incoming message from {SENDER} to +12025551234: 'hours?'  (message ")
    assert lines[1:4] == ["  Start (trigger) -> message", "  Lookup (http_request) -> success  HTTP 200",
                          "  Reply (send_sms) -> sent"]
    assert lines[-1].startswith("run ") and lines[-1].endswith(" completed")
    bad = subprocess.run([sys.executable, "-m", "engine.cli", "message", f"{serve}/callbacks/inbound-message/{FLOW}",
                          "--from", "12025550123"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr == "error: --from: '12025550123' is not E.164: write it as '+12025550123'\n"
    refused = subprocess.run([sys.executable, "-m", "engine.cli", "message", f"{serve}/callbacks/inbound-message/nope",
                              "--from", SENDER], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout.splitlines()[-1] == "not delivered: the app answered HTTP 404: no flow 'nope' here"


def test_a_standalone_sandbox_delivers_to_a_serve_that_shares_its_provider_token(served, tmp_path):
    serve, _, token, _ = served
    p = CallflowProcess.start(["sandbox", "--port", "0"], clean_env(PLIVO_AUTH_ID=AUTH[0], PLIVO_AUTH_TOKEN=token),
                              SANDBOX_READY, tmp_path / "sandbox.log")
    try:
        url = f"{serve}/callbacks/inbound-message/{FLOW}"
        r = httpx.post(f"{p.url}/sandbox/inbound-message", json={"url": url, "from": SENDER, "text": "hi"}, timeout=30)
        assert r.status_code == 200 and r.json()["status"] == 200, r.text
        assert r.json()["run_id"] in _runs(serve)
        r = httpx.post(f"{p.url}/sandbox/inbound-message", json={"url": url, "form": SENDER})
        assert r.status_code == 400 and "did you mean 'from'" in r.json()["error"]
    finally:
        p.stop()
