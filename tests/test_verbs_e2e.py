"""Record, Dial and Conference over HTTP: real `callflow sandbox` and `callflow serve`
processes on 127.0.0.1, signed callbacks; the same simulation as `callflow run`, so the
record of the run matches what the sandbox logged."""

from __future__ import annotations

import httpx
import pytest
from processes import SANDBOX_READY, CallflowProcess, clean_env
from sdk_oracle import assert_sdk_accepts
from test_server_e2e import (
    AUTH,
    AUTH_ID,
    PLIVO_ID,
    PLIVO_TOKEN,
    calls_for,
    finished,
    serve_env,
    start_serve,
)

FLOW = """\
spec: callflow/v1
id: verbs
nodes:
  Start:
    type: trigger
    required: [to]
    payload: {from: "+12025551234"}
    next: {http: Call}
  Call:
    type: call_out
    from: "{{ Start.http.params.from }}"
    to: "{{ Start.http.params.to }}"
    next: {answered: Message, no_answer: Done, busy: Done, failed: Done}
  Message:
    type: record
    prompt: "Leave a message."
    next: {recorded: Forward, no_recording: Done}
  Forward:
    type: call_forward
    to: ["+12025550151", "+12025550152"]
    mode: sequential
    record: true
    confirm: {prompt: "Press 5 to take this call.", key: "5"}
    next: {completed: Room, no_answer: Done, busy: Done, failed: Done}
  Room:
    type: conference
    room: "room{{ Start.http.params.to | remove: '+' }}"
    moderator: true
    next: {completed: Done, failed: Done}
  Done:
    type: hangup
"""
CALLEE = "+12025550100"
SCENARIO = f"""\
destinations:
  "{CALLEE}":
    result: answered
    record: {{duration: 7, digits: "#"}}
    forward: {{"+12025550151": busy}}
    conference: {{members: 2, stay: 30}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("verbs")
    (d / "flows").mkdir()
    (d / "flows" / "verbs.yaml").write_text(FLOW)
    (d / "scenario.yaml").write_text(SCENARIO)
    sandbox = CallflowProcess.start(["sandbox", "--port", "0", "--scenario", str(d / "scenario.yaml")],
                                    clean_env(PLIVO_AUTH_ID=PLIVO_ID, PLIVO_AUTH_TOKEN=PLIVO_TOKEN), SANDBOX_READY,
                                    d / "sandbox.log")
    serve, url = start_serve(d, serve_env(sandbox.url), f"sqlite:///{d}/verbs.db")
    yield sandbox.url, url
    serve.stop()
    sandbox.stop()


def test_record_dial_and_conference_over_http(world):
    sandbox_url, serve_url = world
    r = httpx.post(f"{serve_url}/v1/account/{AUTH_ID}/phlo/verbs/", json={"to": CALLEE}, auth=AUTH)
    assert r.status_code == 201, r.text
    run_id = r.json()["api_id"]
    rec = finished(serve_url, run_id)
    assert rec["status"] == "completed", rec
    assert [(s["node"], s["outcome"]) for s in rec["steps"]] == [
        ("Start", "http"), ("Call", "answered"), ("Message", "recorded"), ("Forward", "again"),
        ("Forward", "completed"), ("Room", "completed"), ("Done", None)]
    out = rec["variables"]
    assert out["Message"]["duration"] == 7 and out["Message"]["digits"] == "#"
    assert out["Forward"]["to"] == "+12025550152" and out["Forward"]["recording_url"].endswith(".mp3")
    assert out["Room"]["room"] == "room12025550100" and out["Room"]["member_id"] == "3"
    [call] = calls_for(sandbox_url, run_id)
    kinds = [(cb["kind"], cb.get("status")) for cb in call["callbacks"]]
    assert kinds == [("ring", 200), ("answer", 200), ("action", 200), ("action", 200), ("confirm", 200),
                     ("recording", 200), ("action", 200), ("conference_event", 200), ("conference_event", 200),
                     ("action", 200), ("hangup", 200)], kinds
    confirm = next(cb for cb in call["callbacks"] if cb["kind"] == "confirm")
    assert confirm["params"]["DialBLegTo"] == "+12025550152"
    assert call["documents"] == rec["documents"] and call["error"] is None
    for doc in rec["documents"]:
        assert_sdk_accepts(doc)
