"""`call_out` with `retry:` in a real `callflow serve` against a real `callflow sandbox`
whose callee is busy: the call is placed again on serve's durable timers, `interval` apart
as the sandbox measures it, each attempt one Call request with its own callback URLs; and a
serve killed with SIGKILL while the run waits between two attempts is replaced by another
on the same database, which places the remaining calls, none twice.
"""

from __future__ import annotations

import httpx
import pytest
from processes import wait_for
from test_call_retry import FLOW as REDIAL
from test_server_e2e import (
    AUTH,
    AUTH_ID,
    finished,
    sandbox,  # noqa: F401  (its fixture, on this module's workdir)
    serve_env,
    start_serve,
)

BUSY = "+12025550166"
FLOW = REDIAL.replace("RETRY", "{attempts: 3, interval: INTERVAL}")  # the flow of tests/test_call_retry.py


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("retry")
    (d / "flows").mkdir()
    (d / "scenario.yaml").write_text(f'default: answered\ndestinations:\n  "{BUSY}": busy\n')
    return d


def _calls(sandbox_url: str, run_id: str) -> list[dict]:
    calls = httpx.get(f"{sandbox_url}/sandbox/calls").json()["calls"]
    return sorted((c for c in calls if f"/callbacks/{run_id}/" in c["request"]["answer_url"]),
                  key=lambda c: c["placed_at"])


def _trigger(url: str) -> str:
    r = httpx.post(f"{url}/v1/account/{AUTH_ID}/phlo/redial/", json={"to": BUSY}, auth=AUTH)
    assert r.status_code == 201, r.text
    return r.json()["api_id"]


def _check_three_attempts(sandbox_url: str, rec: dict, run_id: str, interval: float) -> None:
    assert rec["status"] == "completed", rec
    assert rec["path"] == ["Start", "Call", "Call", "Call", "Done"]
    assert [s["outcome"] for s in rec["steps"][1:4]] == ["again", "again", "busy"]
    assert rec["variables"]["Call"]["attempts"] == 3 and rec["variables"]["Call"]["status"] == "busy"
    calls = _calls(sandbox_url, run_id)
    # one Call request per attempt, each with the callbacks of its own step
    assert [c["request"]["answer_url"].rsplit("/", 2)[1] for c in calls] == ["1", "2", "3"], calls
    assert len(rec["requests"]) == 3 and all(c["result"] == "busy" for c in calls)
    gaps = [b["placed_at"] - a["placed_at"] for a, b in zip(calls, calls[1:])]
    assert all(gap >= interval for gap in gaps), gaps


def test_a_busy_callee_is_called_three_times_interval_apart(workdir, sandbox):  # noqa: F811
    (workdir / "flows" / "redial.yaml").write_text(FLOW.replace("INTERVAL", "1"))
    serve, url = start_serve(workdir, serve_env(sandbox), f"sqlite:///{workdir}/retry.db", name="retry")
    try:
        run_id = _trigger(url)
        _check_three_attempts(sandbox, finished(url, run_id), run_id, 1)
    finally:
        serve.stop()


def test_the_retry_timer_survives_kill_9_between_attempts(workdir, sandbox):  # noqa: F811
    (workdir / "flows" / "redial.yaml").write_text(FLOW.replace("INTERVAL", "3"))
    db, env = f"sqlite:///{workdir}/restart.db", serve_env(sandbox)
    first, url = start_serve(workdir, env, db, name="retry1")
    port = int(url.rsplit(":", 1)[1])
    try:
        run_id = _trigger(url)

        def between_attempts():
            rec = httpx.get(f"{url}/v1/runs/{run_id}", auth=AUTH).json()
            return rec if len(rec["steps"]) == 2 and len(_calls(sandbox, run_id)) == 1 \
                and rec["variables"].get("Call", {}).get("status") == "busy" else None

        waiting = wait_for(between_attempts, what="the first attempt to end busy")
        assert waiting["status"] == "waiting" and waiting["steps"][1]["outcome"] is None
        first.kill9()  # the run waits on its timer for the second attempt
    finally:
        first.stop()
    second, url2 = start_serve(workdir, env, db, port=port, name="retry2")
    try:
        _check_three_attempts(sandbox, finished(url2, run_id), run_id, 3)
    finally:
        second.stop()
