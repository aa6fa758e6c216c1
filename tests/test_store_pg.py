"""engine/service/pg_store.py, pg_migrations.py, pg_connect.py: what only the PostgreSQL run
store does (the behaviour both backends share is tests/test_store_contract.py's), on a real
server (tests/postgres.py): migrations, several processes' pools at once, the server going
away, and `callflow serve`/`callflow db upgrade` refusing what they cannot use."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import asyncpg
import httpx
import pytest
from processes import REPO, SERVE_READY, CallflowProcess, clean_env, free_port

from engine.errors import Conflict, RunExists, StoreUnavailable, StoreUnusable
from engine.service.pg_migrations import SCHEMA_VERSION, migrate
from engine.service.store import Claim, Lease, open_store
from engine.state import Call, RunState, Waiting, WaitReason


def run(coro):
    return asyncio.run(coro)


def waiting_state(run_id: str, seq: int = 1, reason=WaitReason.RESPONSE, t: float = 1000.0, **kw) -> RunState:
    return RunState(run_id=run_id, flow_id="f", status="waiting", created_at=t, updated_at=t,
                    waiting=Waiting("Call", seq, reason, kw.get("until")), call=kw.get("call"))


async def sql(url: str, statement: str, *args):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


def cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=REPO, env=env or clean_env(),
                          capture_output=True, text=True, timeout=60)


# -- migrations ------------------------------------------------------------------------------------
def test_fresh_database_is_migrated_to_the_newest_version(pg_url):
    store = open_store(pg_url)
    assert store.schema_version == SCHEMA_VERSION
    run(store.close())
    assert run(sql(pg_url, "SELECT version FROM callflow_schema"))[0][0] == SCHEMA_VERSION
    open_store(pg_url)  # a second open finds it current and changes nothing
    assert len(run(sql(pg_url, "SELECT * FROM callflow_schema"))) == 1


def test_a_version_1_database_is_upgraded_and_its_waiting_run_counts_as_sent(pg_url):
    async def at_version_1():
        conn = await asyncpg.connect(pg_url)
        try:
            await migrate(conn, "test", target=1)
            await conn.execute(
                "INSERT INTO runs (run_id, flow_id, status, created_at, updated_at, waiting_for, version, state)"
                " VALUES ('old', 'f', 'waiting', 1, 1, 'response', 3, $1)",
                waiting_state("old", seq=4).to_json())
        finally:
            await conn.close()

    run(at_version_1())
    done = cli("db", "upgrade", "--db", pg_url)
    assert done.returncode == 0, done.stderr
    assert f"schema version {SCHEMA_VERSION}" in done.stdout
    row = run(sql(pg_url, "SELECT waiting_seq, sent_seq, version FROM runs WHERE run_id = 'old'"))[0]
    assert tuple(row) == (4, 4, 3)
    store = open_store(pg_url)

    async def check():
        # sent (in doubt): never claimed as unsent, whoever looks
        assert await store.claim(Claim.UNSENT, now=2000, older_than=2000, owner="a", lease_until=3000) == []
        assert await store.claim(Claim.IN_DOUBT, now=2000, older_than=2000, owner="a", lease_until=3000) == ["old"]
        assert (await store.load("old")).version == 3
        await store.close()

    run(check())


def test_db_upgrade_works_for_sqlite_files_too(tmp_path):
    from engine.service.sqlite_store import SCHEMA_VERSION as SQLITE_VERSION

    done = cli("db", "upgrade", "--db", f"sqlite:///{tmp_path}/runs.db")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sqlite:///{tmp_path}/runs.db: schema version {SQLITE_VERSION}"


def test_the_unix_socket_and_password_settings_in_the_url(pg_server):
    if pg_server.external:
        pytest.skip("the socket folder of the tests' own cluster")
    store = open_store(pg_server.socket_url("postgres") + "&pool_size=2")
    assert store.schema_version == SCHEMA_VERSION
    run(store.close())
    with pytest.raises(ValueError, match="pool_size must be"):
        open_store("postgresql://u@127.0.0.1/db?pool_size=none")
    from engine.service.pg_connect import redact
    assert redact("postgresql://u:s3cret@h/db?password=s3cret&sslmode=require") == \
        "postgresql://u:***@h/db?password=***&sslmode=require"


def test_a_newer_schema_is_refused_by_serve_and_upgrade_with_exit_2(pg_url, tmp_path):
    open_store(pg_url)
    run(sql(pg_url, "UPDATE callflow_schema SET version = 99"))
    for args in (["db", "upgrade", "--db", pg_url],
                 ["serve", str(REPO / "flows"), "--port", str(free_port()), "--db", pg_url]):
        done = cli(*args)
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and "schema is version 99, newer than this callflow" in lines[-1]
        assert "Traceback" not in done.stderr


def test_a_foreign_runs_table_is_refused(pg_url):
    run(sql(pg_url, "CREATE TABLE runs (x int)"))
    with pytest.raises(StoreUnusable, match="not callflow's"):
        open_store(pg_url)


def test_concurrent_first_opens_migrate_once(pg_url):
    """Several processes starting at once: the advisory lock makes one migrate, the others
    wait and find the schema current (no 'relation already exists')."""
    async def opens():
        async def one():
            conn = await asyncpg.connect(pg_url)
            try:
                return await migrate(conn, "test")
            finally:
                await conn.close()
        return await asyncio.gather(*(one() for _ in range(6)))

    assert run(opens()) == [SCHEMA_VERSION] * 6
    assert len(run(sql(pg_url, "SELECT * FROM callflow_schema"))) == 1


# -- several processes on one database ----------------------------------------------------------------
def test_concurrent_claims_from_two_pools_are_disjoint(pg_url):
    a, b = open_store(pg_url), open_store(pg_url)

    async def main():
        for i in range(200):
            await a.create_run(waiting_state(f"r{i}"))
        got = await asyncio.gather(*(s.claim(Claim.UNSENT, now=2000, older_than=2000, owner=name, lease_until=3000,
                                             limit=7)
                                     for _ in range(20) for s, name in ((a, "A"), (b, "B"))))
        ids = [run_id for batch in got for run_id in batch]
        assert len(ids) == len(set(ids)) == 200  # each run claimed once, by one of them
        rows = await sql(pg_url, "SELECT lease_owner, count(*) FROM runs GROUP BY lease_owner")
        owners = dict(rows)
        assert set(owners) <= {"A", "B"} and sum(owners.values()) == 200
        await a.close()
        await b.close()

    run(main())


def test_a_save_from_a_stale_copy_in_another_process_conflicts(pg_url):
    a, b = open_store(pg_url), open_store(pg_url)

    async def main():
        s = waiting_state("r1")
        await a.create_run(s)
        copy_a, copy_b = await a.load("r1"), await b.load("r1")
        copy_a.state.status = "completed"
        assert await a.save(copy_a.state, copy_a.version) == 2
        copy_b.state.status = "failed"
        with pytest.raises(Conflict):
            await b.save(copy_b.state, copy_b.version)
        assert (await b.load("r1")).state.status == "completed"
        await a.close()
        await b.close()

    run(main())


def test_one_incoming_call_starts_one_run_across_stores(pg_url):
    a, b = open_store(pg_url), open_store(pg_url)
    inbound = Call("Start", 0, up=True, uuid="CALL-1")

    async def main():
        await a.create_run(waiting_state("r1", reason=WaitReason.HANGUP, call=inbound))
        with pytest.raises(RunExists, match="incoming call CALL-1"):
            await b.create_run(waiting_state("r2", reason=WaitReason.HANGUP, call=inbound))
        # an outbound run's call may carry the same CallUUID (a step, not what started it)
        await b.create_run(waiting_state("r3", reason=WaitReason.HANGUP, call=Call("Dial", 2, uuid="CALL-1")))
        assert await b.find_by_call("CALL-1", "f") == "r3"
        await a.close()
        await b.close()

    run(main())


def test_lease_written_with_the_state_and_renewed_in_one_statement(pg_url):
    store = open_store(pg_url)

    async def main():
        await store.create_run(waiting_state("r1", t=1.0), lease=Lease("me", 4e9))
        await store.create_run(waiting_state("r2", t=1.0), lease=Lease("other", 1.0))
        assert await store.renew("me", 5e9, ["r1", "r2"]) == 1  # r2 is another's
        assert await store.mark_sent("r1", 1, "me") and not await store.mark_sent("r1", 1, "other")
        rows = dict(await sql(pg_url, "SELECT run_id, lease_until FROM runs"))
        assert rows == {"r1": 5e9, "r2": 1.0}
        assert await store.release("other") == 1
        assert await store.release("me", ["r2"]) == 0 and await store.release("me", ["r1"]) == 1
        timer = waiting_state("r3", reason=WaitReason.TIMER, until=50.0)
        await store.create_run(timer)
        assert await store.claim(Claim.TIMER, now=49.0, older_than=0, owner="me", lease_until=60) == []
        assert await store.claim(Claim.TIMER, now=50.0, older_than=0, owner="me", lease_until=60) == ["r3"]
        await store.close()

    run(main())


# -- the server going away -----------------------------------------------------------------------------
def test_unreachable_server_and_wrong_password_at_start_exit_2_with_one_line(pg_server, pg_url):
    port = free_port()
    pg_server.sql("CREATE ROLE callflow_pw LOGIN PASSWORD 'right'")
    try:
        if not pg_server.external:  # our own cluster trusts everyone: require passwords over TCP
            hba = pg_server.dir / "data" / "pg_hba.conf"
            hba.write_text("local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                           "host all all 127.0.0.1/32 scram-sha-256\n")
            pg_server.sql("SELECT pg_reload_conf()")
        host = pg_url.split("@", 1)[1]
        for url, says in ((f"postgresql://u:secret1@127.0.0.1:{port}/db", "cannot connect: connection refused"),
                          (f"postgresql://callflow_pw:secret1@{host}", "password authentication failed")):
            command = ["serve", str(REPO / "flows"), "--port", str(free_port())] if "pw" in url else ["db", "upgrade"]
            for args in ([*command, "--db", url],):
                done = cli(*args)
                assert done.returncode == 2, done
                last = done.stderr.strip().splitlines()[-1]
                assert last.startswith("error: postgresql://") and says in last, done.stderr
                assert "secret1" not in done.stderr + done.stdout and "Traceback" not in done.stderr
    finally:
        pg_server.sql("DROP ROLE callflow_pw")


def test_database_going_away_while_serving_is_unavailable_then_recovers(pg_server, pg_url, tmp_path):
    if pg_server.external:
        pytest.skip("stops the server: only on the tests' own cluster")
    env = clean_env(CALLFLOW_AUTH_ID="MA1", CALLFLOW_AUTH_TOKEN="t" * 20)
    serve = CallflowProcess.start(["serve", str(REPO / "flows"), "--port", str(free_port()),
                                   "--db", pg_url], env, SERVE_READY, log_path=tmp_path / "serve.log")
    try:
        assert httpx.get(serve.url + "/ready").status_code == 200
        pg_server.stop()
        try:
            answer = httpx.get(serve.url + "/ready", timeout=30)
            assert answer.status_code == 503
            runs = httpx.get(serve.url + "/v1/runs", timeout=30, auth=("MA1", "t" * 20))
            assert runs.status_code == 503 and runs.headers["retry-after"] == "1"
        finally:
            pg_server.start()
        assert httpx.get(serve.url + "/ready", timeout=30).status_code == 200
    finally:
        serve.stop()


def test_store_calls_raise_store_unavailable_when_the_server_is_gone(pg_server, pg_url):
    if pg_server.external:
        pytest.skip("stops the server: only on the tests' own cluster")
    store = open_store(pg_url)

    async def main():
        await store.create_run(waiting_state("r1"))
        pg_server.stop()
        try:
            with pytest.raises(StoreUnavailable, match="the run store is unavailable"):
                await store.load("r1")
            with pytest.raises(StoreUnavailable):
                await store.save(waiting_state("r1"), 1)
        finally:
            pg_server.start()
        assert (await store.load("r1")).version == 1  # the pool reconnects
        await store.close()

    run(main())


def test_a_state_holding_nul_and_any_unicode_is_stored_as_written(pg_url):
    """A webhook's answer or a callback parameter may carry U+0000 (jsonb would refuse it:
    the run could never be saved again); the state's text comes back as it was."""
    store = open_store(pg_url)
    odd = {"body": "a\x00b", "emoji": "\U0001f4de", "quote": '"\\', "big": 2**63 - 1, "float": 0.1}

    async def main():
        s = waiting_state("r1")
        s.variables["Web"] = odd
        await store.create_run(s)
        s.variables["Web"] = {**odd, "again": "\x00"}
        await store.save(s, 1)
        assert (await store.load("r1")).state == s
        await store.close()

    run(main())


def test_concurrent_loads_and_saves_go_in_batches_and_keep_each_outcome(pg_url):
    """Many callers at once: loads and saves share statements (pg_batch.py), yet each caller
    gets its own run, its own new version, or its own Conflict."""
    store = open_store(pg_url)

    async def main():
        for i in range(60):
            await store.create_run(waiting_state(f"r{i}"))
        loaded = await asyncio.gather(*(store.load(f"r{i}") for i in [*range(60), 99]))
        assert [s.state.run_id for s in loaded[:60]] == [f"r{i}" for i in range(60)] and loaded[60] is None
        before = store.statements
        states = [s.state for s in loaded[:60]]
        for s in states:
            s.status = "completed"
        versions = [1 if i % 10 == 0 else 7 for i in range(60)]  # the rest name a version they are not at
        results = await asyncio.gather(*(store.save(s, v) for s, v in zip(states, versions)), return_exceptions=True)
        assert store.statements - before < 60  # batched
        assert [r if isinstance(r, int) else type(r).__name__ for r in results] == \
            [2 if v == 1 else "Conflict" for v in versions]
        # two saves of one run from one version at once: exactly one wins
        twice = await asyncio.gather(store.save(states[0], 2), store.save(states[0], 2), return_exceptions=True)
        assert sorted(type(r).__name__ for r in twice) == ["Conflict", "int"]
        rows = dict(await sql(pg_url, "SELECT run_id, version FROM runs"))
        assert (rows["r0"], rows["r1"], rows["r10"]) == (3, 1, 2)
        await store.close()

    run(main())


def test_concurrent_creates_and_sent_marks_are_batched_and_a_duplicate_is_told_apart(pg_url):
    store = open_store(pg_url)

    async def main():
        states = [waiting_state(f"r{i}") for i in range(40)]
        before = store.statements
        created = await asyncio.gather(*(store.create_run(s, Lease("me", 4e9)) for s in [*states, states[5]]),
                                       return_exceptions=True)
        # of the two creates of r5, either may win (concurrent batches); exactly one does
        assert sorted(map(type, (created[5], created[40])), key=str) == sorted([int, RunExists], key=str)
        assert created[:5] + created[6:40] == [1] * 39
        marks = await asyncio.gather(*(store.mark_sent(s.run_id, 1, "me" if i % 2 else "other")
                                       for i, s in enumerate(states)))
        assert marks == [bool(i % 2) for i in range(40)]
        assert store.statements - before < 80
        rows = dict(await sql(pg_url, "SELECT run_id, sent_seq FROM runs"))
        assert [rows[f"r{i}"] for i in range(4)] == [None, 1, None, 1]
        await store.close()

    run(main())


def test_flow_revisions_are_kept_once_and_counted_by_unfinished_runs(pg_url):
    store = open_store(pg_url)

    async def main():
        await store.save_revision("f", "rev1", "spec: callflow/v1\n")
        await store.save_revision("f", "rev1", "spec: callflow/v1\n")  # idempotent
        assert await store.load_revision("rev1") == "spec: callflow/v1\n" and await store.load_revision("x") is None
        s = waiting_state("r1")
        s.flow_revision = "rev1"
        await store.create_run(s)
        await store.create_run(waiting_state("r2"))
        assert await store.unfinished_by_revision() == {("f", "rev1"): 1, ("f", ""): 1}
        await store.close()

    run(main())


def test_a_version_4_database_gets_the_numbers_of_its_runs(pg_url):
    """Migration 5 fills from_number/to_number from the stored states with the rule
    `store.phone_number` applies on save (the same SQL-side)."""
    from test_store_contract import inbound, outbound

    async def at_version_4():
        conn = await asyncpg.connect(pg_url)
        try:
            await migrate(conn, "test", target=4)
            for i, state in enumerate((inbound("in", "ca-1", src="1 415 555-0100"),
                                       outbound("out", "+12025550100", "14155550199<+14155550198"),
                                       RunState(run_id="plain", flow_id="f", status="completed"))):
                await conn.execute("INSERT INTO runs (run_id, flow_id, status, created_at, updated_at, version, state)"
                                   " VALUES ($1, 'f', $2, $3, $3, 1, $4)", state.run_id, state.status, float(i),
                                   state.to_json())
            await conn.execute("INSERT INTO flow_revisions VALUES ('r', 'f', 'x', 5.0)")
        finally:
            await conn.close()

    run(at_version_4())
    store = open_store(pg_url)
    rows = run(sql(pg_url, "SELECT run_id, from_number, to_number FROM runs ORDER BY id"))
    assert [tuple(r) for r in rows] == [("in", "+14155550100", "+12025550100"),
                                        ("out", "+12025550100", "+14155550199"), ("plain", None, None)]
    assert run(sql(pg_url, "SELECT current_at FROM flow_revisions"))[0][0] == 5.0

    async def check():
        try:
            page, _ = await store.list_runs(number="+12025550100")
            assert [r["run_id"] for r in page] == ["out", "in"]
        finally:
            await store.close()

    run(check())


def test_processes_pruning_revisions_at_once_agree(pg_url):
    """Two processes' sweepers prune at once: every old revision goes exactly once (the counts
    add up), what either serves stays, and neither fails."""
    a, b = open_store(pg_url), open_store(pg_url)

    async def main():
        try:
            for i in range(60):
                await a.save_revision("f", f"old-{i}", "x")
            await a.save_revision("f", "served-by-a", "x")
            await b.save_revision("f", "served-by-b", "x")
            await sql(pg_url, "UPDATE flow_revisions SET current_at = 0 WHERE revision LIKE 'old-%'")  # a week ago
            now = time.time()  # each process marked what it serves within the last minute (its last prune)
            counts = await asyncio.gather(*(store.prune_revisions([mine], now + k, now - 600)
                                            for k, (store, mine) in enumerate(((a, "served-by-a"), (b, "served-by-b"),
                                                                              (a, "served-by-a"), (b, "served-by-b")))))
            assert sum(counts) == 60, counts
            rows = await sql(pg_url, "SELECT revision FROM flow_revisions ORDER BY 1")
            assert [r[0] for r in rows] == ["served-by-a", "served-by-b"]
        finally:
            await a.close()
            await b.close()

    run(main())
