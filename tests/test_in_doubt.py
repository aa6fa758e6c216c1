"""A Call request in doubt is settled by asking the provider (engine/service/in_doubt.py):
absent on two looks -> sent again, once; one call found -> adopted; several, or no answer ->
still in doubt, failed after the bound. The service runs in-process on SQLite; the provider
is a fake whose Call API lookups answer as Plivo's do (same paths, params and fields)."""

from __future__ import annotations

import asyncio
import time

from test_server import (
    TO,
    FakeProvider,
    call_params,
    callback,
    drain,
    go,
    serving,
    started,
)

from engine.service.sweeper import sweep
from engine.state import WaitReason

GRACE = 0.2


class LookedUp(FakeProvider):
    """The Call API in doubt (mode "doubt") or answering (mode "ok"), with lookups that show
    the calls in `live` (uuid -> from, to) and nothing else."""

    def __init__(self, mode: str = "doubt", live: dict | None = None):
        super().__init__(mode)
        self.live = live or {}
        self.looked: list[tuple[str, dict]] = []

    async def lookup(self, path: str, params: dict | None = None, timeout: float = 5.0):
        params = params or {}
        self.looked.append((path, params))
        if path == "Call/" and params.get("status") == "live":
            ids = [u for u, (src, dst) in self.live.items()
                   if params.get("from_number") in (None, src) and params.get("to_number") in (None, dst)]
            return 200, {"api_id": "l", "calls": ids}
        if path == "Call/" and params.get("status") == "queued":
            return 200, {"api_id": "q", "calls": []}
        if path == "Call/":
            meta = {"limit": 20, "next": None, "offset": 0, "previous": None, "total_count": 0}
            return 200, {"api_id": "c", "meta": meta, "objects": []}
        uuid = path.split("/")[1]
        if params.get("status") == "live" and uuid in self.live:
            src, dst = self.live[uuid]
            started_at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            return 200, {"api_id": "d", "call_uuid": uuid, "request_uuid": uuid, "from": src, "to": dst,
                         "call_status": "ringing", "direction": "outbound", "session_start": started_at}
        return 404, {"api_id": "n", "error": "call not found"}


async def _settle(service, rounds: int = 1, pause: float = GRACE) -> int:
    moved = 0
    for _ in range(rounds):
        await asyncio.sleep(pause)
        moved += await sweep(service)
        await drain(service)
    return moved


def _call_step(state) -> dict:
    return state.record()["steps"][1]


def test_a_call_request_in_doubt_that_the_provider_never_saw_is_sent_again_once(tmp_path):
    async def main():
        provider = LookedUp("doubt")
        async with serving(tmp_path, provider, grace=GRACE) as (service, client):
            run_id = await started(client, service)
            await _settle(service, 1, GRACE + 0.05)  # first look: absent
            assert len(provider.requests) == 1
            await _settle(service, 1, 0.1)  # second look, a little later: absent again -> resent
            assert len(provider.requests) == 2 and provider.requests[1].json == provider.requests[0].json
            state = (await service.store.load(run_id)).state
            assert state.waiting.reason is WaitReason.RESPONSE and state.waiting.resent
            looked = {(p, tuple(sorted(q.items()))) for p, q in provider.looked}
            assert ("Call/", (("from_number", "+12025551234"), ("status", "live"), ("to_number", TO))) in looked
            # The resent request is in doubt too, and still absent: the node fails, never a third send.
            for _ in range(4):
                await _settle(service, 1, 0.15)
            state = (await service.store.load(run_id)).state
            assert len(provider.requests) == 2
            assert state.path == ["Start", "Call", "Done"] and _call_step(state)["outcome"] == "failed"
            assert "no response recorded" in _call_step(state)["error"]

    go(main())


def test_a_resent_call_request_that_is_answered_goes_on_as_usual(tmp_path):
    async def main():
        provider = LookedUp("doubt")
        async with serving(tmp_path, provider, grace=GRACE) as (service, client):
            run_id = await started(client, service)
            await _settle(service, 1, GRACE + 0.05)
            provider.mode = "ok"  # the provider is reachable again
            await _settle(service, 1, 0.1)
            state = (await service.store.load(run_id)).state
            assert len(provider.requests) == 2 and state.waiting.reason is WaitReason.CALL
            assert state.variables["Call"]["request_uuid"] == "req-1"
            await callback(client, run_id, 1, "answer", call_params())
            await callback(client, run_id, 1, "hangup", call_params("completed", Duration="2"))
            state = (await service.store.load(run_id)).state
            assert state.status == "completed" and state.path == ["Start", "Call", "Greet", "Done"]

    go(main())


def test_a_call_request_in_doubt_whose_call_the_provider_shows_adopts_it(tmp_path):
    async def main():
        provider = LookedUp("doubt", live={"call-1": ("+12025551234", TO)})
        async with serving(tmp_path, provider, grace=GRACE) as (service, client):
            run_id = await started(client, service)
            assert await _settle(service, 1, GRACE + 0.05) == 1
            state = (await service.store.load(run_id)).state
            assert len(provider.requests) == 1  # found: never resent
            assert state.waiting.reason is WaitReason.CALL and state.variables["Call"]["request_uuid"] == "call-1"
            assert "adopted" in state.record()["requests"][-1]["response"]["body"]
            await callback(client, run_id, 1, "answer", call_params())
            state = (await service.store.load(run_id)).state
            assert state.path[:3] == ["Start", "Call", "Greet"]

    go(main())


def test_several_matching_calls_fail_the_node_without_a_resend(tmp_path):
    async def main():
        live = {"call-a": ("+12025551234", TO), "call-b": ("+12025551234", TO)}
        provider = LookedUp("doubt", live=live)
        async with serving(tmp_path, provider, grace=GRACE) as (service, client):
            run_id = await started(client, service)
            assert await _settle(service, 1, GRACE + 0.05) == 1  # two candidates: which is its own? failed
            state = (await service.store.load(run_id)).state
            assert len(provider.requests) == 1 and _call_step(state)["outcome"] == "failed"

    go(main())


class MovedWhileLookedUp(LookedUp):
    """Several matching calls, and the run saved by someone else while the lookups run (a
    callback of its own call moved it on): the decision taken from the older state is stale."""

    def __init__(self, live: dict):
        super().__init__("doubt", live=live)
        self.service, self.run_id = None, None
        self.moved_to: int | None = None

    async def lookup(self, path: str, params: dict | None = None, timeout: float = 5.0):
        if self.moved_to is None and self.service is not None:
            stored = await self.service.store.load(self.run_id)
            self.moved_to = await self.service.store.save(stored.state, stored.version)
        return await super().lookup(path, params, timeout)


def test_a_run_that_moved_while_it_was_looked_up_is_not_failed_by_the_stale_decision(tmp_path):
    async def main():
        live = {"call-a": ("+12025551234", TO), "call-b": ("+12025551234", TO)}
        provider = MovedWhileLookedUp(live)
        async with serving(tmp_path, provider, grace=GRACE) as (service, client):
            run_id = await started(client, service)
            provider.service, provider.run_id = service, run_id
            await _settle(service, 1, GRACE + 0.05)  # ambiguous, but the run moved meanwhile
            stored = await service.store.load(run_id)
            assert provider.moved_to is not None and stored.version == provider.moved_to
            assert stored.state.waiting is not None and stored.state.waiting.reason is WaitReason.RESPONSE
            assert _call_step(stored.state)["outcome"] is None

    go(main())


def test_a_provider_that_does_not_answer_its_lookups_keeps_it_in_doubt_until_the_bound(tmp_path):
    async def main():
        provider = FakeProvider("doubt")  # its lookups raise ProviderError
        async with serving(tmp_path, provider, grace=GRACE) as (service, client):
            run_id = await started(client, service)
            assert await _settle(service, 1, GRACE + 0.05) == 0
            assert (await service.store.load(run_id)).state.waiting.reason is WaitReason.RESPONSE
            for _ in range(7):  # past the bound: 6 grace periods in doubt
                await _settle(service, 1, 0.15)
            state = (await service.store.load(run_id)).state
            assert len(provider.requests) == 1 and _call_step(state)["outcome"] == "failed"

    go(main())


def test_one_run_failing_to_settle_does_not_cut_the_others_short(tmp_path, monkeypatch):
    """The runs of a tick are settled side by side: one raising (its store read failed) is
    logged, and the others are settled and counted, their leases released only after."""
    from engine.service import sweeper

    async def main():
        provider = LookedUp("doubt", live={"call-a": ("+12025551234", TO)})
        async with serving(tmp_path, provider, grace=GRACE) as (service, client):
            broken, adopted = await started(client, service), await started(client, service)
            settle = sweeper.settle

            async def flaky(service, run_id, *args):
                if run_id == broken:
                    raise OSError("store read failed")
                await asyncio.sleep(0.05)  # still at work when the broken one raised
                return await settle(service, run_id, *args)

            monkeypatch.setattr(sweeper, "settle", flaky)
            await asyncio.sleep(GRACE + 0.05)
            assert await sweeper.settle_in_doubt(service) == 1
            state = (await service.store.load(adopted)).state
            assert state.waiting is None or state.waiting.reason is not WaitReason.RESPONSE

    go(main())
