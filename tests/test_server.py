"""engine/service/ (app, api, callbacks, runs, sweeper) in process: the trigger API, callbacks, runs API, crash recovery.

The app runs on httpx's ASGI transport with a fake provider (no network), the store is a
real SQLite file. Real processes and the real sandbox: tests/test_server_e2e.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import httpx
import pytest
from conftest import FLOWS

from engine.errors import HandedBack, HttpError, ProviderError
from engine.events import Request, Response
from engine.executor import HANGUP_DOCUMENT
from engine.load.build import check_text, load_flow
from engine.load.discover import load_folder
from engine.service.api import parse_payload
from engine.service.app import create_app
from engine.service.provider import ProviderConfig
from engine.service.runs import Service
from engine.service.settings import Settings
from engine.service.signature import sign_v3_headers
from engine.service.sqlite_store import SQLiteStore
from engine.service.sweeper import sweep
from engine.state import Call, RunState, Waiting, WaitReason

AUTH_ID = "MATRIGGERAPIACCOUNT1"
AUTH_TOKEN = "trigger-token"
PLIVO_ID = "MAPROVIDERACCOUNT001"
PLIVO_TOKEN = "provider-token"
PUBLIC = "https://flows.example.com"
FLOW = "outbound-sip-headers"
TO, CUSTOMER = "+12025550100", "johndoe"
INBOUND = """\
spec: callflow/v1
id: inbound
name: Inbound greeting
nodes:
  Start:
    type: trigger
    next:
      call: Hello
  Hello:
    type: speak
    text: "Hello {{ Start.call.headers.customer }}"
    next: Done
  Done:
    type: hangup
"""


class FakeProvider:
    """Answers the Call API like the sandbox (mode ok), leaves it in doubt, or never answers."""

    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.requests: list[Request] = []

    async def perform(self, req: Request, handing=None) -> Response:
        if handing is not None and not await handing(True):  # as the real one: marked sent, then written
            raise HandedBack("taken back")
        self.requests.append(req)
        if self.mode == "doubt":
            return Response(error="no answer within 10 s", in_doubt=True)
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "error":
            return Response(status=400, body={"api_id": "x", "error": "invalid destination"})
        return Response(status=201, headers={"content-type": "application/json"},
                        body={"message": "call fired", "request_uuid": "req-1", "api_id": "a-1"})

    async def lookup(self, path: str, params: dict | None = None, timeout: float = 5.0):
        raise ProviderError("this fake answers no lookups")  # the provider's API is down: looked up in vain

    async def aclose(self):
        pass


def basic(user=AUTH_ID, password=AUTH_TOKEN) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@contextlib.asynccontextmanager
async def serving(tmp_path, provider=None, grace: float = 60.0, db: str | None = None, run_timeout: float = 15_000.0,
                  store=None):
    flows = {FLOW: load_flow(FLOWS / f"{FLOW}.yaml")}
    inbound, diags = check_text(INBOUND, "inbound.yaml")
    assert inbound is not None, diags
    flows["inbound"] = inbound
    shared, store = store is not None, store or SQLiteStore(db or str(tmp_path / "runs.db"))
    settings = Settings(auth_id=AUTH_ID, auth_token=AUTH_TOKEN, public_url=PUBLIC,
                        provider=ProviderConfig(PLIVO_ID, PLIVO_TOKEN, "https://api.example.com"),
                        in_doubt_seconds=grace, run_timeout_seconds=run_timeout)
    service = Service(flows, store, provider or FakeProvider(), settings)
    app = create_app(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client:
        try:
            yield service, client
        finally:
            for task in list(service.tasks):
                task.cancel()
            await asyncio.gather(*service.tasks, return_exceptions=True)
            if not shared:
                await store.close()


async def drain(service: Service) -> None:
    while service.tasks:
        await asyncio.gather(*list(service.tasks))


async def trigger(client, payload=None, **kw):
    payload = {"to": TO, "customer": CUSTOMER} if payload is None else payload
    return await client.post(f"/v1/account/{AUTH_ID}/phlo/{FLOW}/", json=payload, headers=basic(), **kw)


def call_params(status="in-progress", **extra) -> dict:
    p = {"CallUUID": "call-1", "From": "+12025551234", "To": TO, "Direction": "outbound", "CallStatus": status,
         "RequestUUID": "req-1", "ALegUUID": "call-1", "ALegRequestUUID": "req-1", "X-PH-customer": CUSTOMER}
    p.update(extra)
    return p


async def callback(client, run_id, seq, kind, params, *, sign_url=None, token=PLIVO_TOKEN, method="POST",
                   headers=None):
    path = f"/callbacks/{run_id}/{seq}/{kind}"
    url = (sign_url or PUBLIC) + path
    h = sign_v3_headers(method, url, params, token) if headers is None else headers
    if method == "GET":
        return await client.get(path, params=params, headers=h)
    return await client.post(path, data=params, headers=h)


async def runs(service) -> list[dict]:
    return (await service.store.list_runs(limit=500))[0]


def go(coro):
    return asyncio.run(coro)


# -- trigger API ---------------------------------------------------------------------------------
def test_trigger_creates_a_run_and_places_the_call(tmp_path):
    async def main():
        provider = FakeProvider()
        async with serving(tmp_path, provider) as (service, client):
            r = await trigger(client)
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["phlo_id"] == FLOW and body["message"] and set(body) == {"phlo_id", "api_id", "message"}
            await drain(service)
            [req] = provider.requests
            assert req.provider and req.url == f"https://api.example.com/v1/Account/{PLIVO_ID}/Call/"
            assert req.json["sip_headers"] == "customer=johndoe"
            assert req.json["answer_url"] == f"{PUBLIC}/callbacks/{body['api_id']}/1/answer"
            record = (await client.get(f"/v1/runs/{body['api_id']}", headers=basic())).json()
            assert record["status"] == "waiting" and record["path"] == ["Start", "Call"]
            assert record["requests"][0]["json"]["to"] == TO
            # the trailing slash is optional
            r2 = await client.post(f"/v1/account/{AUTH_ID}/phlo/{FLOW}", json={"to": TO, "customer": "x"},
                                   headers=basic())
            assert r2.status_code == 201

    go(main())


@pytest.mark.parametrize("case", ["no-auth", "bad-password", "bad-user", "url-account", "not-basic", "garbage"])
def test_trigger_401_creates_no_run(tmp_path, case):
    headers = {"no-auth": {}, "bad-password": basic(password="nope"), "bad-user": basic(user="MAOTHER"),
               "url-account": basic(), "not-basic": {"Authorization": "Bearer x"},
               "garbage": {"Authorization": "Basic !!!"}}[case]
    account = "MAOTHERACCOUNT000001" if case == "url-account" else AUTH_ID

    async def main():
        async with serving(tmp_path) as (service, client):
            r = await client.post(f"/v1/account/{account}/phlo/{FLOW}/", json={"to": TO, "customer": "c"},
                                  headers=headers)
            assert r.status_code == 401
            assert set(r.json()) == {"api_id", "error"}
            assert await runs(service) == []

    go(main())


def test_trigger_404_unknown_flow(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            r = await client.post(f"/v1/account/{AUTH_ID}/phlo/nope/", json={}, headers=basic())
            assert r.status_code == 404 and "nope" in r.json()["error"]
            assert (await client.get("/v1/phlo/nope/", headers=basic())).status_code == 404
            assert await runs(service) == []

    go(main())


def test_trigger_413_by_content_length_and_by_streamed_size(tmp_path):
    big = json.dumps({"to": TO, "customer": "c", "pad": "x" * 70_000}).encode()

    async def chunks():
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    async def main():
        async with serving(tmp_path) as (service, client):
            url = f"/v1/account/{AUTH_ID}/phlo/{FLOW}/"
            h = {**basic(), "content-type": "application/json"}
            r = await client.post(url, content=big, headers=h)
            assert r.status_code == 413
            r = await client.post(url, content=chunks(), headers=h)  # chunked: no Content-Length
            assert r.status_code == 413
            # a lying Content-Length is caught while streaming
            r = await client.post(url, content=chunks(), headers={**h, "content-length": "10"})
            assert r.status_code in (400, 413)
            assert await runs(service) == []

    go(main())


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b'{"to": {"a": 1}}', b'{"to": [1]}',
                                  b'{"x": NaN}', b"\xff\xfe"])
def test_trigger_400_body_not_an_object_of_scalars(tmp_path, body):
    async def main():
        async with serving(tmp_path) as (service, client):
            r = await client.post(f"/v1/account/{AUTH_ID}/phlo/{FLOW}/", content=body,
                                  headers={**basic(), "content-type": "application/json"})
            assert r.status_code == 400, r.text
            assert set(r.json()) == {"api_id", "error"}
            assert await runs(service) == []

    go(main())


def test_trigger_400_names_the_missing_or_empty_keys(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            r = await trigger(client, {"to": TO})
            assert r.status_code == 400 and "customer" in r.json()["error"] and "to," not in r.json()["error"]
            r = await client.post(f"/v1/account/{AUTH_ID}/phlo/{FLOW}/", headers=basic())  # empty body = {}
            assert r.status_code == 400 and "to" in r.json()["error"] and "customer" in r.json()["error"]
            r = await trigger(client, {"to": "", "customer": "  "})  # empty values supply nothing
            assert r.status_code == 400 and "to" in r.json()["error"] and "customer" in r.json()["error"]
            assert await runs(service) == []

    go(main())


def test_payload_parsing():
    assert parse_payload(b"") == {} and parse_payload(b" {} ") == {}
    assert parse_payload(b'{"a": 1, "b": true, "c": null, "d": "x"}') == {"a": 1, "b": True, "c": None, "d": "x"}
    with pytest.raises(HttpError):
        parse_payload(b"{")


def test_get_phlo_for_the_sdk(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            r = await client.get(f"/v1/phlo/{FLOW}/", headers=basic())
            assert r.status_code == 200
            body = r.json()
            assert body["phlo_id"] == FLOW and body["name"] and body["created_on"] and body["api_id"]
            assert (await client.get(f"/v1/phlo/{FLOW}/")).status_code == 401

    go(main())


# -- callbacks -----------------------------------------------------------------------------------
async def started(client, service) -> str:
    r = await trigger(client)
    assert r.status_code == 201
    await drain(service)
    return r.json()["api_id"]


def test_a_whole_call_through_callbacks(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            run_id = await started(client, service)
            r = await callback(client, run_id, 1, "ring", call_params("ringing"))
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
            r = await callback(client, run_id, 1, "answer", call_params())
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
            assert r.text.startswith("<Response><Speak") and r.text.endswith("<Hangup/></Response>")
            again = await callback(client, run_id, 1, "answer", call_params())
            assert again.text == r.text  # a repeated callback replays the document served
            r = await callback(client, run_id, 1, "hangup",
                               call_params("completed", HangupCause="NORMAL_CLEARING", Duration="4"))
            assert r.status_code == 200
            record = (await client.get(f"/v1/runs/{run_id}", headers=basic())).json()
            assert record["status"] == "completed" and record["path"] == ["Start", "Call", "Greet", "Done"]
            assert record["variables"]["Call"]["duration"] == 4
            assert len(record["documents"]) == 1
            # finished: answer again -> the same document, an unknown run -> Hangup
            assert (await callback(client, run_id, 1, "answer", call_params())).text == r_text(record)
            unknown = await callback(client, "no-such-run", 1, "answer", call_params())
            assert unknown.status_code == 200 and unknown.text == HANGUP_DOCUMENT

    def r_text(record):
        return record["documents"][0]

    go(main())


def test_repeated_hangup_is_processed_once(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            run_id = await started(client, service)
            await callback(client, run_id, 1, "answer", call_params())
            hangup = call_params("completed", HangupCause="NORMAL_CLEARING", Duration="4")
            await callback(client, run_id, 1, "hangup", hangup)
            first = (await service.store.load(run_id)).state.record()
            for _ in range(3):
                r = await callback(client, run_id, 1, "hangup", dict(hangup, Duration="99"))
                assert r.status_code == 200
            after = (await service.store.load(run_id)).state.record()
            assert after == first  # a finished run is not even re-saved
            assert after["variables"]["Call"]["duration"] == 4

    go(main())


@pytest.mark.parametrize("forgery", ["missing", "wrong-token", "host-header-url", "tampered", "no-nonce"])
def test_callback_without_a_valid_signature_is_403_and_changes_nothing(tmp_path, forgery):
    async def main():
        async with serving(tmp_path) as (service, client):
            run_id = await started(client, service)
            before = await service.store.load(run_id)
            params = call_params()
            url = f"{PUBLIC}/callbacks/{run_id}/1/answer"
            if forgery == "missing":
                r = await callback(client, run_id, 1, "answer", params, headers={})
            elif forgery == "wrong-token":
                r = await callback(client, run_id, 1, "answer", params, token="guess")
            elif forgery == "host-header-url":  # signed for the Host the request came in on
                r = await callback(client, run_id, 1, "answer", params, sign_url="http://testserver")
            elif forgery == "tampered":
                h = sign_v3_headers("POST", url, params, PLIVO_TOKEN)
                r = await callback(client, run_id, 1, "answer", dict(params, CallUUID="evil"), headers=h)
            else:
                h = sign_v3_headers("POST", url, params, PLIVO_TOKEN)
                del h["X-Plivo-Signature-V3-Nonce"]
                r = await callback(client, run_id, 1, "answer", params, headers=h)
            assert r.status_code == 403
            after = await service.store.load(run_id)
            assert after.version == before.version and after.state == before.state

    go(main())


def test_get_callbacks_are_signed_over_the_query(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            run_id = await started(client, service)
            r = await callback(client, run_id, 1, "answer", call_params(), method="GET")
            assert r.status_code == 200 and "<Speak" in r.text
            bad = await callback(client, run_id, 1, "answer", call_params(), method="GET", token="x")
            assert bad.status_code == 403

    go(main())


def test_callback_body_limit_and_unknown_kind(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            run_id = await started(client, service)
            big = call_params(Pad="x" * 70_000)
            r = await callback(client, run_id, 1, "answer", big)
            assert r.status_code == 413
            r = await callback(client, run_id, 1, "bogus", call_params())
            assert r.status_code == 404
            assert (await service.store.load(run_id)).state.status == "waiting"

    go(main())


def test_inbound_call_starts_a_run_and_answers_with_its_first_document(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            params = {"CallUUID": "in-1", "From": "+12025550199", "To": "+12025551234", "Direction": "inbound",
                      "CallStatus": "ringing", "X-PH-customer": "janedoe"}
            h = sign_v3_headers("POST", f"{PUBLIC}/callbacks/inbound/inbound", params, PLIVO_TOKEN)
            r = await client.post("/callbacks/inbound/inbound", data=params, headers=h)
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
            assert "Hello janedoe" in r.text and r.text.endswith("<Hangup/></Response>")
            [summary] = await runs(service)
            assert summary["flow_id"] == "inbound"
            unsigned = await client.post("/callbacks/inbound/inbound", data=params)
            assert unsigned.status_code == 403
            h = sign_v3_headers("POST", f"{PUBLIC}/callbacks/inbound/nope", params, PLIVO_TOKEN)
            r = await client.post("/callbacks/inbound/nope", data=params, headers=h)
            assert r.status_code == 200 and r.text == HANGUP_DOCUMENT
            assert len(await runs(service)) == 1
            assert summary["status"] == "waiting"  # for the hangup: the run record gets its duration
            # the application's hangup URL: the run is found by CallUUID
            hangup = dict(params, CallStatus="completed", HangupCause="NORMAL_CLEARING", Duration="7")
            path = "/callbacks/inbound/inbound/hangup"
            assert (await client.post(path, data=hangup)).status_code == 403
            h = sign_v3_headers("POST", PUBLIC + path, hangup, PLIVO_TOKEN)
            r = await client.post(path, data=hangup, headers=h)
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
            state = (await service.store.load(summary["run_id"])).state
            assert state.status == "completed" and state.variables["Start"]["duration"] == 7
            other = dict(hangup, CallUUID="unknown")
            h = sign_v3_headers("POST", PUBLIC + path, other, PLIVO_TOKEN)
            assert (await client.post(path, data=other, headers=h)).status_code == 200

    go(main())


def test_a_repeated_inbound_answer_request_does_not_start_a_second_run(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            params = {"CallUUID": "in-2", "From": "+12025550199", "To": "+12025551234", "Direction": "inbound",
                      "CallStatus": "ringing", "X-PH-customer": "janedoe"}
            path = "/callbacks/inbound/inbound"
            first = await client.post(path, data=params, headers=sign_v3_headers("POST", PUBLIC + path, params,
                                                                                  PLIVO_TOKEN))
            again = await client.post(path, data=params, headers=sign_v3_headers("POST", PUBLIC + path, params,
                                                                                  PLIVO_TOKEN))
            assert first.text == again.text and "Hello janedoe" in again.text
            assert len(await runs(service)) == 1
            # a flow with no `call` route takes no incoming calls: rejected, and no run is made
            path = f"/callbacks/inbound/{FLOW}"
            other = dict(params, CallUUID="in-3")
            r = await client.post(path, data=other, headers=sign_v3_headers("POST", PUBLIC + path, other,
                                                                             PLIVO_TOKEN))
            assert r.text == '<Response><Hangup reason="rejected"/></Response>'
            assert len(await runs(service)) == 1
            # the call's run was started elsewhere first (another process, another flow): the store
            # refuses a second (RunExists, the unique inbound CallUUID) and the answer is that run's
            elsewhere = RunState("elsewhere", "retired-flow", status="waiting", call=Call("Start", 0, up=True, uuid="in-4"),
                                 waiting=Waiting("Start", 0, WaitReason.HANGUP))
            await service.store.create_run(elsewhere)
            path, taken = "/callbacks/inbound/inbound", dict(params, CallUUID="in-4")
            r = await client.post(path, data=taken, headers=sign_v3_headers("POST", PUBLIC + path, taken, PLIVO_TOKEN))
            assert r.status_code == 200 and r.text == HANGUP_DOCUMENT  # its flow is not served here
            assert [x["run_id"] for x in await runs(service) if x["flow_id"] == "retired-flow"] == ["elsewhere"]
            assert len(await runs(service)) == 2

    go(main())


# -- requests in doubt, restarts --------------------------------------------------------------------
def test_in_doubt_request_is_not_resent_and_fails_the_node_after_the_grace(tmp_path):
    async def main():
        provider = FakeProvider("doubt")
        async with serving(tmp_path, provider, grace=0.2) as (service, client):
            run_id = await started(client, service)
            assert (await service.store.load(run_id)).state.waiting.reason is WaitReason.RESPONSE
            assert await sweep(service) == 0  # not yet: within the grace period
            await asyncio.sleep(0.25)
            assert await sweep(service) == 0  # looked up at the provider, which did not answer: still in doubt
            await asyncio.sleep(1.0)  # past the bound (6 grace periods in doubt)
            assert await sweep(service) == 1
            record = (await service.store.load(run_id)).state.record()
            assert record["status"] == "completed" and record["path"] == ["Start", "Call", "Done"]
            assert record["steps"][1]["outcome"] == "failed" and "doubt" in record["steps"][1]["error"]
            assert len(provider.requests) == 1  # never resent
            assert await sweep(service) == 0

    go(main())


def test_in_doubt_request_is_proven_by_the_calls_callback(tmp_path):
    async def main():
        provider = FakeProvider("doubt")
        async with serving(tmp_path, provider, grace=0.2) as (service, client):
            run_id = await started(client, service)
            r = await callback(client, run_id, 1, "answer", call_params())
            assert "<Speak" in r.text
            await asyncio.sleep(0.25)
            assert await sweep(service) == 0
            await callback(client, run_id, 1, "hangup", call_params("completed", Duration="3"))
            state = (await service.store.load(run_id)).state
            assert state.status == "completed" and state.path == ["Start", "Call", "Greet", "Done"]
            assert len(provider.requests) == 1

    go(main())


def test_runs_whose_callbacks_never_come_give_up_after_the_run_timeout(tmp_path):
    async def main():
        async with serving(tmp_path, run_timeout=0.3) as (service, client):
            ringing = await started(client, service)  # the Call request went; no callback ever comes
            answered = await started(client, service)
            await callback(client, answered, 1, "answer", call_params())  # path done, waits for hangup
            assert await sweep(service) == 0
            await asyncio.sleep(0.35)
            assert await sweep(service) == 2
            state = (await service.store.load(ringing)).state
            assert state.status == "failed" and "no provider callback within 0.3 s" in state.error
            assert "'Call' waited for its call" in state.error
            state = (await service.store.load(answered)).state
            assert state.status == "completed" and state.path == ["Start", "Call", "Greet", "Done"]
            assert state.record()["steps"][1]["error"] == "no hangup callback within 0.3 s"
            assert await sweep(service) == 0
            r = await callback(client, ringing, 1, "answer", call_params())  # far too late
            assert r.text == "<Response><Hangup/></Response>"

    go(main())


def test_a_restarted_service_completes_runs_of_the_one_that_died(tmp_path):
    db = str(tmp_path / "shared.db")

    async def first():
        async with serving(tmp_path, FakeProvider("hang"), db=db) as (service, client):
            r = await trigger(client)
            run_id = r.json()["api_id"]
            while not service.provider.requests:
                await asyncio.sleep(0.01)
            return run_id  # dies with the Call request in flight (tasks cancelled, nothing saved)

    async def second(run_id):
        provider = FakeProvider()
        async with serving(tmp_path, provider, db=db) as (service, client):
            state = (await service.store.load(run_id)).state
            assert state.waiting == Waiting("Call", 1, WaitReason.RESPONSE)
            assert len(state.requests) == 1  # the intent was recorded before the request went out
            r = await callback(client, run_id, 1, "answer", call_params())
            assert "<Speak" in r.text
            await callback(client, run_id, 1, "hangup", call_params("completed", Duration="2"))
            assert (await service.store.load(run_id)).state.status == "completed"
            assert provider.requests == []  # nothing resent

    run_id = go(first())
    go(second(run_id))


def test_provider_error_takes_failed(tmp_path):
    async def main():
        async with serving(tmp_path, FakeProvider("error")) as (service, client):
            run_id = await started(client, service)
            record = (await service.store.load(run_id)).state.record()
            assert record["status"] == "completed" and record["steps"][1]["outcome"] == "failed"

    go(main())


# -- runs API ----------------------------------------------------------------------------------------
def test_runs_api(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            ids = [await started(client, service) for _ in range(5)]
            assert (await client.get(f"/v1/runs/{ids[0]}")).status_code == 401
            assert (await client.get("/v1/runs/nope", headers=basic())).status_code == 404
            r = await client.get("/v1/runs", params={"limit": 2}, headers=basic())
            page = r.json()
            assert [x["run_id"] for x in page["runs"]] == ids[::-1][:2] and page["next_cursor"]
            r = await client.get("/v1/runs", params={"limit": 10, "cursor": page["next_cursor"]}, headers=basic())
            assert [x["run_id"] for x in r.json()["runs"]] == ids[::-1][2:] and r.json()["next_cursor"] is None
            r = await client.get("/v1/runs", params={"flow_id": "inbound"}, headers=basic())
            assert r.json()["runs"] == []
            r = await client.get("/v1/runs", params={"status": "waiting"}, headers=basic())
            assert len(r.json()["runs"]) == 5
            for bad in ({"status": "bogus"}, {"limit": "x"}, {"limit": "0"}, {"cursor": "abc"}):
                assert (await client.get("/v1/runs", params=bad, headers=basic())).status_code == 400
            assert (await client.get("/v1/runs")).status_code == 401
            flows = (await client.get("/v1/flows", headers=basic())).json()["flows"]
            assert {f["id"]: f["nodes"] for f in flows} == {FLOW: 4, "inbound": 3}
            assert all(f["valid"] for f in flows)

    go(main())


def test_runs_are_searched_by_the_number_of_either_end_of_their_call(tmp_path):
    """GET /v1/runs?number=: an incoming call's caller (Plivo sends From without its +) and
    callee, an outbound call's callee, typed with or without + and with spaces."""
    async def main():
        async with serving(tmp_path) as (service, client):
            outbound = await started(client, service)  # the seed flow calls TO
            params = {"CallUUID": "in-search", "From": "12025550199", "To": "12025551234", "Direction": "inbound",
                      "CallStatus": "ringing", "X-PH-customer": "janedoe"}
            path = "/callbacks/inbound/inbound"
            h = sign_v3_headers("POST", PUBLIC + path, params, PLIVO_TOKEN)
            assert (await client.post(path, data=params, headers=h)).status_code == 200

            async def found(number):
                r = await client.get("/v1/runs", params={"number": number}, headers=basic())
                assert r.status_code == 200, r.text
                return [(x["flow_id"], x["run_id"] == outbound) for x in r.json()["runs"]]

            for typed in ("+12025550199", "12025550199", "+1 202 555 0199", "1-202-555-0199"):
                assert await found(typed) == [("inbound", False)], typed
            # the incoming call's callee, and the caller id of the outbound run: both ends count
            assert await found("+12025551234") == [("inbound", False), (FLOW, True)]
            state = (await service.store.load(outbound)).state
            callee = state.variables["Call"]["to"]
            assert await found(callee) == [(FLOW, True)]
            assert await found("+19990000000") == []
            r = await client.get("/v1/runs", params={"number": "1" * 300}, headers=basic())
            assert r.status_code == 400 and "number" in r.json()["error"]

    go(main())


def test_load_folder_refuses_invalid_and_duplicate_flows(tmp_path):
    (tmp_path / "a.yaml").write_text((FLOWS / f"{FLOW}.yaml").read_text())
    (tmp_path / "a.test.yaml").write_text("not: a flow")
    (tmp_path / "a.scenario.yaml").write_text("default: busy")
    flows, diags = load_folder(tmp_path)
    assert list(flows) == [FLOW] and not [d for d in diags if d.severity == "error"]
    (tmp_path / "b.yml").write_text((FLOWS / f"{FLOW}.yaml").read_text())
    (tmp_path / "c.yaml").write_text("spec: callflow/v1\nid: c\nnodes: {}\n")
    flows, diags = load_folder(tmp_path)
    codes = {d.code for d in diags if d.severity == "error"}
    assert "duplicate-flow-id" in codes and len(codes) >= 2


def test_two_services_on_one_store_resolve_a_race_by_version(tmp_path):
    """Two processes (here two Services, each with its own run locks, on one store) get the
    same answer callback at once: the second save hits the version check, reloads,
    re-applies the callback (a replay) and both answer the same document; the run holds it
    once. (Across real processes on PostgreSQL: tests/test_store_pg.py.)"""
    shared = SQLiteStore(str(tmp_path / "shared.db"))
    conflicts = []
    a_saved = asyncio.Event()

    class SlowSaves:
        """B's view of the store: its save waits until A saved."""

        def __getattr__(self, name):
            return getattr(shared, name)

        async def save(self, state, version, lease=None):
            await a_saved.wait()  # B loaded the same version as A, and saves after A
            try:
                return await shared.save(state, version, lease)
            except Exception as e:
                conflicts.append(type(e).__name__)
                raise

    async def main():
        async with serving(tmp_path, store=shared) as (a, client_a), \
                serving(tmp_path, store=SlowSaves()) as (b, client_b):
            run_id = await started(client_a, a)
            task_b = asyncio.create_task(callback(client_b, run_id, 1, "answer", call_params()))
            await asyncio.sleep(0.05)  # B has loaded and advanced; it waits to save
            r_a = await callback(client_a, run_id, 1, "answer", call_params())
            a_saved.set()
            r_b = await task_b
            assert r_a.status_code == r_b.status_code == 200
            assert r_a.text == r_b.text and "<Speak" in r_a.text
            assert conflicts == ["Conflict"]
            state = (await a.store.load(run_id)).state
            assert len(state.documents) == 1 and state.path == ["Start", "Call", "Greet", "Done"]
        await shared.close()

    go(main())


def test_settings_from_the_environment():
    from engine.service.settings import settings_from_env

    s = settings_from_env("http://127.0.0.1:8080", {})
    assert s.generated_credentials and s.auth_id.startswith("MA") and len(s.auth_id) == 20 and s.auth_token
    assert s.public_url == "http://127.0.0.1:8080" and s.in_doubt_seconds == 60
    assert s.provider.api_url == "https://api.plivo.com" and s.auth_token not in repr(s)
    s = settings_from_env("http://127.0.0.1:8080", {
        "CALLFLOW_AUTH_ID": AUTH_ID, "CALLFLOW_AUTH_TOKEN": AUTH_TOKEN, "CALLFLOW_PUBLIC_URL": "https://x.example/",
        "CALLFLOW_IN_DOUBT_SECONDS": "0.5", "PLIVO_AUTH_ID": PLIVO_ID, "PLIVO_AUTH_TOKEN": PLIVO_TOKEN,
        "PLIVO_API_URL": "http://127.0.0.1:9/", "CALLFLOW_PROVIDER_CONNECTIONS": "8"})
    assert not s.generated_credentials and s.auth_id == AUTH_ID and s.public_url == "https://x.example"
    assert s.in_doubt_seconds == 0.5 and s.provider.api_url == "http://127.0.0.1:9" and s.provider_connections == 8
    assert PLIVO_TOKEN not in repr(s)
    for bad in ({"CALLFLOW_AUTH_ID": AUTH_ID}, {"CALLFLOW_IN_DOUBT_SECONDS": "soon"},
                {"CALLFLOW_IN_DOUBT_SECONDS": "-1"}, {"CALLFLOW_PROVIDER_CONNECTIONS": "0"}):
        with pytest.raises(ValueError):
            settings_from_env("http://127.0.0.1:8080", bad)
