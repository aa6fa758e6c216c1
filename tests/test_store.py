"""engine/service/store.py and sqlite_store.py: the run store (SQLite), its version check, paging and pending work."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from engine.errors import Conflict, RunExists
from engine.service.sqlite_store import SQLiteStore
from engine.service.store import open_store
from engine.state import Call, RunState, Waiting, WaitReason


def run(coro):
    return asyncio.run(coro)


def state(run_id: str, flow_id: str = "f", status: str = "running", t: float = 1000.0, waiting=None) -> RunState:
    return RunState(run_id=run_id, flow_id=flow_id, status=status, created_at=t, updated_at=t, waiting=waiting)


@pytest.fixture(params=["thread", "inline"])
def store(request, tmp_path):
    s = SQLiteStore(str(tmp_path / "runs.db"), inline=request.param == "inline")
    yield s
    run(s.close())


def test_create_load_save_round_trip(store):
    async def main():
        s = state("r1")
        assert await store.create_run(s) == 1
        got = await store.load("r1")
        assert got.version == 1 and got.state == s
        s.status, s.path = "waiting", ["Start", "Call"]
        s.waiting = Waiting("Call", 1, WaitReason.CALL)
        assert await store.save(s, 1) == 2
        got = await store.load("r1")
        assert got.version == 2 and got.state.path == ["Start", "Call"] and got.state.waiting.reason is WaitReason.CALL
        assert await store.load("nope") is None

    run(main())


def test_stale_version_conflicts_and_changes_nothing(store):
    async def main():
        s = state("r1")
        await store.create_run(s)
        s.status = "waiting"
        await store.save(s, 1)
        s.status = "failed"
        with pytest.raises(Conflict):
            await store.save(s, 1)  # someone else saved version 2 meanwhile
        assert (await store.load("r1")).state.status == "waiting"
        with pytest.raises(Conflict):
            await store.save(state("missing"), 1)

    run(main())


def test_duplicate_run_id_is_refused(store):
    async def main():
        await store.create_run(state("r1"))
        with pytest.raises(RunExists):
            await store.create_run(state("r1"))

    run(main())


def test_list_runs_pages_newest_first_with_filters(store):
    async def main():
        for i in range(7):
            await store.create_run(state(f"r{i}", flow_id="a" if i % 2 else "b",
                                         status="completed" if i < 3 else "waiting", t=1000 + i))
        page, cursor = await store.list_runs(limit=3)
        assert [r["run_id"] for r in page] == ["r6", "r5", "r4"] and cursor
        page2, cursor2 = await store.list_runs(limit=3, cursor=cursor)
        assert [r["run_id"] for r in page2] == ["r3", "r2", "r1"] and cursor2
        page3, cursor3 = await store.list_runs(limit=3, cursor=cursor2)
        assert [r["run_id"] for r in page3] == ["r0"] and cursor3 is None
        only_a, _ = await store.list_runs(flow_id="a")
        assert [r["run_id"] for r in only_a] == ["r5", "r3", "r1"]
        done_b, _ = await store.list_runs(flow_id="b", status="completed")
        assert [r["run_id"] for r in done_b] == ["r2", "r0"]
        assert set(page[0]) == {"run_id", "flow_id", "status", "error", "created_at", "updated_at"}
        assert page[0]["created_at"].endswith("Z")
        with pytest.raises(ValueError):
            await store.list_runs(cursor="'; drop table runs")
        everything, _ = await store.list_runs(limit=10_000)  # clamped, not an error
        assert len(everything) == 7

    run(main())


def test_file_store_is_wal_and_survives_reopening(tmp_path):
    path = tmp_path / "sub" / "callflow.db"

    async def write():
        s = open_store(f"sqlite:///{path}")
        await s.create_run(state("r1"))
        await s.close()

    run(write())
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()

    async def read():
        s = open_store(str(path))
        got = await s.load("r1")
        await s.close()
        return got

    assert run(read()).state.run_id == "r1"


def test_concurrent_saves_from_many_tasks(tmp_path):
    """Many coroutines saving different runs at once through the one store thread."""
    async def main():
        s = SQLiteStore(str(tmp_path / "c.db"))
        ids = [f"r{i}" for i in range(200)]
        await asyncio.gather(*(s.create_run(state(i)) for i in ids))

        async def bump(run_id):
            got = await s.load(run_id)
            got.state.status = "completed"
            await s.save(got.state, got.version)

        await asyncio.gather(*(bump(i) for i in ids))
        done, _ = await s.list_runs(status="completed", limit=500)
        await s.close()
        return len(done)

    assert run(main()) == 200


@pytest.mark.parametrize("url, path", [
    ("sqlite:///rel.db", "rel.db"),
    ("sqlite:////abs/x.db", "/abs/x.db"),
    ("sqlite:///:memory:", ":memory:"),
])
def test_sqlite_urls(url, path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    if path.startswith("/abs"):
        url, path = f"sqlite:///{tmp_path}/x.db", f"{tmp_path}/x.db"
    s = open_store(url)
    assert s.path == path
    run(s.close())


@pytest.mark.parametrize("url", ["mysql://x", "sqlite://", "sqlite:///x.db?synchronous=bogus",
                                 "postgresql://db/callflow?pool_size=0"])
def test_unsupported_urls(url):
    with pytest.raises(ValueError):
        open_store(url)


def test_synchronous_full_by_url(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/f.db?synchronous=full")
    assert s._db.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    run(s.close())


def test_find_by_call(store):
    async def main():
        a = state("a", flow_id="in")
        a.call = Call("Start", 0, legs=1, up=True, uuid="call-1")
        await store.create_run(a)
        b = state("b", flow_id="out")
        await store.create_run(b)
        assert await store.find_by_call("call-1") == "a"
        assert await store.find_by_call("call-1", "in") == "a"
        assert await store.find_by_call("call-1", "out") is None
        b.call = Call("Call", 1, legs=1, up=True, uuid="call-2")
        await store.save(b, 1)
        assert await store.find_by_call("call-2") == "b"
        assert await store.find_by_call("nope") is None

    run(main())


def test_a_version_1_store_is_migrated(tmp_path):
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE,
            flow_id TEXT NOT NULL, status TEXT NOT NULL, error TEXT, created_at REAL NOT NULL,
            updated_at REAL NOT NULL, waiting_for TEXT, version INTEGER NOT NULL, state TEXT NOT NULL);
        PRAGMA user_version = 1;
    """)
    db.execute("INSERT INTO runs (run_id, flow_id, status, created_at, updated_at, version, state) "
               "VALUES ('old', 'f', 'waiting', 1, 1, 3, ?)", (state("old").to_json(),))
    db.commit()
    db.close()

    async def main():
        s = open_store(str(path))
        got = await s.load("old")
        assert got.version == 3
        got.state.call = Call("Call", 1, legs=1, up=True, uuid="c9")
        await s.save(got.state, 3)
        assert await s.find_by_call("c9") == "old"
        await s.close()

    run(main())


def test_a_second_store_on_the_same_file_is_refused_until_the_first_closes(tmp_path):
    from engine.errors import StoreUnusable

    path = str(tmp_path / "runs.db")
    first = SQLiteStore(path)
    with pytest.raises(StoreUnusable, match="another callflow process is using this database"):
        SQLiteStore(path)
    run(first.close())
    run(SQLiteStore(path).close())  # the lock went with the first


def test_a_schema_3_run_waiting_on_a_request_counts_as_sent_after_the_upgrade(tmp_path):
    """Nobody can tell whether a request recorded by an older callflow left: in doubt, never resent."""
    from engine.service.store import Claim

    path = str(tmp_path / "runs.db")
    s = SQLiteStore(path)
    run(s.create_run(state("old", status="waiting", waiting=Waiting("Call", 1, WaitReason.RESPONSE))))
    run(s.close())
    db = sqlite3.connect(path)
    for column in ("waiting_seq", "sent_seq", "lease_owner", "lease_until", "wake_at"):
        db.execute("DROP INDEX IF EXISTS runs_wake")
        db.execute("DROP INDEX IF EXISTS runs_lease")
        db.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    s = SQLiteStore(path)
    try:
        kw = dict(now=5000.0, older_than=5000.0, owner="p", lease_until=6000.0)
        assert run(s.claim(Claim.UNSENT, **kw)) == []
        assert run(s.claim(Claim.IN_DOUBT, **kw)) == ["old"]
    finally:
        run(s.close())


def test_flow_revisions_are_kept_idempotently_and_a_schema_4_file_gains_the_table(tmp_path):
    path = str(tmp_path / "runs.db")
    s = SQLiteStore(path)
    run(s.create_run(state("r1", status="waiting", waiting=Waiting("Ask", 1, WaitReason.INPUT))))
    run(s.close())
    db = sqlite3.connect(path)
    db.execute("DROP TABLE flow_revisions")
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    s = SQLiteStore(path)  # schema 4 -> 5: a new table, the runs untouched
    try:
        assert run(s.load_revision("abc")) is None
        run(s.save_revision("menu", "abc", "spec: callflow/v1\n"))
        run(s.save_revision("menu", "abc", "spec: callflow/v1\n"))  # idempotent
        assert run(s.load_revision("abc")) == "spec: callflow/v1\n"
        assert run(s.load("r1")) is not None
        assert run(s.unfinished_by_revision()) == {("f", ""): 1}
    finally:
        run(s.close())
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 7  # and on to 7


def test_a_schema_6_file_gets_the_numbers_of_its_runs_and_inbound_dedupe(tmp_path):
    """Schema 6 -> 7: the old runs' numbers come from their stored states; two old runs of one
    incoming call (nothing refused it before) do not fail the unique index: the newest keeps
    the mark, and a third run for that call is refused from now on."""
    from test_store_contract import inbound, outbound, sqlite_schema_6_file

    path = str(tmp_path / "runs.db")
    # As schema 6 stored them; the outbound call's number written without its +.
    sqlite_schema_6_file(path, [outbound("out", "+12025550100", "14155550199"),
                                inbound("dup-old", "ca-1"), inbound("dup-new", "ca-1")])
    s = SQLiteStore(path)
    try:
        found = lambda number: [r["run_id"] for r in run(s.list_runs(number=number))[0]]  # noqa: E731
        assert found("+14155550199") == ["out"]  # written without its + in the old state
        assert found("+14155550100") == ["dup-new", "dup-old"]
        with pytest.raises(RunExists):
            run(s.create_run(inbound("third", "ca-1")))
        marks = sqlite3.connect(path).execute("SELECT run_id FROM runs WHERE inbound_call_uuid = 'ca-1'").fetchall()
        assert marks == [("dup-new",)]
    finally:
        run(s.close())
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 7


def test_phone_numbers_are_kept_and_searched_in_one_form():
    from engine.service.store import phone_number

    for typed in ("+14155550100", "14155550100", " +1 (415) 555-0100 ", "1.415.555.0100"):
        assert phone_number(typed) == "+14155550100", typed
    assert phone_number("sip:alice@example.com ") == "sip:alice@example.com"
    assert phone_number("") is None and phone_number(None) is None and phone_number("  ") is None
    assert phone_number(14155550100) == "+14155550100"
