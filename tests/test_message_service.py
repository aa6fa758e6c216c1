"""engine/service/messages.py in process, on both run stores: one run per MessageUUID, even
when two processes (two Services over one database) take the same webhook at once."""

from __future__ import annotations

import asyncio

import pytest
from conftest import flow_text
from test_server import FakeProvider
from test_trigger_message import REPLY

from engine.errors import HttpError
from engine.load.build import check_text
from engine.local.incoming import message_params
from engine.service.messages import checked_params, start_by_message
from engine.service.provider import ProviderConfig
from engine.service.runs import Service
from engine.service.settings import Settings
from engine.service.store import open_store


def _service(url: str, provider: FakeProvider) -> Service:
    flow, diagnostics = check_text(flow_text(REPLY, flow_id="reply"), "reply.yaml")
    assert flow is not None, diagnostics
    settings = Settings(auth_id="MATRIGGERAPIACCOUNT1", auth_token="t", public_url="https://x.example.com",
                        provider=ProviderConfig("MAPROVIDERACCOUNT001", "p", "https://api.example.com"))
    return Service({"reply": flow}, open_store(url), provider, settings)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    return f"sqlite:///{tmp_path}/runs.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_one_message_starts_one_run_however_often_it_comes(store_url):
    provider = FakeProvider()

    async def main():
        a = _service(store_url, provider)
        b = _service(store_url, provider) if store_url.startswith("postgresql") else a  # SQLite: one process
        params = message_params("+12025550123", "+12025551234", "hello", "MSG-1")
        first, second, third = await asyncio.gather(start_by_message(a, "reply", params),
                                                    start_by_message(b, "reply", params),
                                                    start_by_message(a, "reply", params))
        assert first.run_id == second.run_id == third.run_id
        assert [first.created, second.created, third.created].count(True) == 1
        other = await start_by_message(b, "reply", {**params, "MessageUUID": "MSG-2"})
        assert other.created and other.run_id != first.run_id
        await asyncio.gather(*a.tasks, *b.tasks)  # the replies, sent after the answer
        stored = await a.store.load(first.run_id)
        assert stored.state.variables["Start"]["message"]["text"] == "hello" and stored.state.call is None
        # the number search finds it by its sender and by the number written to
        for number in ("+12025550123", "+12025551234"):
            runs, _ = await a.store.list_runs(flow_id="reply", number=number)
            assert {r["run_id"] for r in runs} == {first.run_id, other.run_id}, number
        assert (await a.store.list_runs(flow_id="reply", number="+12025550100"))[0] == []
        await a.store.close()
        if b is not a:
            await b.store.close()

    asyncio.run(main())
    sent = [r.json for r in provider.requests if r.url.endswith("/Message/")]
    assert sent == [{"src": "+12025551234", "dst": "+12025550123", "text": "You asked: hello"}] * 2  # MSG-1, MSG-2


def test_the_parameters_a_run_cannot_start_from_are_400():
    ok = message_params("+12025550123", "+12025551234", "hi", "M")
    assert checked_params(ok) is ok
    for params, says in (({**ok, "MessageUUID": ""}, "needs MessageUUID"),
                         ({k: v for k, v in ok.items() if k != "From"}, "needs From"),
                         ({**ok, "Text": "a\x00b"}, "message parameter value 'Text' holds a NUL character"),
                         ({**ok, "Text": "x" * 5000}, "longer than 4096 characters")):
        with pytest.raises(HttpError) as e:
            checked_params(params)
        assert e.value.status == 400 and says in e.value.message, e.value.message
