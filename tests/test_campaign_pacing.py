"""Campaign pacing (engine/service/campaigns.py) on a real SQLite store and a simulated clock:
the rate cap in every 1 s window, max_in_flight, the calling window, two processes on one
store, and a crash between a row's start and its record."""

from __future__ import annotations

import pytest
from test_server import go
from test_timer_service import Clock, on_store, service

from engine.campaign_pace import next_start, parse_window, starts_allowed
from engine.campaign_rows import check_rows, dict_records
from engine.service.campaign_store import CampaignSpec, StoredRow
from engine.service.campaigns import IDLE_TICK, pace_campaigns, row_key, wake


def numbers(count: int) -> list[dict]:
    return [{"to": f"+1202555{i:04d}"} for i in range(count)]


async def make(store, clock, rows: list[dict], rate: float = 10.0, max_in_flight=None, window=None,
               flow=None, campaign_id: str = "c1") -> str:
    spec = CampaignSpec(campaign_id, "test", "reminder", rate, max_in_flight, window,
                        (window or {}).get("timezone", "UTC"), clock.now)
    await store.create_campaign(spec)
    checked = check_rows(flow, dict_records(rows)) if flow else None
    stored = [StoredRow(r.line, r.payload, r.destination, "skipped" if r.problem else "pending", r.problem)
              for r in checked] if checked else [StoredRow(i + 2, row, row["to"], "pending")
                                                  for i, row in enumerate(rows)]
    await store.add_campaign_rows(campaign_id, stored)
    await store.set_campaign_status(campaign_id, "running", ("loading",))
    return campaign_id


async def play(svcs, clock: Clock, seconds: float, tick: float = 0.05) -> list[float]:
    """Tick the pacing of every service for `seconds` of simulated time; the start times."""
    starts: list[float] = []
    end = clock.now + seconds
    while clock.now < end:
        for svc in svcs:
            starts += [clock.now] * await pace_campaigns(svc)
        clock.now += tick
    return starts


def max_in_any_second(starts: list[float]) -> int:
    return max((sum(1 for t in starts if s <= t < s + 1.0 - 1e-9) for s in starts), default=0)


def test_starts_never_exceed_the_rate_in_any_second_and_keep_the_pace(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            svc = service(store, clock, provider=provider)
            await make(store, clock, numbers(40), rate=10)
            starts = await play([svc], clock, 6.0)
            assert len(starts) == 40
            assert max_in_any_second(starts) <= 10
            assert 3.5 <= starts[-1] - starts[0] <= 4.2  # 40 starts at 10/s: ~3.9 s
            record = await store.campaign("c1")
            assert record["progress"]["started"] == 40 and record["progress"]["remaining"] == 0
            assert 9.0 <= record["progress"]["achieved_rate"] <= 10.5

    go(main())


def test_max_in_flight_bounds_unfinished_runs(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            svc = service(store, clock, provider=provider)  # reminder runs wait an hour: all stay in flight
            await make(store, clock, numbers(20), rate=100, max_in_flight=3)
            starts = await play([svc], clock, 2.0)
            assert len(starts) == 3
            assert (await store.campaign("c1"))["progress"]["in_flight"] == 3

    go(main())


def test_a_closed_window_starts_nothing_until_it_opens(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            clock.now = 1_767_254_400.0  # 2026-01-01 08:00 UTC, a Thursday
            window = {"timezone": "Europe/London", "hours": {"mon-fri": "08:01-17:00"}}
            assert not parse_window(window).is_open(clock.now)
            svc = service(store, clock, provider=provider)
            await make(store, clock, numbers(5), rate=10, window=window)
            assert await play([svc], clock, 59.0) == []  # closed until 08:01 local (UTC in winter)
            starts = await play([svc], clock, 3.0)
            assert len(starts) == 5 and min(starts) >= 1_767_254_460.0

    go(main())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_processes_pace_one_campaign_and_no_row_starts_twice(tmp_path, backend, request):
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None

    async def main():
        async with on_store(tmp_path, url) as (store, clock, provider):
            one, two = service(store, clock, "one", provider), service(store, clock, "two", provider)
            await make(store, clock, numbers(30), rate=20)
            starts = await play([one, two], clock, 3.0)
            assert len(starts) == 30 and max_in_any_second(starts) <= 20
            results = await store.campaign_results("c1", 0, 100)
            assert len({r["run_id"] for r in results}) == 30 and len(provider.requests) == 0  # timers first

    go(main())


def test_a_crash_between_the_start_and_its_record_starts_the_row_once(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            svc = service(store, clock, provider=provider)
            await make(store, clock, numbers(2), rate=10)
            # As a process that died right after the trigger: the run and its key exist, the row is pending.
            first = await svc.trigger("reminder", {"to": "+12025550000"}, row_key("c1", 2, {"to": "+12025550000"},
                                                                                  clock.now))
            await play([svc], clock, 1.0)
            results = await store.campaign_results("c1", 0, 10)
            assert results[0]["run_id"] == first.run_id and results[1]["run_id"] not in (None, first.run_id)
            runs, _ = await store.list_runs()
            assert len(runs) == 2

    go(main())


def test_pause_resume_and_cancel(tmp_path):
    async def main():
        async with on_store(tmp_path) as (store, clock, provider):
            svc = service(store, clock, provider=provider)
            assert await pace_campaigns(svc) == 0  # none running: the next look is IDLE_TICK away
            await make(store, clock, numbers(20), rate=10)
            assert await play([svc], clock, IDLE_TICK - 0.1) == []
            wake(svc)  # as POST /v1/campaigns does
            await play([svc], clock, 0.3)
            assert await store.set_campaign_status("c1", "paused", ("running",)) == "paused"
            held = (await store.campaign("c1"))["progress"]["started"]
            assert await play([svc], clock, 2.0) == []
            assert await store.set_campaign_status("c1", "running", ("paused",)) == "running"
            wake(svc)  # as POST .../resume does
            await play([svc], clock, 0.1)
            assert await store.set_campaign_status("c1", "cancelled", ("running", "paused")) == "cancelled"
            assert await play([svc], clock, 2.0) == []
            progress = (await store.campaign("c1"))["progress"]
            assert held < progress["started"] < 20 and progress["remaining"] == 20 - progress["started"]

    go(main())


def test_starts_allowed_counts_the_cap_and_the_schedule():
    t = 1000.0  # the schedule: the next start is due at t
    assert starts_allowed(5, 0.0, t, 0, 0, None) == 1  # never started: one now, then the schedule
    assert starts_allowed(5, t, t, 0, 0, None) == 1
    assert starts_allowed(5, t, t + 0.1, 5, 0, None) == 0  # five in the last second already
    assert starts_allowed(100, t, t + 0.05, 0, 0, None) == 6
    assert starts_allowed(100, t, t + 5.0, 0, 0, None) == 11  # a late tick catches up a tenth of a second only
    assert starts_allowed(0.5, t, t, 0, 0, None) == 1 and starts_allowed(0.5, t, t + 1.0, 1, 0, None) == 0
    assert starts_allowed(10, t, t + 1.0, 0, 4, 5) == 1
    assert next_start(2, 0.0, t, 1) == t + 0.5  # the second start of a campaign comes 1/rate after the first
