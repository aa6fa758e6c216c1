"""No dead air end to end (issue 11, point 2): a real `callflow serve --sandbox` process drives
a call through speak -> http_request -> speak, the webhook a real slow HTTP server on loopback
(2 s). What the sandbox was served, and when, against when the webhook was called and when it
answered: the first document (the first Speak and a Redirect) before the webhook returned, the
second after it. Only orderings are asserted, on the times the webhook and the sandbox's call
log recorded (one machine, one clock); the run record's ISO times are compared at their own
millisecond precision.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from processes import SERVE_READY, CallflowProcess, clean_env, reply, wait_for

from engine.state import iso

AUTH_ID = "MADEADAIRTESTACCOUNT"
AUTH_TOKEN = "dead-air-token"
AUTH = (AUTH_ID, AUTH_TOKEN)
HANGS_UP = "+12025550166"  # hangs up half a second into the first document, while the webhook runs
WEBHOOK_SECONDS = 2.0
FLOW = """\
spec: callflow/v1
id: lookup
name: Look an order up during the call
nodes:
  Start:
    type: trigger
    payload: {to: "+12025550100"}
    required: [hook]
    next: Call
  Call:
    type: call_out
    from: "+12025551234"
    to: "{{ Start.http.params.to }}"
    next: {answered: Hello}
  Hello: {type: speak, text: "One moment while I look that up.", next: Look}
  Look:
    type: http_request
    method: POST
    url: "{{ Start.http.params.hook }}"
    json: {order: "A1"}
    next: {success: Tell, failed: Tell}
  Tell: {type: speak, text: "Your order shipped.", next: Bye}
  Bye: {type: hangup}
"""
SCENARIO = f"""\
default: answered
destinations:
  "{HANGS_UP}": {{result: answered, hangup_after: 0.5}}
"""


class SlowWebhook(ThreadingHTTPServer):
    """Answers every POST after `WEBHOOK_SECONDS`, noting when each came in and went out."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/orders"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        received = time.time()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(WEBHOOK_SECONDS)  # the slow API the caller must not hear as silence
        entry = {"received_at": received, "answered_at": time.time()}
        self.server.calls.append(entry)
        reply(self, 200, b'{"status": "shipped"}')

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def webhook():
    server = SlowWebhook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(serve URL, embedded sandbox URL) of one `callflow serve flows --sandbox --scenario`."""
    d = tmp_path_factory.mktemp("deadair")
    (d / "flows").mkdir()
    (d / "flows" / "lookup.yaml").write_text(FLOW)
    (d / "scenario.yaml").write_text(SCENARIO)
    env = clean_env(CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN, CALLFLOW_HTTP_ALLOW_PRIVATE="1")
    p = CallflowProcess.start(["serve", str(d / "flows"), "--port", "0", "--db", f"sqlite:///{d}/runs.db",
                               "--sandbox", "--scenario", str(d / "scenario.yaml")], env, SERVE_READY, d / "serve.log")
    embedded = next(line for line in p.output if line.startswith("embedded sandbox provider on ")).split()[4]
    yield p.url, embedded
    p.stop()


def run_call(served, webhook, **payload) -> tuple[dict, dict, dict]:
    """Trigger a run, wait until it and its call are over: (run record, sandbox call log, webhook call)."""
    serve, embedded = served
    before = len(webhook.calls)
    r = httpx.post(f"{serve}/v1/account/{AUTH_ID}/phlo/lookup/", json={"hook": webhook.url, **payload}, auth=AUTH)
    assert r.status_code == 201, r.text
    run_id = r.json()["api_id"]

    def over():
        record = httpx.get(f"{serve}/v1/runs/{run_id}", auth=AUTH).json()
        calls = [c for c in httpx.get(f"{embedded}/sandbox/calls").json()["calls"]
                 if f"/callbacks/{run_id}/" in c["request"].get("answer_url", "")]
        hung_up = calls and any(cb["kind"] == "hangup" and cb.get("answered_at") for cb in calls[0]["callbacks"])
        return (record, calls[0]) if record["status"] in ("completed", "failed") and hung_up else None

    record, call = wait_for(over, what=f"run {run_id} and its call to end")
    assert len(webhook.calls) == before + 1
    return record, call, webhook.calls[-1]


def test_the_first_speak_is_served_before_the_webhook_returns_and_the_second_after(served, webhook):
    record, call, hook = run_call(served, webhook)
    assert record["status"] == "completed", record["error"]
    assert record["path"] == ["Start", "Call", "Hello", "Look", "Tell", "Bye"]
    callbacks = {cb["kind"]: cb for cb in call["callbacks"]}
    assert [cb["kind"] for cb in call["callbacks"]] == ["ring", "answer", "redirect", "hangup"]
    assert all(cb["status"] == 200 for cb in call["callbacks"])
    first, second = call["documents"]
    assert first.startswith('<Response><Speak voice="WOMAN" language="en-US">One moment while I look that up.</Speak>'
                            '<Redirect method="POST">') and first.endswith("/3/redirect</Redirect></Response>")
    assert "Your order shipped." in second and "Redirect" not in second
    assert call["documents"] == record["documents"]
    answer, redirect = callbacks["answer"], callbacks["redirect"]
    # The first document was in the sandbox's hands before the webhook answered ...
    assert answer["answered_at"] < hook["answered_at"]
    # ... the Redirect it ends in was asked for while the webhook still ran, and held ...
    assert redirect["sent_at"] < hook["answered_at"]
    # ... and answered, with the second document, only after the webhook answered.
    assert hook["answered_at"] < redirect["answered_at"]
    assert redirect["params"]["CallUUID"] == answer["params"]["CallUUID"]  # the call's usual params
    # The run record's step times are when things happened: Look spans the webhook's call.
    hello, look = record["steps"][2], record["steps"][3]
    assert hello["ended_at"] <= iso(answer["answered_at"])
    assert look["started_at"] <= iso(hook["received_at"]) and iso(hook["answered_at"]) <= look["ended_at"]
    assert look["outcome"] == "success" and record["variables"]["Look"]["body"] == {"status": "shipped"}


def test_a_caller_hanging_up_during_the_webhook_ends_the_run_cleanly(served, webhook):
    record, call, hook = run_call(served, webhook, to=HANGS_UP)
    assert record["status"] == "completed" and record["error"] is None
    assert [cb["kind"] for cb in call["callbacks"]] == ["ring", "answer", "hangup"]  # never got to the Redirect
    hangup = call["callbacks"][-1]
    assert hangup["status"] == 200 and hangup["sent_at"] < hook["answered_at"]  # it came during the webhook
    assert len(call["documents"]) == 1 and call["hangup_cause"] == "NORMAL_CLEARING"
    assert record["variables"]["Call"]["hangup_cause"] == "NORMAL_CLEARING"
    assert record["steps"][3]["node"] == "Look" and record["steps"][3]["outcome"] == "success"
