"""The `Store` contract (engine/service/store.py) that every backend keeps: leases, claims,
the sent mark. Each test runs on every backend the `store_url` fixture lists."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.errors import RunExists
from engine.service.store import Claim, Lease, open_store
from engine.state import Call, RunState, Waiting, WaitReason

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    if request.param == "postgres":  # a fresh schema on the tests' PostgreSQL server (tests/postgres.py)
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path}/runs.db"


def run(coro):
    return asyncio.run(coro)


def waiting(run_id: str, reason: WaitReason, seq: int = 1, t: float = 1000.0, until: float | None = None) -> RunState:
    return RunState(run_id=run_id, flow_id="f", status="waiting", created_at=t, updated_at=t,
                    waiting=Waiting("N", seq, reason, until))


async def claim(store, kind, now=2000.0, older_than=1500.0, owner="p1", lease_until=2030.0, limit=100):
    return sorted(await store.claim(kind, now=now, older_than=older_than, owner=owner, lease_until=lease_until,
                                    limit=limit))


def test_each_claim_kind_finds_its_runs_and_only_them(store_url):
    async def main():
        store = open_store(store_url)
        try:
            await store.create_run(waiting("unsent", WaitReason.RESPONSE))
            await store.create_run(waiting("sent-old", WaitReason.RESPONSE))
            assert await store.mark_sent("sent-old", 1, "nobody") is False  # no lease held: not marked
            await store.save(waiting("sent-old", WaitReason.RESPONSE), 1, Lease("p0", 1001.0))
            assert await store.mark_sent("sent-old", 1, "p0") is True
            await store.create_run(waiting("sent-new", WaitReason.RESPONSE, t=1900.0), Lease("p0", 1001.0))
            assert await store.mark_sent("sent-new", 1, "p0")
            await store.create_run(waiting("quiet", WaitReason.CALL))
            await store.create_run(waiting("talking", WaitReason.INPUT, t=1900.0))
            await store.create_run(waiting("due", WaitReason.TIMER, until=1999.0))
            await store.create_run(waiting("later", WaitReason.TIMER, until=2001.0))
            await store.create_run(RunState(run_id="done", flow_id="f", status="completed"))
            assert await claim(store, Claim.UNSENT) == ["unsent"]
            assert await claim(store, Claim.IN_DOUBT, owner="p2") == ["sent-old"]
            assert await claim(store, Claim.QUIET) == ["quiet"]
            assert await claim(store, Claim.TIMER) == ["due"]
            assert await claim(store, Claim.TIMER, now=2001.0) == ["later"]  # "due" is leased already
        finally:
            await store.close()

    run(main())


def test_a_claimed_run_is_nobody_elses_until_its_lease_expires_or_is_released(store_url):
    async def main():
        store = open_store(store_url)
        try:
            await store.create_run(waiting("r", WaitReason.TIMER, until=1000.0))
            assert await claim(store, Claim.TIMER, owner="p1", lease_until=2030.0) == ["r"]
            assert await claim(store, Claim.TIMER, owner="p2", now=2029.0, lease_until=2060.0) == []
            assert await store.renew("p1", 2100.0, ["r", "other"]) == 1
            assert await claim(store, Claim.TIMER, owner="p2", now=2050.0, lease_until=2080.0) == []
            # p1 died: its lease runs out and p2 takes the run over.
            assert await claim(store, Claim.TIMER, owner="p2", now=2101.0, lease_until=2130.0) == ["r"]
            assert await store.renew("p1", 2200.0, ["r"]) == 0  # p1 holds nothing any more
            assert await store.release("p2") == 1
            assert await claim(store, Claim.TIMER, owner="p3", now=2102.0) == ["r"]
        finally:
            await store.close()

    run(main())


def test_a_save_writes_or_clears_the_lease_and_the_columns_the_claims_read(store_url):
    async def main():
        store = open_store(store_url)
        try:
            state = waiting("r", WaitReason.RESPONSE, seq=1)
            await store.create_run(state, Lease("p1", 5000.0))
            assert await claim(store, Claim.UNSENT, owner="p2") == []  # leased: p1 is sending it
            assert await store.mark_sent("r", 1, "p1")
            assert await store.mark_sent("r", 1, "p1", sent=False)  # refused by the API: not sent after all
            state.waiting = Waiting("N2", 3, WaitReason.RESPONSE)
            state.updated_at = 1100.0
            assert await store.save(state, 1) == 2  # no lease: cleared
            # The request of step 3 was recorded, never sent: the next process sends it.
            assert await claim(store, Claim.UNSENT, owner="p2") == ["r"]
            assert await store.mark_sent("r", 3, "p1") is False  # p1 lost it
            assert await store.mark_sent("r", 3, "p2")
            assert await store.release("p2", ["r"]) == 1
            assert await claim(store, Claim.UNSENT, owner="p3") == []  # sent: in doubt now, not unsent
            assert await claim(store, Claim.IN_DOUBT, owner="p3") == ["r"]
            state.waiting = Waiting("Wait", 4, WaitReason.TIMER, until=1500.0)
            await store.save(state, 2)
            assert await claim(store, Claim.TIMER, now=1499.0, owner="p4") == []
            assert await claim(store, Claim.TIMER, now=1500.0, owner="p4") == ["r"]
            assert (await store.load("r")).state.waiting.until == 1500.0
        finally:
            await store.close()

    run(main())


def test_claims_take_at_most_limit_oldest_first(store_url):
    async def main():
        store = open_store(store_url)
        try:
            for i in range(5):
                await store.create_run(waiting(f"t{i}", WaitReason.TIMER, until=1000.0 + i))
            assert await store.claim(Claim.TIMER, now=2000.0, older_than=0, owner="p", lease_until=3000.0,
                                     limit=2) in (["t0", "t1"], ["t1", "t0"])
            assert await claim(store, Claim.TIMER, owner="q") == ["t2", "t3", "t4"]
        finally:
            await store.close()

    run(main())


def test_concurrent_claims_share_the_runs_out_without_overlap(store_url):
    async def main():
        store = open_store(store_url)
        try:
            for i in range(200):
                await store.create_run(waiting(f"t{i}", WaitReason.TIMER, until=1000.0))
            got = await asyncio.gather(*(store.claim(Claim.TIMER, now=2000.0, older_than=0, owner=f"p{i}",
                                                     lease_until=3000.0, limit=30) for i in range(10)))
            flat = [r for g in got for r in g]
            assert len(flat) == len(set(flat)) == 200
        finally:
            await store.close()

    run(main())


# -- the number search, inbound dedupe, revisions pruning (schema 7 / migration 5) ------------------
def inbound(run_id: str, call_uuid: str, src: str = "14155550100", to: str = "+12025550100",
            status: str = "waiting") -> RunState:
    """A run an incoming call started, as the executor leaves it (the trigger's `call` outputs)."""
    return RunState(run_id=run_id, flow_id="f", status=status, created_at=1000.0, updated_at=1000.0,
                    variables={"Start": {"call": {"from": src, "to": to, "call_uuid": call_uuid}}},
                    waiting=Waiting("Ask", 1, WaitReason.INPUT) if status == "waiting" else None,
                    call=Call("Start", 0, up=True, uuid=call_uuid))


def outbound(run_id: str, src: str, to: str) -> RunState:
    """A run whose call_out placed a call (its outputs name both ends)."""
    return RunState(run_id=run_id, flow_id="g", status="waiting", created_at=1000.0, updated_at=1000.0,
                    variables={"Call": {"from": src, "to": to, "call_uuid": None}},
                    waiting=Waiting("Call", 1, WaitReason.CALL), call=Call("Call", 1, legs=to.count("<") + 1))


def sqlite_schema_6_file(path: str, states: list[RunState]) -> None:
    """A SQLite file as schema 6 left it (no number columns, no inbound index, no
    `current_at`), holding `states` as finished runs stored by then, the i-th at time i."""
    import sqlite3

    from engine.service.sqlite_store import SQLiteStore

    asyncio.run(SQLiteStore(path).close())
    db = sqlite3.connect(path)
    for index in ("runs_from_number", "runs_to_number", "runs_inbound_call"):
        db.execute(f"DROP INDEX {index}")
    for column in ("from_number", "to_number", "inbound_call_uuid"):
        db.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    db.execute("ALTER TABLE flow_revisions DROP COLUMN current_at")
    db.executemany("INSERT INTO runs (run_id, flow_id, status, created_at, updated_at, version, state)"
                   " VALUES (?, 'f', 'completed', ?, ?, 1, ?)",
                   ((state.run_id, i, i, state.to_json()) for i, state in enumerate(states)))
    db.execute("PRAGMA user_version = 6")
    db.commit()
    db.close()


def test_runs_are_found_by_either_number_of_their_call(store_url):
    async def main():
        store = open_store(store_url)
        try:
            await store.create_run(inbound("in", "ca-1"))  # Plivo sends From without its +
            await store.create_run(outbound("out", "+12025550100", "+14155550199<sip:desk@example.com"))
            await store.create_run(RunState(run_id="none", flow_id="f", status="completed"))
            later = outbound("later", "+13105550000", "+13105550001")
            await store.create_run(later)

            async def found(number, **kw):
                return [r["run_id"] for r in (await store.list_runs(number=number, **kw))[0]]

            assert await found("+14155550100") == ["in"]
            assert await found("+12025550100") == ["out", "in"]  # the caller of one, the callee of the other
            assert await found("+12025550100", flow_id="g") == ["out"]
            assert await found("+14155550199") == ["out"]  # of several destinations: the first
            assert await found("+19995550000") == []
            assert await found("+13105550001") == ["later"]
            later.variables["Call"] = {"from": "+13105550000", "to": "+13105550002"}  # a save rewrites them
            await store.save(later, 1)
            assert await found("+13105550001") == [] and await found("+13105550002") == ["later"]
            page, cursor = await store.list_runs(number="+12025550100", limit=1)
            assert [r["run_id"] for r in page] == ["out"] and cursor
            assert [r["run_id"] for r in (await store.list_runs(number="+12025550100", cursor=cursor))[0]] == ["in"]
        finally:
            await store.close()

    run(main())


def test_a_second_run_for_one_incoming_call_is_refused(store_url):
    async def main():
        store = open_store(store_url)
        try:
            await store.create_run(inbound("first", "ca-dup"))
            with pytest.raises(RunExists, match="ca-dup"):
                await store.create_run(inbound("second", "ca-dup"))
            assert await store.load("second") is None
            assert await store.find_by_call("ca-dup") == "first"
            # the same CallUUID on an outbound run's step (not the run's first call) is not refused
            other = outbound("out", "+12025550100", "+14155550100")
            other.call.uuid = "ca-dup"
            await store.create_run(other)
        finally:
            await store.close()

    run(main())


def test_revisions_nobody_serves_or_needs_are_pruned(store_url):
    async def main():
        store = open_store(store_url)
        try:
            for rev in ("cur", "old-needed", "old-done", "old-recent"):
                await store.save_revision("f", rev, f"source {rev}")
            needed = inbound("live", "ca-live")
            needed.flow_revision = "old-needed"
            await store.create_run(needed)
            done = inbound("done", "ca-done", status="completed")
            done.flow_revision = "old-done"
            await store.create_run(done)
            now = time.time()
            # nothing is old enough yet: every revision was saved (so marked current) just now
            assert await store.prune_revisions(["cur"], now, now - 60) == 0
            # later: "cur" and "old-recent" are served (marked now), "old-done" nobody serves or needs
            assert await store.prune_revisions(["cur", "old-recent"], now + 3000, now + 600) == 1
            assert await store.load_revision("old-done") is None
            assert await store.load_revision("old-needed") == "source old-needed"  # its run waits on it
            assert (await store.load("done")).state.flow_revision == "old-done"  # the run keeps naming it
            needed.status, needed.waiting = "completed", None
            await store.save(needed, 1)
            # "old-recent" was last served at +3000: gone once that is older than the keep period too
            assert await store.prune_revisions(["cur"], now + 3600, now + 3100) == 2
            assert [await store.load_revision(r) for r in ("cur", "old-needed", "old-recent")] == \
                ["source cur", None, None]
            await store.save_revision("f", "old-done", "source old-done")  # loaded again: back
            assert await store.load_revision("old-done") == "source old-done"
        finally:
            await store.close()

    run(main())
