"""The disk under serve's database fills up during traffic, then frees again: every trigger
is answered 201 or 503 (JSON, no Python text), reads keep working, every accepted run
completes once space is back, each with one call and no false reason, and no traceback.

The disk is a 3 MB tmpfs mounted in a private mount namespace (`unshare -m`, root only);
the test fills it through /proc/PID/root. Without a mount namespace it is skipped."""

from __future__ import annotations

import asyncio
import errno
import os
import time

import httpx
import pytest
from processes import SANDBOX_READY, CallflowProcess, clean_env, wait_for

from engine.service.signature import sign_v3_headers
from hostile.harness import FLOW, Serve
from hostile.test_bad_databases import MOUNTS

# The window and the traffic in it; the figure is HOSTILE_FULL_SECONDS=10 HOSTILE_TRIGGERS=300.
FULL_SECONDS = float(os.environ.get("HOSTILE_FULL_SECONDS", "3"))
TRIGGERS = int(os.environ.get("HOSTILE_TRIGGERS", "100"))
SLOW = "+12025550166"  # answers after the window: its callbacks come once the disk is free again
PLIVO_ID, PLIVO_TOKEN = "MADISKFULLSANDBOXAC1", "disk-full-provider-token"
TRIGGER_ID, TRIGGER_TOKEN = "MADISKFULLTRIGGERAC1", "disk-full-trigger-token"


def _fill(path) -> int:
    """Fill the disk to the last byte: a chunk left free is room for a WAL frame (4 KB), and
    then a write the test expects refused goes through."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    written += f.write(b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    return written


async def _burst(serve: Serve, n: int) -> list[httpx.Response]:
    url = f"{serve.url}/v1/account/{serve.auth[0]}/phlo/{FLOW}/"
    async with httpx.AsyncClient(auth=serve.auth, timeout=10) as client:
        return await asyncio.gather(*(client.post(url, json={"to": SLOW, "customer": f"c{i}"}) for i in range(n)))


@pytest.mark.skipif(not MOUNTS, reason="no private mount namespace (unshare -m as root) on this machine")
def test_a_disk_filled_during_traffic_loses_nothing(workdir):
    (workdir / "disk").mkdir()
    (workdir / "scenario.yaml").write_text(f'default: answered\ndestinations:\n  "{SLOW}": '
                                           f"{{result: answered, answer_after: {FULL_SECONDS + 2:g}}}\n")
    sandbox = CallflowProcess.start(["sandbox", "--port", "0", "--scenario", str(workdir / "scenario.yaml")],
                                    clean_env(PLIVO_AUTH_ID=PLIVO_ID, PLIVO_AUTH_TOKEN=PLIVO_TOKEN), SANDBOX_READY,
                                    workdir / "sandbox.log")
    disk = workdir / "disk"
    prefix = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o size=3m tmpfs "{disk}" && exec "$@"', "-"]
    serve = Serve.start(workdir, db=f"sqlite:///{disk}/runs.db", prefix=prefix, sandbox=False,
                        CALLFLOW_AUTH_ID=TRIGGER_ID, CALLFLOW_AUTH_TOKEN=TRIGGER_TOKEN, PLIVO_AUTH_ID=PLIVO_ID,
                        PLIVO_AUTH_TOKEN=PLIVO_TOKEN, PLIVO_API_URL=sandbox.url,
                        # a run whose sent-mark the full disk refused is let go of, and taken
                        # over when its lease runs out: 3 s here, not 30
                        CALLFLOW_LEASE_SECONDS="3")
    try:
        answers = asyncio.run(_burst(serve, 20))
        first = answers[0].json()["api_id"]  # placed and saved before the disk fills: waits for its callbacks
        # "waiting" alone is also the wait for the Call's answer, whose save would then hold the run
        # (patiently, for the whole window) and the ring callback below with it: wait for the answer saved.
        wait_for(lambda: serve.get(f"/v1/runs/{first}").json()["requests"][0].get("response"),
                 what="the first run's Call answered and saved")
        fill = f"/proc/{serve.pid}/root{disk}/fill"
        _fill(fill)
        full_since = time.monotonic()
        bursts = max(1, TRIGGERS // 25)
        for i in range(bursts):  # spread over the window
            answers += asyncio.run(_burst(serve, TRIGGERS // bursts))
            time.sleep(max(0.0, full_since + FULL_SECONDS * (i + 1) / bursts - time.monotonic()))
        some_run = first
        assert serve.get(f"/v1/runs/{some_run}").status_code == 200  # reads go on while the disk is full
        # A callback while the disk is full: a 503 the provider retries with the run unchanged, or,
        # where SQLite's WAL still had room from before the fill (it reuses its frames) or the
        # callback changed nothing, a 200 with a whole record; never half of one.
        before = serve.get(f"/v1/runs/{some_run}").json()
        url = f"{serve.url}/callbacks/{some_run}/1/ring"
        ring = {"CallUUID": "c-ring", "CallStatus": "ringing", "Event": "Ring"}
        r = httpx.post(url, data=ring, headers=sign_v3_headers("POST", url, ring, PLIVO_TOKEN), timeout=15)
        after = serve.get(f"/v1/runs/{some_run}").json()
        if r.status_code == 503:
            assert "store" in r.json()["error"] and after == before, r.text
        else:
            assert r.status_code == 200 and after["status"] == "waiting", (r.text, after)
            assert after["steps"][:len(before["steps"])] == before["steps"] and after["path"] == before["path"]
        os.unlink(fill)
        answers += asyncio.run(_burst(serve, 30))

        statuses = [r.status_code for r in answers]
        assert set(statuses) <= {201, 503}, statuses
        refused = [r for r in answers if r.status_code == 503]
        assert refused, "the full disk refused nothing: the probe did not bite"
        assert all(set(r.json()) == {"api_id", "error"} and "store" in r.json()["error"] for r in refused)
        accepted = [r.json()["api_id"] for r in answers if r.status_code == 201]
        records = [serve.finished(run_id, timeout=40 + FULL_SECONDS) for run_id in accepted]
        bad = [r for r in records if r["status"] != "completed" or r["path"] != ["Start", "Call", "Greet", "Done"]]
        assert not bad, bad[:2]
        assert not any("restart" in (s.get("error") or "") for r in records for s in r["steps"])
        calls = httpx.get(f"{sandbox.url}/sandbox/calls").json()["calls"]
        per_run = {}
        for c in calls:
            run_id = c["request"]["answer_url"].split("/callbacks/")[1].split("/")[0]
            per_run[run_id] = per_run.get(run_id, 0) + 1
        assert per_run == {run_id: 1 for run_id in accepted}  # one call per accepted run, none for refused
        log = serve.log()
        assert "Traceback" not in log and serve.alive()
        print(f"disk full: {len(answers)} triggers, {len(accepted)} accepted (all completed), "
              f"{len(refused)} refused with 503")
    finally:
        serve.stop()
        sandbox.stop()
