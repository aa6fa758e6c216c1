"""Campaigns: pace accuracy against a real `callflow serve --sandbox`, and the cost of checking
and storing a 100,000-row CSV.

    .venv/bin/python bench/campaign_bench.py [--rates 2,20,100] [--seconds 10] [--rows 100000]

1. Pace: per rate, a campaign of `rate * seconds` rows on the bundled outbound-sip-headers flow
   (every call answers on the embedded sandbox), started through `POST /v1/campaigns`; once
   done, the runs' created_at (ms) give the achieved pace ((n - 1) / (last - first)) and the
   most starts in any window of one second ([t, t + 1 s)).
2. Size: `POST /v1/campaigns` with `--rows` rows (paused at once, so nothing is called): the
   request's time (both checking passes and the batched inserts) and serve's RSS before and
   after; then the same in this process on a fresh SQLite file, timed, and once more under
   tracemalloc for the peak of Python allocations (the CSV text itself, one batch of rows, the
   set of destinations).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hostile.harness import FLOW, FLOWS, Serve, rss_mb  # noqa: E402

from engine.campaign_rows import check_rows, csv_records, survey  # noqa: E402
from engine.load.build import load_flow  # noqa: E402


def contacts(count: int, start: int = 0) -> str:
    return "to,customer\n" + "".join(f"+1{2025550000 + start + i},c{i}\n" for i in range(count))


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def wait_done(client: httpx.Client, campaign_id: str, timeout: float) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rec = client.get(f"/v1/campaigns/{campaign_id}").json()
        if rec["status"] == "done":
            return rec
        time.sleep(0.2)
    raise SystemExit(f"campaign {campaign_id} not done after {timeout} s")


def pace(serve: Serve, rate: float, secs: float, offset: int) -> dict:
    rows = max(2, int(rate * secs))
    with httpx.Client(base_url=serve.url, auth=serve.auth, timeout=60) as client:
        r = client.post("/v1/campaigns", json={"flow_id": FLOW, "csv": contacts(rows, offset), "rate": rate})
        r.raise_for_status()
        campaign_id = r.json()["id"]
        rec = wait_done(client, campaign_id, secs * 3 + 30)
        results = client.get(f"/v1/campaigns/{campaign_id}/results").text.splitlines()[1:]
        run_ids = [line.split(",")[2] for line in results]
        starts = sorted(seconds(client.get(f"/v1/runs/{rid}").json()["created_at"]) for rid in run_ids)
    span = starts[-1] - starts[0]
    most = max(sum(1 for t in starts if s <= t < s + 0.9985) for s in starts)
    failed = rec["progress"]["failed"]
    return {"rate": rate, "rows": rows, "achieved": (rows - 1) / span, "max_1s": most, "span_s": span,
            "failed": failed}


def size_over_http(serve: Serve, rows: int) -> dict:
    text = contacts(rows, 1_000_000)
    before = rss_mb(serve.pid)
    with httpx.Client(base_url=serve.url, auth=serve.auth, timeout=600) as client:
        started = time.perf_counter()
        r = client.post("/v1/campaigns", json={"flow_id": FLOW, "csv": text, "rate": 1})
        took = time.perf_counter() - started
        r.raise_for_status()
        client.post(f"/v1/campaigns/{r.json()['id']}/pause", json={})
    return {"rows": rows, "csv_mb": len(text) / 1e6, "seconds": took, "rss_before_mb": before,
            "rss_after_mb": rss_mb(serve.pid)}


async def _store_in_process(path: Path, rows: int, trace: bool) -> dict:
    from engine.service.campaign_api import _store
    from engine.service.campaign_store import CampaignSpec
    from engine.service.sqlite_store import SQLiteStore

    flow = load_flow(str(FLOWS / f"{FLOW}.yaml"))
    text = contacts(rows)
    if trace:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0] if trace else 0
    started = time.perf_counter()
    found = survey(check_rows(flow, csv_records(io.StringIO(text))))
    checked = time.perf_counter() - started
    store = SQLiteStore(str(path))
    spec = CampaignSpec("bench", "bench", FLOW, 1.0, None, None, "UTC", time.time())
    await _store(store, spec, flow, {"csv": text}, frozenset())
    stored = time.perf_counter() - started - checked
    peak = tracemalloc.get_traced_memory()[1] - base if trace else 0
    if trace:
        tracemalloc.stop()
    await store.close()
    return {"rows": found.runnable, "check_s": checked, "store_s": stored, "python_peak_mb": peak / 1e6,
            "csv_mb": len(text) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="2,20,100")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    (work / "flows").mkdir()
    shutil.copy(FLOWS / f"{FLOW}.yaml", work / "flows")
    serve = Serve.start(work, db=f"sqlite:///{work}/bench.db")
    try:
        for i, rate in enumerate(float(r) for r in args.rates.split(",")):
            p = pace(serve, rate, args.seconds, i * 100_000)
            print(f"pace {p['rate']:g}/s: {p['rows']} runs, achieved {p['achieved']:.3f}/s "
                  f"({p['achieved'] / p['rate'] * 100:.1f}% of asked), at most {p['max_1s']} in any 1 s window, "
                  f"{p['span_s']:.2f} s first to last start, {p['failed']} failed", flush=True)
        s = size_over_http(serve, args.rows)
        print(f"POST /v1/campaigns {s['rows']} rows ({s['csv_mb']:.1f} MB CSV): {s['seconds']:.2f} s; serve RSS "
              f"{s['rss_before_mb']:.0f} MB before, {s['rss_after_mb']:.0f} MB after", flush=True)
    finally:
        serve.stop()
    m = asyncio.run(_store_in_process(work / "inproc.db", args.rows, trace=False))
    traced = asyncio.run(_store_in_process(work / "traced.db", args.rows, trace=True))  # slower: memory only
    print(f"in process: {m['rows']} rows checked in {m['check_s']:.2f} s, checked again and stored in "
          f"{m['store_s']:.2f} s; Python peak {traced['python_peak_mb']:.1f} MB (tracemalloc; the CSV text is "
          f"{m['csv_mb']:.1f} MB)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
