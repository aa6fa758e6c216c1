"""Durable timers in a real `callflow serve` (with a real `callflow sandbox`): a run waits on
a timer, serve is killed with SIGKILL before it is due, a new serve on the same database
fires it, and exactly one call is placed.
"""

from __future__ import annotations

from datetime import datetime

import httpx
from processes import wait_for
from test_server_e2e import (  # noqa: F401  (sandbox, workdir: the module's fixtures, shared)
    ANSWERS,
    AUTH,
    AUTH_ID,
    calls_for,
    finished,
    sandbox,
    serve_env,
    start_serve,
    workdir,
)
from test_timer_service import REMINDER

TIMER_FLOW = REMINDER.replace("seconds: 3600", "seconds: 2")  # the flow of tests/test_timer_service.py



def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_timer_survives_kill_9_and_fires_once_after_the_restart(workdir, sandbox):  # noqa: F811
    (workdir / "flows" / "reminder.yaml").write_text(TIMER_FLOW)
    db, env = f"sqlite:///{workdir}/timers.db", serve_env(sandbox)
    first, url = start_serve(workdir, env, db, name="timers1")
    port = int(url.rsplit(":", 1)[1])
    try:
        r = httpx.post(f"{url}/v1/account/{AUTH_ID}/phlo/reminder/", json={"to": ANSWERS}, auth=AUTH)
        assert r.status_code == 201, r.text
        run_id = r.json()["api_id"]
        waiting = httpx.get(f"{url}/v1/runs/{run_id}", auth=AUTH).json()
        assert waiting["status"] == "waiting" and waiting["path"] == ["Start", "Later"]
        first.kill9()  # long before the timer is due
    finally:
        first.stop()
    assert calls_for(sandbox, run_id) == []
    second, url2 = start_serve(workdir, env, db, port=port, name="timers2")
    try:
        rec = finished(url2, run_id)
        assert rec["status"] == "completed" and rec["path"] == ["Start", "Later", "Call", "Greet", "Done"], rec
        later = rec["steps"][1]
        assert later["outcome"] == "done" and _seconds(later["ended_at"]) - _seconds(later["started_at"]) >= 2
        wait_for(lambda: calls_for(sandbox, run_id), what="the call")
        assert len(calls_for(sandbox, run_id)) == 1 and len(rec["requests"]) == 1  # fired once: one call
    finally:
        second.stop()
