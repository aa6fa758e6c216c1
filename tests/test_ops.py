"""Idempotent triggers, callbacks replayed without a write, /health /ready /metrics, log lines:
in process (the app on httpx's ASGI transport, a fake provider, a real SQLite file).
Real processes: tests/test_ops_e2e.py."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_server import (
    AUTH_ID,
    FLOW,
    TO,
    FakeProvider,
    basic,
    call_params,
    callback,
    drain,
    go,
    runs,
    serving,
    started,
    trigger,
)

from engine.service import logs
from engine.service.sqlite_store import SCHEMA_VERSION, SQLiteStore
from engine.service.store import IdempotencyKey
from engine.state import RunState

PAYLOAD = {"to": TO, "customer": "johndoe"}


def keyed(key: str) -> dict:
    return {"headers": {**basic(), "Idempotency-Key": key}}


async def post(client, payload, key, flow=FLOW):
    return await client.post(f"/v1/account/{AUTH_ID}/phlo/{flow}/", json=payload, **keyed(key))


# -- Idempotency-Key -----------------------------------------------------------------------------
def test_a_trigger_sent_twice_with_one_key_makes_one_run_and_one_call(tmp_path):
    async def main():
        provider = FakeProvider()
        async with serving(tmp_path, provider) as (service, client):
            first = await post(client, PAYLOAD, "order-1234")
            await drain(service)
            again = await post(client, {"customer": "johndoe", "to": TO}, "order-1234")  # same body, reordered
            await drain(service)
            assert first.status_code == again.status_code == 201
            assert first.json() == again.json()
            assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
            assert len(await runs(service)) == 1 and len(provider.requests) == 1
            other = await post(client, PAYLOAD, "order-5678")  # another key: another run
            assert other.status_code == 201 and other.json()["api_id"] != first.json()["api_id"]
            unkeyed = [await trigger(client), await trigger(client)]  # no key: every request is a run
            await drain(service)
            assert len({r.json()["api_id"] for r in unkeyed}) == 2
            assert len(await runs(service)) == 4 and len(provider.requests) == 4
            s = _samples((await client.get("/metrics", headers=basic())).text)
            assert s[("callflow_trigger_replays_total", (("flow", FLOW),))] == 1
            assert s[("callflow_runs_started_total", (("flow", FLOW),))] == 4

    go(main())


def test_the_same_key_with_another_body_is_422_and_starts_nothing(tmp_path):
    async def main():
        provider = FakeProvider()
        async with serving(tmp_path, provider) as (service, client):
            assert (await post(client, PAYLOAD, "k-1")).status_code == 201
            r = await post(client, {**PAYLOAD, "customer": "janedoe"}, "k-1")
            assert r.status_code == 422 and "Idempotency-Key" in r.json()["error"] and set(r.json()) == {"api_id", "error"}
            await drain(service)
            assert len(await runs(service)) == 1 and len(provider.requests) == 1

    go(main())


@pytest.mark.parametrize("key", ["", "a" * 256, "has space", "tab\tkey", "caf\u00e9"])
def test_an_invalid_key_is_400_and_starts_nothing(tmp_path, key):
    async def main():
        async with serving(tmp_path) as (service, client):
            headers = {**basic(), "Idempotency-Key": key.encode("utf-8")}
            r = await client.post(f"/v1/account/{AUTH_ID}/phlo/{FLOW}/", json=PAYLOAD, headers=headers)
            assert r.status_code == 400 and "Idempotency-Key" in r.json()["error"]
            assert await runs(service) == []

    go(main())


def test_concurrent_requests_with_one_key_make_one_run(tmp_path):
    async def main():
        provider = FakeProvider()
        async with serving(tmp_path, provider) as (service, client):
            answers = await asyncio.gather(*(post(client, PAYLOAD, "x" * 255) for _ in range(20)))
            await drain(service)
            assert {r.status_code for r in answers} == {201}
            assert len({r.json()["api_id"] for r in answers}) == 1
            assert len(await runs(service)) == 1 and len(provider.requests) == 1

    go(main())


def _state(run_id: str) -> RunState:
    return RunState(run_id=run_id, flow_id=FLOW, created_at=1.0, updated_at=1.0)


def test_store_keys_are_scoped_hold_across_reopening_expire_and_are_purged(tmp_path):
    path = str(tmp_path / "keys.db")
    day = 24 * 3600

    def key(k, scope="A/flow", fp="f1", now=day * 10):
        return IdempotencyKey(scope, k, fp, now, now - day)

    async def main():
        store = SQLiteStore(path)
        won = await store.create_run_once(_state("r1"), key("k"))
        lost = await store.create_run_once(_state("r2"), key("k", fp="f2"))
        assert (won.run_id, won.created) == ("r1", True) and (lost.run_id, lost.created, lost.fingerprint) == \
            ("r1", False, "f1")
        assert await store.load("r2") is None  # the loser's run was not written
        elsewhere = await store.create_run_once(_state("r3"), key("k", scope="A/other"))
        assert elsewhere.created and elsewhere.run_id == "r3"
        for i in range(5):
            await store.create_run_once(_state(f"old{i}"), key(f"old{i}", now=day))
        await store.close()

        store = SQLiteStore(path)  # a restart: the key still answers with its run
        assert (await store.create_run_once(_state("r4"), key("k", now=day * 10 + 60))).run_id == "r1"
        later = day * 11 + 1  # more than a day after r1's key: expired, a new run takes it
        renewed = await store.create_run_once(_state("r5"), key("k", now=later))
        assert renewed.created and renewed.run_id == "r5"
        await store.close()
        with sqlite3.connect(path) as db:  # the keyed create purged every expired key (old*, A/other's)
            keys = db.execute("SELECT scope, key, run_id FROM idempotency_keys").fetchall()
        assert keys == [("A/flow", "k", "r5")]

    go(main())


def test_a_version_2_database_is_migrated(tmp_path):
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as db:
        db.executescript("""CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE,
            flow_id TEXT NOT NULL, status TEXT NOT NULL, error TEXT, created_at REAL NOT NULL,
            updated_at REAL NOT NULL, waiting_for TEXT, version INTEGER NOT NULL, state TEXT NOT NULL,
            call_uuid TEXT); PRAGMA user_version = 2;""")

    async def main():
        store = SQLiteStore(str(path))
        assert (await store.create_run_once(_state("r1"), IdempotencyKey("s", "k", "f", 5.0, 1.0))).created
        await store.close()

    go(main())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        assert db.execute("SELECT run_id FROM idempotency_keys").fetchall() == [("r1",)]


# -- replayed callbacks ----------------------------------------------------------------------------
def test_a_replayed_signed_callback_is_answered_without_a_write(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            run_id = await started(client, service)
            params = call_params()
            url = f"https://flows.example.com/callbacks/{run_id}/1/answer"
            from engine.service.signature import sign_v3_headers
            signed = sign_v3_headers("POST", url, params, "provider-token")  # one nonce, one signature
            first = await callback(client, run_id, 1, "answer", params, headers=signed)
            after_first = await service.store.load(run_id)
            for _ in range(3):
                again = await callback(client, run_id, 1, "answer", params, headers=signed)
                assert again.status_code == 200 and again.text == first.text
            after = await service.store.load(run_id)
            assert after.version == after_first.version
            assert after.state.updated_at == after_first.state.updated_at
            assert after.state.to_json() == after_first.state.to_json()
            ring = call_params("ringing")  # a repeated ring, a stale hangup of another step: no write either
            await callback(client, run_id, 1, "ring", ring)
            after = await service.store.load(run_id)
            assert after.state.call.ringing
            await callback(client, run_id, 1, "ring", ring)
            await callback(client, run_id, 7, "hangup", call_params("completed"))
            assert (await service.store.load(run_id)).version == after.version
            await callback(client, run_id, 1, "hangup", call_params("completed", HangupCause="NORMAL_CLEARING"))
            done = await service.store.load(run_id)
            assert done.version == after.version + 1 and done.state.status == "completed"

    go(main())


# -- /health, /ready, /metrics ----------------------------------------------------------------------
def _samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_health_and_ready_need_no_auth_and_ready_fails_without_the_store(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            assert (await client.get("/health")).json()["status"] == "ok"
            r = await client.get("/ready")
            assert r.status_code == 200 and r.json() == {"status": "ready"}
            await service.store.close()
            r = await client.get("/ready")
            assert r.status_code == 503 and r.json()["status"] == "unavailable"
            assert (await client.get("/health")).status_code == 200  # alive all the same
            m = await client.get("/metrics", headers=basic())  # counters still answer
            assert m.status_code == 200 and "callflow_runs_started" in m.text

    go(main())


def test_metrics_behind_auth_count_runs_requests_callbacks_and_read_waiting_runs(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client), serving(tmp_path / "b") as (_, other):
            assert (await client.get("/metrics")).status_code == 401
            run_id = await started(client, service)
            await callback(client, run_id, 1, "answer", call_params())
            await callback(client, run_id, 1, "answer", call_params())  # a replay: counted as a callback
            r = await client.get("/metrics", headers=basic())
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            s = _samples(r.text)
            assert s[("callflow_runs_started_total", (("flow", FLOW),))] == 1
            assert s[("callflow_provider_requests_total", (("outcome", "201"), ("target", "provider")))] == 1
            assert s[("callflow_provider_request_seconds_count", (("target", "provider"),))] == 1
            assert s[("callflow_callback_seconds_count", (("kind", "answer"),))] == 2
            assert s[("callflow_step_seconds_count", (("event", "callback"),))] == 1  # the replay: no step
            assert s[("callflow_runs_waiting", (("waiting_for", "hangup"),))] == 1
            assert s[("callflow_runs_waiting", (("waiting_for", "call"),))] == 0
            assert s[("callflow_requests_in_doubt", ())] == 0
            await callback(client, run_id, 1, "hangup", call_params("completed"))
            s = _samples((await client.get("/metrics", headers=basic())).text)
            assert s[("callflow_runs_finished_total", (("flow", FLOW), ("status", "completed")))] == 1
            assert s[("callflow_runs_waiting", (("waiting_for", "hangup"),))] == 0
            # another app in this process has its own registry
            s = _samples((await other.get("/metrics", headers=basic())).text)
            assert ("callflow_runs_started_total", (("flow", FLOW),)) not in s

    go(main())


def test_requests_in_doubt_and_provider_errors_are_counted(tmp_path):
    async def main():
        async with serving(tmp_path, FakeProvider("doubt")) as (service, client):
            await started(client, service)
            service.clock = lambda: 10 ** 10  # the request was recorded long ago
            s = _samples((await client.get("/metrics", headers=basic())).text)
            assert s[("callflow_requests_in_doubt", ())] == 1
            assert s[("callflow_runs_waiting", (("waiting_for", "response"),))] == 1
            assert s[("callflow_provider_request_errors_total", (("status", "in_doubt"), ("target", "provider")))] == 1

    go(main())


# -- log lines -------------------------------------------------------------------------------------
def test_json_log_lines_carry_run_events_and_no_payload_values(tmp_path):
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logs.logger.level, logging._srcfile)
    logs.configure("json", "info", stream)
    try:
        async def main():
            async with serving(tmp_path) as (service, client):
                run_id = await started(client, service)
                await callback(client, run_id, 1, "answer", call_params())
                await callback(client, run_id, 1, "hangup", call_params("completed"))
                return run_id

        run_id = go(main())
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logs.logger.setLevel(saved[2])
        logging._srcfile = saved[3]
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = True
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [e for e in lines if e.get("run_id") == run_id]
    events = [e["event"] for e in mine]
    assert events == ["run.created", "provider.request", "callback", "run.finished", "callback"]
    assert mine[0]["payload_keys"] == ["customer", "to"] and mine[-2]["status"] == "completed"
    steps = [s for e in mine for s in e.get("steps", ())]
    assert [(s["node"], s["outcome"]) for s in steps] == [("Start", "http"), ("Call", "answered"),
                                                         ("Greet", "done"), ("Done", None)]
    assert [e["changed"] for e in mine if e["event"] == "callback"] == [True, True]
    text = stream.getvalue()
    assert "johndoe" not in text and TO not in text and "provider-token" not in text and "trigger-token" not in text


def test_text_format_and_choices():
    stream = io.StringIO()
    assert logs.resolve_format("auto", stream) == "json"  # not a terminal
    with pytest.raises(ValueError):
        logs.resolve_format("xml")
    record = logging.LogRecord("callflow.server", logging.INFO, "", 0, "run.created", (), None)
    record.event, record.run_id = "run.created", "r-1"
    assert logs.TextFormatter().format(record).endswith(" info run.created run_id=r-1")
