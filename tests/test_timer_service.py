"""`fire_timers` (engine/service/timers.py) on a real SQLite store: due timers fire exactly
once, across two services sharing the store, a stale reload, and a restart on the same file.

Services here run on a settable clock (the executor's clock is the service's), so a timer
of an hour is due without waiting an hour; the store, its claims and leases are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

from test_server import FakeProvider, go

from engine.events import TimerFired
from engine.load.build import check_text
from engine.service.provider import ProviderConfig
from engine.service.runs import Service
from engine.service.settings import Settings
from engine.service.sqlite_ops import _FREE, CLAIMS
from engine.service.sqlite_store import SQLiteStore
from engine.service.store import Claim, open_store
from engine.service.timers import fire_timers
from engine.state import WaitReason

REMINDER = """\
spec: callflow/v1
id: reminder
name: Call back in an hour
nodes:
  Start:
    type: trigger
    required: [to]
    next: {http: Later}
  Later:
    type: wait
    seconds: 3600
    next: Call
  Call:
    type: call_out
    from: "+12025551234"
    to: "{{ Start.http.params.to }}"
    next: {answered: Greet}
  Greet:
    type: speak
    text: "This is your call back."
    next: Done
  Done:
    type: hangup
"""
SETTINGS = Settings(auth_id="MATIMERSACCOUNT00001", auth_token="t", public_url="https://flows.example.com",
                    provider=ProviderConfig("MAPROVIDERACCOUNT001", "p", "https://api.example.com"))


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def service(store, clock: Clock, owner: str = "one", provider=None) -> Service:
    flow, diagnostics = check_text(REMINDER, "reminder.yaml")
    assert flow is not None, diagnostics
    made = Service({"reminder": flow}, store, provider or FakeProvider(), SETTINGS, clock=clock)
    made.owner = owner  # as two processes: each claims under its own id
    return made


@contextlib.asynccontextmanager
async def on_store(tmp_path, url: str | None = None):
    """A real store (SQLite, or the one at `url`), a clock, a provider that answers every Call:
    (store, clock, provider)."""
    store = open_store(url) if url else SQLiteStore(str(tmp_path / "runs.db"))
    try:
        yield store, Clock(), FakeProvider()
    finally:
        await store.close()


async def waiting(svc: Service, count: int = 1) -> list[str]:
    """Runs started and waiting on their timer (no request yet: nothing in flight)."""
    ids = [(await svc.trigger("reminder", {"to": "+12025550100"})).run_id for _ in range(count)]
    for run_id in ids:
        state = (await svc.store.load(run_id)).state
        assert state.waiting.reason is WaitReason.TIMER and state.status == "waiting"
    return ids


async def claim(store, clock: Clock, owner: str = "x", limit: int = 100) -> list[str]:
    """What another process would claim now: the due timers with a free lease."""
    return await store.claim(Claim.TIMER, now=clock.now, older_than=clock.now, owner=owner,
                             lease_until=clock.now + 30, limit=limit)


async def state_of(store, run_id):
    return (await store.load(run_id)).state


def test_a_due_timer_fires_once_and_the_run_goes_on(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            svc = service(store, clock, provider=provider)
            [run_id] = await waiting(svc)
            clock.now += 3599
            assert await fire_timers(svc) == 0 and provider.requests == []  # not due yet
            clock.now += 1
            assert await fire_timers(svc) == 1
            state = await state_of(store, run_id)
            assert state.path == ["Start", "Later", "Call"] and state.waiting.reason is WaitReason.CALL
            assert state.steps[1].outcome == "done" and state.steps[1].ended_at == clock.now
            [request] = provider.requests
            assert request.json["to"] == "+12025550100"
            clock.now += 60
            assert await fire_timers(svc) == 0 and len(provider.requests) == 1  # fired once, never again
            # the save cleared the lease: another owner could claim the run for what it waits on now
            assert await claim(store, clock) == []

    go(main())


def test_two_services_on_one_store_fire_a_timer_once(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            one, two = service(store, clock, "one", provider), service(store, clock, "two", provider)
            ids = await waiting(one, 20)
            clock.now += 3600
            fired = await asyncio.gather(fire_timers(one), fire_timers(two), fire_timers(one), fire_timers(two))
            assert sum(fired) == 20
            assert sorted(r.json["answer_url"].split("/")[-3] for r in provider.requests) == sorted(ids)
            assert await asyncio.gather(fire_timers(one), fire_timers(two)) == [0, 0]

    go(main())


def test_a_timer_fired_again_from_a_stale_load_changes_nothing(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            one, two = service(store, clock, "one", provider), service(store, clock, "two", provider)
            [run_id] = await waiting(one)
            clock.now += 3600
            stale = await store.load(run_id)  # `two` loaded it before `one` fired (its lease ran out, say)
            assert await fire_timers(one) == 1
            state, version, effects = await two.advance(two.flows["reminder"], stale, TimerFired(1))
            # the save of the stale copy conflicted; re-applied to the stored state it changes nothing
            assert not effects.changed and list(effects) == []
            assert version == (await store.load(run_id)).version and state.waiting.reason is WaitReason.CALL
            assert len(provider.requests) == 1

    go(main())


def test_a_restarted_service_fires_the_timer_of_the_one_before(tmp_path):
    async def main():
        db, clock = str(tmp_path / "runs.db"), Clock()
        first = SQLiteStore(db)
        ids = await waiting(service(first, clock), 2)
        # the first process claims one timer when due and dies before firing it (its lease stays)
        clock.now += 3600
        claimed = await claim(first, clock, "one", limit=1)
        assert len(claimed) == 1 and claimed[0] in ids
        await first.close()
        second = SQLiteStore(db)
        provider = FakeProvider()
        try:
            assert await fire_timers(service(second, clock, "two", provider)) == 2  # the restart voided the lease
            for run_id in ids:
                assert (await state_of(second, run_id)).waiting.reason is WaitReason.CALL
            assert len(provider.requests) == 2
        finally:
            await second.close()

    go(main())


def test_a_claimed_run_with_nothing_to_fire_is_handed_back(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            svc = service(store, clock)
            [run_id] = await waiting(svc)
            clock.now += 3600
            del svc.flows["reminder"]  # its flow is gone from this process (not loaded here)
            assert await fire_timers(svc) == 0
            # released at once, not held for the lease: the next claimer gets it
            assert await claim(store, clock) == [run_id]

    go(main())


def test_one_tick_fires_at_most_a_batch_and_the_next_tick_the_rest(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            svc = service(store, clock, provider=provider)
            await waiting(svc, 7)
            clock.now += 3600
            assert await fire_timers(svc, limit=5) == 5
            assert await fire_timers(svc, limit=5) == 2
            assert len(provider.requests) == 7

    go(main())


def test_the_timer_claim_finds_due_runs_by_the_wake_index(tmp_path):
    """Due timers are found through runs_wake, not by walking every waiting run."""
    async def create():
        async with on_store(tmp_path) as (store, clock, provider):
            await waiting(service(store, clock), 1)

    go(create())
    where, order = CLAIMS[Claim.TIMER]
    db = sqlite3.connect(tmp_path / "runs.db")
    plan = db.execute(f"EXPLAIN QUERY PLAN SELECT id FROM runs WHERE {where} AND {_FREE} ORDER BY {order} LIMIT 100",
                      {"now": 0.0}).fetchall()
    db.close()
    assert [row[-1] for row in plan] == ["SEARCH runs USING INDEX runs_wake (wake_at<?)"]
