"""`callflow sandbox` end to end: a real sandbox process, a real callback receiver, the official SDK.

The sandbox runs as a subprocess (`python -m engine.cli sandbox --port 0`); the app it
calls back is a small starlette app served by uvicorn in a thread of the test process. The
receiver checks every callback's V3 signature with the official SDK
(`plivo.utils.validate_v3_signature`) and serves Plivo XML. Nothing sleeps for a fixed time:
tests poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qsl

import httpx
import plivo
import plivo.rest.client
import processes
import pytest
import uvicorn
from plivo import exceptions as plivo_exceptions
from plivo.utils import validate_v3_signature
from processes import REPO, SANDBOX_READY, CallflowProcess, clean_env
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.local import call_driver, sandbox_server
from engine.local.sandbox import SandboxCore
from engine.local.scenario import parse_scenario
from engine.local.sharded_client import ShardedClient

AUTH_ID = "MATESTACCOUNT0000001"
AUTH_TOKEN = "test-token-for-the-sandbox"
FROM = "+12025551234"
ANSWERS = "+12025550100"  # not in the scenario: the default (answered, no digits)
PRESSES_2 = "+12025550144"
SLOW = "+12025550155"  # answers after 1 s
BUSY_ONCE = "+12025550166"  # busy on the first call placed to it, then answers
SCENARIO = f"""\
default: answered
destinations:
  "+12025550111": busy
  "+12025550122": no_answer
  "+12025550133": failed
  "{PRESSES_2}": {{result: answered, digits: "2"}}
  "{SLOW}": {{result: answered, answer_after: 1}}
  "{BUSY_ONCE}": [busy, answered]
"""
DEADLINE = 10.0


def wait_for(predicate, timeout: float = DEADLINE, what: str = "condition"):
    """processes.wait_for with this file's deadline and a 20 ms poll."""
    return processes.wait_for(predicate, timeout, what, interval=0.02)


# ------------------------------------------------------------------------------------ the app side
MENU = ('<Response><Speak>Hello</Speak><GetDigits action="{base}/digits?step=1" method="POST" numDigits="1">'
        '<Speak>Press a key</Speak></GetDigits><Speak>Nothing pressed</Speak><Hangup/></Response>')
THANKS = "<Response><Speak>Thanks</Speak><Hangup/></Response>"
SPEAK = "<Response><Speak>Hi there</Speak></Response>"
INVALID = "<Response><Dial><Speak>a Dial holds Number or User only</Speak></Dial></Response>"


class Receiver:
    """The app under test: records every callback and checks its signature with the SDK."""

    def __init__(self, token: str):
        self.token = token
        self.records: list[dict] = []
        self.base_url = ""

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        query = dict(parse_qsl(request.url.query, keep_blank_values=True))
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True)) if request.method == "POST" else {}
        params = form if request.method == "POST" else query
        sig = request.headers.get("x-plivo-signature-v3", "")
        nonce = request.headers.get("x-plivo-signature-v3-nonce", "")
        url = str(request.url)
        self.records.append({
            "method": request.method, "path": request.url.path, "query": query, "form": form,
            "params": params,
            "valid": bool(sig and nonce) and validate_v3_signature(request.method, url, nonce, self.token, sig,
                                                                   dict(params)),
            "valid_with_other_token": bool(sig and nonce) and validate_v3_signature(
                request.method, url, nonce, "another-token", sig, dict(params)),
            "user_agent": request.headers.get("user-agent"),
            "content_type": request.headers.get("content-type"),
        })
        path = request.url.path
        if path == "/answer/menu":
            return Response(MENU.format(base=self.base_url), media_type="application/xml")
        if path == "/answer/speak":
            return Response(SPEAK, media_type="application/xml")
        if path == "/answer/invalid":
            return Response(INVALID, media_type="application/xml")
        if path == "/answer/menu-broken":  # its GetDigits action answers 500
            return Response(MENU.replace("/digits?step=1", "/answer/error").format(base=self.base_url),
                            media_type="application/xml")
        if path == "/answer/error":
            return Response("boom", status_code=500)
        if path == "/answer/slow":
            await asyncio.sleep(2)
            return Response(SPEAK, media_type="application/xml")
        if path == "/digits":
            return Response(THANKS, media_type="application/xml")
        return Response("OK")

    def for_request(self, request_uuid: str) -> list[dict]:
        return [r for r in list(self.records) if r["params"].get("RequestUUID") == request_uuid]

    def hangup(self, request_uuid: str) -> dict | None:
        found = [r for r in self.for_request(request_uuid) if r["path"] == "/hangup"]
        return found[-1] if found else None


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def receiver():
    recv = Receiver(AUTH_TOKEN)
    app = Starlette(routes=[Route("/{path:path}", recv.handle, methods=["GET", "POST"])])
    sock = free_socket()
    recv.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="the receiver to start")
    yield recv
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    scenario = tmp_path_factory.mktemp("sandbox") / "scenario.yaml"
    scenario.write_text(SCENARIO)
    proc = CallflowProcess.start(["sandbox", "--port", "0", "--scenario", str(scenario)],
                                 clean_env(PLIVO_AUTH_ID=AUTH_ID, PLIVO_AUTH_TOKEN=AUTH_TOKEN), SANDBOX_READY,
                                 scenario.parent / "sandbox.log", timeout=15.0)
    yield proc.url
    proc.stop()


def sdk_client(monkeypatch, base_url: str, auth_id: str = AUTH_ID, auth_token: str = AUTH_TOKEN):
    api = f"{base_url}/v1/Account"
    for name in ("PLIVO_API_BASE_URI", "API_VOICE_BASE_URI", "API_VOICE_BASE_URI_FALLBACK_1",
                 "API_VOICE_BASE_URI_FALLBACK_2"):
        monkeypatch.setattr(plivo.rest.client, name, api)
    return plivo.RestClient(auth_id, auth_token)


@pytest.fixture
def sdk(monkeypatch, sandbox):
    return sdk_client(monkeypatch, sandbox)


def call_log(base_url: str, request_uuid: str) -> dict | None:
    calls = httpx.get(f"{base_url}/sandbox/calls").json()["calls"]
    found = [c for c in calls if c["request_uuid"] == request_uuid]
    return found[0] if found else None


def finished_log(base_url: str, request_uuid: str) -> dict:
    """The call's log once its hangup callback has been answered (or failed)."""

    def done():
        log = call_log(base_url, request_uuid)
        if not log:
            return None
        hangups = [c for c in log["callbacks"] if c["kind"] == "hangup"]
        if hangups and (hangups[0].get("status") is not None or hangups[0].get("error")):
            return log
        return None

    return wait_for(done, what=f"call {request_uuid} to end")


def api_call(base_url: str, body: dict, auth=(AUTH_ID, AUTH_TOKEN), account: str = AUTH_ID) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/Account/{account}/Call/", json=body, auth=auth)


CALL_PARAMS = ("CallUUID", "From", "To", "Direction", "CallStatus", "Event", "RequestUUID", "ALegUUID",
               "ALegRequestUUID")


# ------------------------------------------------------------------------------------------- tests
def test_sdk_call_with_sip_headers_is_played_with_signed_callbacks(sdk, sandbox, receiver):
    r = receiver.base_url
    resp = sdk.calls.create(from_=FROM, to_=PRESSES_2, answer_url=f"{r}/answer/menu?tenant=acme",
                            ring_url=f"{r}/ring", hangup_url=f"{r}/hangup", sip_headers="customer=johndoe")
    assert resp.message == "call fired"
    request_uuid = resp.request_uuid
    assert isinstance(request_uuid, str) and request_uuid

    wait_for(lambda: receiver.hangup(request_uuid), what="the hangup callback")
    got = receiver.for_request(request_uuid)
    assert [g["path"] for g in got] == ["/ring", "/answer/menu", "/digits", "/hangup"]
    ring, answer, digits, hangup = got

    # Every callback: POST form, signed V3 (the SDK agrees; another token does not), our user agent.
    for g in got:
        assert g["method"] == "POST"
        assert g["content_type"].startswith("application/x-www-form-urlencoded")
        assert g["valid"] is True, g
        assert g["valid_with_other_token"] is False
        assert g["user_agent"] == "callflow-sandbox"
        assert g["params"]["X-PH-customer"] == "johndoe"
        assert g["params"]["RequestUUID"] == request_uuid

    assert ring["params"]["CallStatus"] == "ringing"
    a = answer["params"]
    assert answer["query"] == {"tenant": "acme"}  # the answer URL's own query kept (and signed)
    assert {k: a[k] for k in ("From", "To", "Direction", "CallStatus", "Event")} == {
        "From": FROM, "To": PRESSES_2, "Direction": "outbound", "CallStatus": "in-progress", "Event": "StartApp"}
    assert a["ALegUUID"] == a["CallUUID"] and a["CallUUID"]
    assert a["ALegRequestUUID"] == request_uuid
    assert set(CALL_PARAMS) <= set(a)

    assert digits["params"]["Digits"] == "2"  # the scenario's key press, posted to the GetDigits action
    assert digits["query"] == {"step": "1"}
    assert digits["params"]["CallUUID"] == a["CallUUID"]

    h = hangup["params"]
    assert h["CallStatus"] == "completed"
    assert h["HangupCause"] == "NORMAL_CLEARING"
    assert h["Duration"].isdigit() and int(h["Duration"]) >= 1
    assert h["BillDuration"] == h["Duration"]
    assert h["CallUUID"] == a["CallUUID"]

    log = finished_log(sandbox, request_uuid)
    assert log["request"]["sip_headers"] == "customer=johndoe"
    assert log["request"]["answer_url"] == f"{r}/answer/menu?tenant=acme"
    assert [c["kind"] for c in log["callbacks"]] == ["ring", "answer", "action", "hangup"]
    assert [c["status"] for c in log["callbacks"]] == [200, 200, 200, 200]
    assert log["documents"] == [MENU.format(base=r), THANKS]
    assert log["hangup_cause"] == "NORMAL_CLEARING"


def test_get_callbacks_carry_params_in_the_query_and_are_signed(sandbox, receiver):
    r = receiver.base_url
    resp = api_call(sandbox, {"from": FROM, "to": ANSWERS, "answer_url": f"{r}/answer/speak?x=1",
                              "answer_method": "GET", "hangup_url": f"{r}/hangup", "hangup_method": "GET"})
    assert resp.status_code == 201
    request_uuid = resp.json()["request_uuid"]
    wait_for(lambda: receiver.hangup(request_uuid), what="the hangup callback")
    got = receiver.for_request(request_uuid)
    assert [(g["method"], g["path"]) for g in got] == [("GET", "/answer/speak"), ("GET", "/hangup")]
    for g in got:
        assert g["valid"] is True and g["valid_with_other_token"] is False
        assert g["form"] == {}
    assert got[0]["query"]["x"] == "1" and got[0]["query"]["CallStatus"] == "in-progress"
    assert got[1]["query"]["HangupCause"] == "NORMAL_CLEARING"  # the document ran out: Plivo hangs up


@pytest.mark.parametrize("destination, status, cause", [
    ("+12025550111", "busy", "USER_BUSY"),
    ("+12025550122", "no-answer", "NO_ANSWER"),
    ("+12025550133", "failed", "UNALLOCATED_NUMBER"),
])
def test_unanswered_destinations_only_hang_up(sandbox, receiver, destination, status, cause):
    r = receiver.base_url
    resp = api_call(sandbox, {"from": FROM, "to": destination, "answer_url": f"{r}/answer/menu",
                              "hangup_url": f"{r}/hangup"})
    assert resp.status_code == 201 and resp.json()["message"] == "call fired"
    request_uuid = resp.json()["request_uuid"]
    hangup = wait_for(lambda: receiver.hangup(request_uuid), what="the hangup callback")
    assert [g["path"] for g in receiver.for_request(request_uuid)] == ["/hangup"]  # no answer callback
    assert hangup["valid"] is True
    p = hangup["params"]
    assert (p["CallStatus"], p["HangupCause"], p["Duration"], p["BillDuration"]) == (status, cause, "0", "0")
    assert p["To"] == destination
    log = finished_log(sandbox, request_uuid)
    assert log["documents"] == [] and log["status"] == status


def test_a_list_of_behaviours_is_one_per_call_placed_and_starts_again_once_the_log_is_cleared(sandbox, receiver):
    def place() -> str:
        resp = api_call(sandbox, {"from": FROM, "to": BUSY_ONCE, "answer_url": f"{receiver.base_url}/answer/speak",
                                  "hangup_url": f"{receiver.base_url}/hangup"})
        assert resp.status_code == 201, resp.text
        return finished_log(sandbox, resp.json()["request_uuid"])["status"]

    assert [place(), place(), place()] == ["busy", "completed", "completed"]  # the last entry from then on
    assert httpx.delete(f"{sandbox}/sandbox/calls").status_code == 200
    assert place() == "busy"


def test_invalid_xml_ends_the_call_with_an_error_cause(sandbox, receiver):
    r = receiver.base_url
    resp = api_call(sandbox, {"from": FROM, "to": ANSWERS, "answer_url": f"{r}/answer/invalid",
                              "hangup_url": f"{r}/hangup"})
    request_uuid = resp.json()["request_uuid"]
    hangup = wait_for(lambda: receiver.hangup(request_uuid), what="the hangup callback")
    assert hangup["params"]["HangupCause"] == "INVALID_ANSWER_XML"
    assert hangup["params"]["CallStatus"] == "completed"
    log = finished_log(sandbox, request_uuid)
    assert log["documents"] == [INVALID]
    assert log["hangup_cause"] == "INVALID_ANSWER_XML"
    assert "Dial" in log["error"]


def test_an_answer_url_error_ends_the_call_and_is_logged_with_its_status(sandbox, receiver):
    r = receiver.base_url
    resp = api_call(sandbox, {"from": FROM, "to": ANSWERS, "answer_url": f"{r}/answer/error",
                              "hangup_url": f"{r}/hangup"})
    request_uuid = resp.json()["request_uuid"]
    hangup = wait_for(lambda: receiver.hangup(request_uuid), what="the hangup callback")
    assert hangup["params"]["HangupCause"] == "ANSWER_URL_ERROR"
    log = finished_log(sandbox, request_uuid)
    answer = log["callbacks"][0]
    assert (answer["kind"], answer["status"]) == ("answer", 500)
    assert log["documents"] == []


def test_a_failed_answer_url_is_followed_by_the_fallback_url_and_nothing_else_is_retried(sandbox, receiver):
    r = receiver.base_url
    dead = f"http://127.0.0.1:{free_socket().getsockname()[1]}"  # bound, never listening: refused
    resp = api_call(sandbox, {"from": FROM, "to": PRESSES_2, "answer_url": f"{r}/answer/error",
                              "fallback_url": f"{r}/answer/menu", "fallback_method": "GET",
                              "ring_url": f"{dead}/ring", "hangup_url": f"{r}/hangup"})
    request_uuid = resp.json()["request_uuid"]
    wait_for(lambda: receiver.hangup(request_uuid), what="the hangup callback")
    log = finished_log(sandbox, request_uuid)
    kinds = [(c["kind"], c["status"], c.get("attempts", 1)) for c in log["callbacks"]]
    # The ring URL refused the connection: tried twice (Plivo's rc=1 on ct), then lost; the
    # answer URL's 500 is not retried (rp=ct,rt) but its fallback is asked, with the same params.
    assert kinds == [("ring", None, 2), ("answer", 500, 1), ("fallback", 200, 1), ("action", 200, 1),
                     ("hangup", 200, 1)]
    fallback = [x for x in receiver.for_request(request_uuid) if x["path"] == "/answer/menu"]
    assert len(fallback) == 1 and fallback[0]["method"] == "GET" and fallback[0]["valid"]
    assert fallback[0]["params"]["CallStatus"] == "in-progress"
    assert log["hangup_cause"] == "NORMAL_CLEARING"


def test_a_failed_action_url_ends_the_call_without_a_fallback(sandbox, receiver):
    r = receiver.base_url
    resp = api_call(sandbox, {"from": FROM, "to": PRESSES_2, "answer_url": f"{r}/answer/menu-broken",
                              "fallback_url": f"{r}/answer/speak", "hangup_url": f"{r}/hangup"})
    request_uuid = resp.json()["request_uuid"]
    hangup = wait_for(lambda: receiver.hangup(request_uuid), what="the hangup callback")
    assert hangup["params"]["HangupCause"] == "ACTION_URL_ERROR"
    log = finished_log(sandbox, request_uuid)
    assert [(c["kind"], c["status"]) for c in log["callbacks"]] == [("answer", 200), ("action", 500),
                                                                  ("hangup", 200)]


def test_api_errors_as_plivo_answers_them(sdk, monkeypatch, sandbox, receiver):
    r = receiver.base_url
    good = {"from": FROM, "to": ANSWERS, "answer_url": f"{r}/answer/speak"}
    before = len(httpx.get(f"{sandbox}/sandbox/calls").json()["calls"])

    wrong = api_call(sandbox, good, auth=(AUTH_ID, "not-the-token"))
    assert wrong.status_code == 401
    assert set(wrong.json()) == {"api_id", "error"}
    assert api_call(sandbox, good, account="MAOTHERACCOUNT000001").status_code == 401  # path account checked
    assert httpx.post(f"{sandbox}/v1/Account/{AUTH_ID}/Call/", json=good).status_code == 401  # no auth at all
    with pytest.raises(plivo_exceptions.AuthenticationError):
        sdk_client(monkeypatch, sandbox, auth_token="not-the-token").calls.create(
            from_=FROM, to_=ANSWERS, answer_url=f"{r}/answer/speak")

    missing = api_call(sandbox, {"from": FROM, "to": ANSWERS})
    assert missing.status_code == 400
    assert missing.json()["error"] == "answer_url parameter is missing" and "api_id" in missing.json()

    bad_headers = api_call(sandbox, {**good, "sip_headers": "customer=john-doe"})
    assert bad_headers.status_code == 400 and "sip_headers" in bad_headers.json()["error"]
    with pytest.raises(plivo_exceptions.ValidationError, match="sip_headers"):
        sdk.calls.create(from_=FROM, to_=ANSWERS, answer_url=f"{r}/answer/speak", sip_headers="customer=john-doe")

    # A form body is accepted like JSON (here: refused for its missing answer_url, not its encoding).
    form = httpx.post(f"{sandbox}/v1/Account/{AUTH_ID}/Call", data={"from": FROM, "to": ANSWERS},
                      auth=(AUTH_ID, AUTH_TOKEN))
    assert form.status_code == 400 and form.json()["error"] == "answer_url parameter is missing"
    malformed = httpx.post(f"{sandbox}/v1/Account/{AUTH_ID}/Call/", content=b'{"from": ',
                           headers={"content-type": "application/json"}, auth=(AUTH_ID, AUTH_TOKEN))
    assert malformed.status_code == 400 and set(malformed.json()) == {"api_id", "error"}
    too_big = api_call(sandbox, {**good, "padding": "x" * (70 * 1024)})
    assert too_big.status_code == 413 and "error" in too_big.json()

    not_found = httpx.get(f"{sandbox}/v1/Account/{AUTH_ID}/Nothing/")
    assert not_found.status_code == 404 and set(not_found.json()) == {"api_id", "error"}
    not_allowed = httpx.get(f"{sandbox}/v1/Account/{AUTH_ID}/Message/", auth=(AUTH_ID, AUTH_TOKEN))
    assert not_allowed.status_code == 405 and set(not_allowed.json()) == {"api_id", "error"}

    # None of these placed a call.
    assert len(httpx.get(f"{sandbox}/sandbox/calls").json()["calls"]) == before


def test_form_encoded_call_and_sdk_message(sdk, sandbox, receiver):
    r = receiver.base_url
    resp = httpx.post(f"{sandbox}/v1/Account/{AUTH_ID}/Call", auth=(AUTH_ID, AUTH_TOKEN),
                      data={"from": FROM, "to": ANSWERS, "answer_url": f"{r}/answer/speak",
                            "hangup_url": f"{r}/hangup"})
    assert resp.status_code == 201 and resp.json()["message"] == "call fired"
    wait_for(lambda: receiver.hangup(resp.json()["request_uuid"]), what="the hangup callback")

    sent = sdk.messages.create(src=FROM, dst="+12025550199", text="hello")
    assert len(sent.message_uuid) == 1
    messages = httpx.get(f"{sandbox}/sandbox/calls").json()["messages"]
    mine = [m for m in messages if m["message_uuid"] == sent.message_uuid[0]]
    assert mine and mine[0]["request"]["text"] == "hello"


def test_concurrent_calls_are_not_serialised(sandbox, receiver):
    """20 calls that each ring for 1 s finish together, not one after another (20 s)."""
    r = receiver.base_url
    started = time.monotonic()
    body = {"from": FROM, "to": "<".join([SLOW] * 20), "answer_url": f"{r}/answer/speak",
            "hangup_url": f"{r}/hangup"}
    resp = api_call(sandbox, body)
    assert resp.status_code == 201
    uuids = resp.json()["request_uuid"]
    assert len(uuids) == 20 and len(set(uuids)) == 20
    wait_for(lambda: all(receiver.hangup(u) for u in uuids), timeout=8, what="20 hangups")
    assert time.monotonic() - started < 8
    assert all(receiver.hangup(u)["params"]["HangupCause"] == "NORMAL_CLEARING" for u in uuids)


def test_health_and_clearing_the_log(sandbox):
    assert httpx.get(f"{sandbox}/sandbox/health").json() == {"status": "ok"}
    cleared = httpx.delete(f"{sandbox}/sandbox/calls")
    assert cleared.status_code == 200
    assert httpx.get(f"{sandbox}/sandbox/calls").json() == {"calls": [], "messages": [], "inbound_messages": []}


# ---------------------------------------------------------------------------------- the command line
def test_bad_scenario_prints_diagnostics_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: sometimes\n")
    done = subprocess.run([sys.executable, "-m", "engine.cli", "sandbox", "--port", "0", "--scenario", str(bad)],
                          cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"{bad}:1:10: error invalid-choice" in done.stderr
    assert "listening" not in done.stdout


def test_without_credentials_a_printed_development_pair_works(monkeypatch, receiver):
    proc = CallflowProcess(["sandbox", "--port", "0"], clean_env())
    try:
        url = proc.wait_line(SANDBOX_READY, timeout=15.0).split()[-1]
        printed = "".join(proc.output)
        auth_id, token = sandbox_server.DEV_AUTH_ID, sandbox_server.DEV_AUTH_TOKEN
        assert auth_id in printed and token in printed
        assert len(auth_id) == 20 and auth_id.startswith("MA") and auth_id[2:].isalnum() and auth_id.isupper()
        resp = sdk_client(monkeypatch, url, auth_id, token).calls.create(
            from_=FROM, to_=ANSWERS, answer_url=f"{receiver.base_url}/answer/speak")
        assert resp.message == "call fired"
    finally:
        proc.stop()


# --------------------------------------------------------------------- in-process (callflow serve --sandbox)
def test_start_sandbox_in_process_and_callback_timeout(monkeypatch, receiver):
    monkeypatch.setattr(call_driver, "CALLBACK_TIMEOUT", 0.3)
    core = SandboxCore(parse_scenario(SCENARIO), auth_id=AUTH_ID, auth_token=AUTH_TOKEN)
    r = receiver.base_url

    async def scenario():
        server, base_url = await sandbox_server.start_sandbox(core, port=0)
        try:
            assert base_url.startswith("http://127.0.0.1:") and base_url == server.base_url
            async with httpx.AsyncClient() as client:
                resp = await client.post(f"{base_url}/v1/Account/{AUTH_ID}/Call/", auth=(AUTH_ID, AUTH_TOKEN),
                                         json={"from": FROM, "to": ANSWERS, "answer_url": f"{r}/answer/slow",
                                               "hangup_url": f"{r}/hangup"})
                assert resp.status_code == 201
                end = time.monotonic() + DEADLINE

                def hung_up():  # the hangup callback has been answered
                    return any(c["kind"] == "hangup" and (c.get("status") or c.get("error"))
                               for c in core.calls[0].log["callbacks"])

                while not hung_up() and time.monotonic() < end:
                    await asyncio.sleep(0.02)
                assert hung_up()
            return resp.json()["request_uuid"]
        finally:
            await server.stop()

    request_uuid = asyncio.run(scenario())
    log = core.calls[0].log
    assert log["hangup_cause"] == "ANSWER_URL_ERROR"
    assert log["callbacks"][0]["kind"] == "answer" and log["callbacks"][0]["status"] is None
    assert "no response within" in log["callbacks"][0]["error"]
    # The hangup callback went out before the server stopped.
    assert wait_for(lambda: receiver.hangup(request_uuid))["params"]["HangupCause"] == "ANSWER_URL_ERROR"


# ------------------------------------------------------------------- the callbacks' sharded client
@contextlib.asynccontextmanager
async def far_end(body: bytes = b"<Response/>"):
    """A keep-alive HTTP/1.1 server answering 200 with `body`; yields (requests seen, base URL)."""
    requests: list[str] = []

    async def handle(reader, writer):
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                requests.append(head.split(" ", 2)[1])
                length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                               if line.lower().startswith("content-length:")), 0)
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield requests, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def test_sharded_client_releases_its_slot_when_the_stream_closes():
    async def main():
        async with far_end() as (requests, url):
            client = ShardedClient(2, 1)
            for _ in range(5):  # more requests than slots: each must give its slot back
                response = await client.send(client.build_request("POST", f"{url}/cb", data={"a": "1"}), stream=True)
                await response.aread()
                await response.aclose()
            plain = await client.send(client.build_request("GET", f"{url}/cb"))
            assert plain.status_code == 200
            assert client.busy == [0, 0] and client.slots._value == 2
            await client.aclose()
        assert len(requests) == 6

    asyncio.run(main())
