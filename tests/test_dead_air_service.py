"""No dead air under `callflow serve`, in process (engine/service/redirects.py): the answer
callback is answered before the webhook returns, the Redirect is held until the next
document is stored (or answered with a keep-alive), a hangup meanwhile ends the run cleanly.
The webhook here is an asyncio.Event the test sets: every assertion is about order, none
about time. Real processes: tests/test_dead_air_e2e.py."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from test_server import (
    AUTH_ID,
    AUTH_TOKEN,
    PLIVO_ID,
    PLIVO_TOKEN,
    PUBLIC,
    basic,
    call_params,
    callback,
    drain,
    go,
)

from engine.events import Request, Response
from engine.load.build import check_text
from engine.service.app import create_app
from engine.service.provider import ProviderConfig
from engine.service.runs import Service
from engine.service.settings import Settings
from engine.service.signature import sign_v3_headers
from engine.service.sqlite_store import SQLiteStore

FLOW = """\
spec: callflow/v1
id: lookup
name: Look an order up during the call
nodes:
  Start: {type: trigger, next: Call}
  Call: {type: call_out, from: "+12025551234", to: "+12025550100", next: {answered: Hello}}
  Hello: {type: speak, text: "One moment.", next: Look}
  Look: {type: http_request, url: "https://orders.example.com/1", next: {success: Tell, failed: Tell}}
  Tell: {type: speak, text: "It shipped.", next: Bye}
  Bye: {type: hangup}
"""
REDIRECT = f"{PUBLIC}/callbacks/{{run}}/3/redirect"
INBOUND = FLOW.replace("id: lookup", "id: inbound").replace("next: Call", "next: {call: Hello}")


class SlowWebhook:
    """The Call API answers at once; the webhook only once the test lets it (`done`)."""

    def __init__(self):
        self.called = asyncio.Event()
        self.done = asyncio.Event()

    async def perform(self, req: Request, handing=None) -> Response:
        if handing is not None:
            await handing(True)
        if req.provider:
            return Response(201, body={"message": "call fired", "request_uuid": "req-1"})
        self.called.set()
        await self.done.wait()
        return Response(200, headers={"content-type": "application/json"}, body={"ok": True})

    async def aclose(self):
        pass


@contextlib.asynccontextmanager
async def serving(tmp_path, hold: float | None = None, store=None):
    flows = {}
    for text in (FLOW, INBOUND):
        flow, diagnostics = check_text(text, "flow.yaml")
        assert flow is not None, diagnostics
        flows[flow.id] = flow
    shared, store = store is not None, store or SQLiteStore(str(tmp_path / "runs.db"))
    settings = Settings(auth_id=AUTH_ID, auth_token=AUTH_TOKEN, public_url=PUBLIC,
                        provider=ProviderConfig(PLIVO_ID, PLIVO_TOKEN, "https://api.example.com"))
    webhook = SlowWebhook()
    service = Service(flows, store, webhook, settings)
    if hold is not None:
        service.redirect_hold = hold
    async with httpx.AsyncClient(transport=httpx.ASGITransport(create_app(service)),
                                 base_url="http://testserver") as client:
        try:
            yield service, client, webhook
        finally:
            webhook.done.set()
            await asyncio.gather(*service.tasks, return_exceptions=True)
            if not shared:
                await store.close()


async def answered(service, client) -> tuple[str, httpx.Response]:
    """Trigger a run, let its call be placed and answer it: (run id, the answer's response)."""
    r = await client.post(f"/v1/account/{AUTH_ID}/phlo/lookup/", json={}, headers=basic())
    assert r.status_code == 201, r.text
    await drain(service)
    run_id = r.json()["api_id"]
    async with asyncio.timeout(20):  # a deadline, not a measure: held behind the webhook, it never comes
        return run_id, await callback(client, run_id, 1, "answer", call_params())


def test_the_answer_is_served_before_the_webhook_returns_and_the_redirect_after(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client, webhook):
            run_id, answer = await answered(service, client)
            await webhook.called.wait()  # the webhook is called after the answer went out...
            assert not webhook.done.is_set()  # ... and it had not returned when the answer did
            assert answer.text == ('<Response><Speak voice="WOMAN" language="en-US">One moment.</Speak>'
                                   f'<Redirect method="POST">{REDIRECT.format(run=run_id)}</Redirect></Response>')
            held = asyncio.create_task(callback(client, run_id, 3, "redirect", call_params()))
            await asyncio.sleep(0.2)  # a chance to answer too early (it must not: nothing is stored yet)
            assert not held.done()
            webhook.done.set()
            redirected = await held
            assert redirected.status_code == 200
            assert redirected.text == ('<Response><Speak voice="WOMAN" language="en-US">It shipped.</Speak>'
                                       '<Hangup/></Response>')
            again = await callback(client, run_id, 3, "redirect", call_params())  # a provider retry
            assert again.text == redirected.text
            record = (await client.get(f"/v1/runs/{run_id}", headers=basic())).json()
            assert record["documents"] == [answer.text, redirected.text] and record["status"] == "waiting"
            assert record["steps"][3]["node"] == "Look" and record["steps"][3]["outcome"] == "success"

    go(main())


def test_a_redirect_held_past_the_bound_gets_a_keep_alive(tmp_path):
    async def main():
        async with serving(tmp_path, hold=0.05) as (service, client, webhook):
            run_id, _ = await answered(service, client)
            r = await callback(client, run_id, 3, "redirect", call_params())
            url = REDIRECT.format(run=run_id)
            assert r.text == f'<Response><Wait length="1"/><Redirect method="POST">{url}</Redirect></Response>'
            webhook.done.set()
            await drain(service)
            r = await callback(client, run_id, 3, "redirect", call_params())
            assert "It shipped." in r.text
            record = (await client.get(f"/v1/runs/{run_id}", headers=basic())).json()
            assert len(record["documents"]) == 2  # the keep-alive is no document of the run

    go(main())


def test_a_hangup_during_the_webhook_is_handled_and_the_run_ends(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client, webhook):
            run_id, _ = await answered(service, client)
            hangup = asyncio.create_task(callback(
                client, run_id, 1, "hangup", call_params("completed", HangupCause="NORMAL_CLEARING", Duration="1")))
            while service.locks._locks[run_id][1] < 2:  # the hangup is in, waiting on the run the request holds
                await asyncio.sleep(0.01)
            webhook.done.set()
            assert (await hangup).status_code == 200
            await drain(service)
            record = (await client.get(f"/v1/runs/{run_id}", headers=basic())).json()
            assert record["status"] == "completed" and record["error"] is None
            assert record["variables"]["Call"]["hangup_cause"] == "NORMAL_CLEARING"
            assert record["path"][-1] == "Bye" and len(record["documents"]) == 2

    go(main())


def test_a_redirect_reaching_another_process_waits_for_the_store(tmp_path):
    """Two services on one store (as several processes on PostgreSQL): the one that did not
    make the request learns of the next document by reading the store."""
    async def main():
        async with serving(tmp_path) as (service, client, webhook):
            async with serving(tmp_path, store=service.store) as (_, other, _):
                run_id, _ = await answered(service, client)
                held = asyncio.create_task(callback(other, run_id, 3, "redirect", call_params()))
                await webhook.called.wait()
                assert not held.done()
                webhook.done.set()
                assert "It shipped." in (await held).text

    go(main())


def test_an_incoming_call_is_answered_before_the_webhook_returns(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client, webhook):
            params = {"CallUUID": "in-1", "From": "+12025550199", "To": "+12025551234", "Direction": "inbound",
                      "CallStatus": "ringing"}
            headers = sign_v3_headers("POST", f"{PUBLIC}/callbacks/inbound/inbound", params, PLIVO_TOKEN)
            async with asyncio.timeout(20):  # a deadline, not a measure
                r = await client.post("/callbacks/inbound/inbound", data=params, headers=headers)
            await webhook.called.wait()
            assert not webhook.done.is_set() and "One moment." in r.text and r.text.endswith(
                "/2/redirect</Redirect></Response>")  # the inbound run's steps: Start, Hello, Look
            webhook.done.set()
            await drain(service)
            [run] = (await service.store.list_runs(limit=5))[0]
            assert (await service.store.load(run["run_id"])).state.served == {"0:answer": 0, "2:redirect": 1}

    go(main())
