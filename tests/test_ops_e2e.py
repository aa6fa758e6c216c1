"""Idempotent triggers, /ready /metrics and the JSON log lines of a real `callflow serve`
process, with a real `callflow sandbox` (both on 127.0.0.1, free ports), the official SDK
and httpx as clients; serve restarted on the same database."""

from __future__ import annotations

import base64
import json

import httpx
import plivo
from prometheus_client.parser import text_string_to_metric_families
from test_server_e2e import (  # noqa: F401  (sandbox, workdir: the module's fixtures, shared)
    ANSWERS,
    AUTH,
    AUTH_ID,
    AUTH_TOKEN,
    FLOW,
    PLIVO_ID,
    PLIVO_TOKEN,
    calls_for,
    check_whole_path,
    sandbox,
    serve_env,
    start_serve,
    workdir,
)

CUSTOMER = "NeverLoggedCustomer7q3"  # SIP header values: letters and digits only


def test_idempotent_trigger_one_run_one_call_across_a_restart_and_json_logs_without_secrets(workdir, sandbox):  # noqa: F811
    db = str(workdir / "ops.db")
    env = serve_env(sandbox, CALLFLOW_LOG_FORMAT="json")
    serve, url = start_serve(workdir, env, db, name="ops-serve")
    trigger_url = f"{url}/v1/account/{AUTH_ID}/phlo/{FLOW}/"
    body = {"to": ANSWERS, "customer": CUSTOMER}
    try:
        sdk = plivo.phlo.RestClient(AUTH_ID, AUTH_TOKEN)
        sdk.phlo_base_uri = f"{url}/v1"
        sdk.session.headers["Idempotency-Key"] = "checkout-42"  # the SDK's own requests session
        first = sdk.phlo.get(FLOW).run(to=ANSWERS, customer=CUSTOMER)
        run_id = first.api_id
        again = httpx.post(trigger_url, json=body, auth=AUTH, headers={"Idempotency-Key": "checkout-42"})
        assert again.status_code == 201 and again.json()["api_id"] == run_id
        check_whole_path(sandbox, url, run_id, CUSTOMER)
        other = httpx.post(trigger_url, json={**body, "to": "+12025550199"}, auth=AUTH,
                           headers={"Idempotency-Key": "checkout-42"})
        assert other.status_code == 422
        assert httpx.get(f"{url}/ready").json() == {"status": "ready"}
        metrics = httpx.get(f"{url}/metrics", auth=AUTH)
        started = {tuple(s.labels.items()): s.value for f in text_string_to_metric_families(metrics.text)
                   for s in f.samples if s.name == "callflow_runs_started_total"}
        assert started == {(("flow", FLOW),): 1.0} and "_created" not in metrics.text
        assert httpx.get(f"{url}/metrics").status_code == 401
    finally:
        serve.stop()

    serve, url = start_serve(workdir, env, db, name="ops-serve-2")  # a restart, the same database
    try:
        r = httpx.post(f"{url}/v1/account/{AUTH_ID}/phlo/{FLOW}/", json=body, auth=AUTH,
                       headers={"Idempotency-Key": "checkout-42"})
        assert r.status_code == 201 and r.json()["api_id"] == run_id
        assert r.headers["idempotent-replayed"] == "true"
        assert len(calls_for(sandbox, run_id)) == 1  # one run, one Call request, all along
        runs = httpx.get(f"{url}/v1/runs", auth=AUTH).json()["runs"]
        assert [x["run_id"] for x in runs] == [run_id]
    finally:
        serve.stop()

    for name in ("ops-serve.log", "ops-serve-2.log"):
        text = (workdir / name).read_text()
        lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
        assert all({"time", "level", "event", "message"} <= set(e) for e in lines)
        for secret in (AUTH_TOKEN, PLIVO_TOKEN, CUSTOMER, ANSWERS, _basic(AUTH_ID, AUTH_TOKEN),
                       _basic(PLIVO_ID, PLIVO_TOKEN), "Authorization", "Signature", "Nonce"):
            assert secret.lower() not in text.lower(), (name, secret)
    events = [json.loads(line) for line in (workdir / "ops-serve.log").read_text().splitlines()]
    mine = [e["event"] for e in events if e.get("run_id") == run_id]
    assert mine[0] == "run.created" and "run.finished" in mine and mine.count("run.created") == 1
    provider = next(e for e in events if e["event"] == "provider.request")
    assert provider["status"] == "201" and provider["latency_ms"] > 0 and provider["node"] == "Call"


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()
