"""Answer-callback latency at a steady trigger rate, SQLite beside PostgreSQL, and serve's CPU
per run with one and two processes on PostgreSQL, in one run.

    .venv/bin/python bench/scale_bench.py [--rate 100] [--seconds 20] [--runs 1000] [--concurrency 50]
                                          [--parts all|latency|cpu]

One `callflow sandbox`; a throwaway PostgreSQL cluster (tests/postgres.py, as bench/store_bench.py).

1. Latency: for each backend a `callflow serve`, the seed flow triggered at `--rate` runs/s
   (paced, not as fast as possible) for `--seconds`. The answer callback's latency, as the
   caller waits for it, is the sandbox's side of it: each callback's log entry holds `seconds`
   (sent -> XML received, engine/local/call_driver.py), p50/p99 over every answer. Beside it
   serve's own histogram (`callflow_callback_seconds{kind="answer"}`, received -> XML ready,
   from GET /metrics: p50/p99 interpolated in its buckets, and the share within 25 ms).
   Target: p99 <= 25 ms.
2. CPU per run: `--runs` runs (as bench/e2e.py: `--concurrency` clients, as fast as they go)
   through a round-robin proxy (tests/proxy.py; the callbacks too, CALLFLOW_PUBLIC_URL) to one
   serve, then to two serve processes on the same database: serve CPU ms per completed run
   (all serve processes together), the PostgreSQL server's beside it, and runs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]

from e2e import (  # noqa: E402
    AUTH_ID,
    AUTH_TOKEN,
    FLOW,
    PLIVO_ID,
    PLIVO_TOKEN,
    Proc,
    engine_phase,
    env,
    pct,
)
from store_bench import cpu_of, postgres_pids  # noqa: E402

TARGET_P99 = 0.025


def start_serve(name: str, db: str, sandbox_url: str, tmp: Path, public_url: str | None = None,
                port: int = 0) -> tuple[Proc, str]:
    extra = {"CALLFLOW_PUBLIC_URL": public_url} if public_url else {}
    serve = Proc([sys.executable, "-m", "engine.cli", "serve", str(tmp / "flows"), "--port", str(port), "--db", db],
                 env(CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN, PLIVO_AUTH_ID=PLIVO_ID,
                     PLIVO_AUTH_TOKEN=PLIVO_TOKEN, PLIVO_API_URL=sandbox_url, CALLFLOW_LOG_LEVEL="warning", **extra),
                 ROOT, tmp / f"serve-{name}.log")
    return serve, serve.wait_line("callflow serving on ")


async def paced(serve_url: str, rate: float, seconds: float) -> int:
    """Trigger `rate` runs a second for `seconds`, each on time (not after the previous one's
    answer); wait until none is running or waiting. Returns how many were triggered."""
    url = f"{serve_url}/v1/account/{AUTH_ID}/phlo/{FLOW}/"
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=4)  # < uvicorn's 5 s
    async with httpx.AsyncClient(auth=(AUTH_ID, AUTH_TOKEN), limits=limits, timeout=60) as http:
        tasks, start, n = [], time.perf_counter(), int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(http.post(url, json={"to": f"+1202555{i % 10000:04d}",
                                                                  "customer": f"c{i}"})))
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        refused = sum(not isinstance(r, httpx.Response) or r.status_code != 201 for r in answers)
        if refused:
            print(f"  {refused} triggers refused or unanswered")
        while True:
            pending = 0
            for status in ("running", "waiting"):
                page = (await http.get(f"{serve_url}/v1/runs", params={"status": status, "limit": 1})).json()
                pending += len(page["runs"])
            if not pending:
                return n
            await asyncio.sleep(0.2)


def histogram(metrics: str, name: str, labels: str) -> list[tuple[float, float]]:
    """[(upper bound, cumulative count)] of one histogram child in a Prometheus text page."""
    out = []
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket{{") and labels in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    return out


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The q-quantile, linearly interpolated inside its bucket (as PromQL's histogram_quantile)."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def diff(after: list, before: list) -> list:
    counts = dict(before)
    return [(bound, count - counts.get(bound, 0.0)) for bound, count in after]


def latency_round(name: str, db: str, sandbox_url: str, tmp: Path, rate: float, seconds: float) -> None:
    serve, url = start_serve(name, db, sandbox_url, tmp)
    try:
        asyncio.run(paced(url, rate, min(seconds, 3)))  # warm up: pools, caches
        httpx.delete(f"{sandbox_url}/sandbox/calls")
        before = histogram(httpx.get(f"{url}/metrics", auth=(AUTH_ID, AUTH_TOKEN)).text, "callflow_callback_seconds", 'kind="answer"')
        cpu0 = serve.cpu()
        n = asyncio.run(paced(url, rate, seconds))
        cpu = serve.cpu() - cpu0
        after = histogram(httpx.get(f"{url}/metrics", auth=(AUTH_ID, AUTH_TOKEN)).text, "callflow_callback_seconds", 'kind="answer"')
    finally:
        serve.stop()
    calls = httpx.get(f"{sandbox_url}/sandbox/calls", timeout=60).json()["calls"]
    httpx.delete(f"{sandbox_url}/sandbox/calls")
    waits = [c["seconds"] for call in calls for c in call["callbacks"] if c["kind"] == "answer" and "seconds" in c]
    served = diff(after, before)
    within = dict(served).get(TARGET_P99, 0.0) / max(served[-1][1], 1) if served else float("nan")
    print(f"{name:7} {n} runs at {rate:g}/s: answer callback as the sandbox waits for it p50 "
          f"{pct(waits, 50) * 1000:5.1f} ms p99 {pct(waits, 99) * 1000:5.1f} ms (n={len(waits)}); serve's histogram "
          f"p50 {quantile(served, 0.5) * 1000:5.1f} ms p99 {quantile(served, 0.99) * 1000:5.1f} ms, "
          f"{within:.1%} within 25 ms; serve CPU {cpu / max(n, 1) * 1000:.2f} ms/run")


def cpu_round(processes: int, db: str, sandbox_url: str, tmp: Path, runs: int, concurrency: int, cluster) -> dict:
    from processes import free_port
    from proxy import RoundRobinProxy

    ports = [free_port() for _ in range(processes)]
    with RoundRobinProxy([f"http://127.0.0.1:{p}" for p in ports]) as proxy:
        serves = [start_serve(f"pg{processes}-{i}", db, sandbox_url, tmp, proxy.url, port)[0]
                  for i, port in enumerate(ports)]
        try:
            asyncio.run(engine_phase(proxy.url, min(200, runs), concurrency))  # warm up
            pids = postgres_pids(cluster)
            cpu0, pg0 = sum(s.cpu() for s in serves), cpu_of(pids)
            e = asyncio.run(engine_phase(proxy.url, runs, concurrency))
            done = e["runs"] - e["not_completed"]
            serve_ms = (sum(s.cpu() for s in serves) - cpu0) / done * 1000
            server_ms = (cpu_of(pids) - pg0) / done * 1000
        finally:
            for s in serves:
                s.stop()
    httpx.delete(f"{sandbox_url}/sandbox/calls")
    rate = done / e["seconds"]
    print(f"pg x{processes}  {done} runs, {rate:6.1f} runs/s: serve CPU {serve_ms:.2f} ms/run (all processes), "
          f"PostgreSQL server {server_ms:.2f} ms/run")
    return {"serve": serve_ms, "server": server_ms, "rate": rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--parts", choices=("all", "latency", "cpu"), default="all")
    args = ap.parse_args()
    from postgres import Cluster, find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL server binaries: apt-get install postgresql")
    tmp = Path(tempfile.mkdtemp(prefix="callflow-scale-bench-"))
    (tmp / "flows").mkdir()
    shutil.copy(ROOT / "flows" / f"{FLOW}.yaml", tmp / "flows")
    cluster, sandbox = Cluster(), None
    try:
        cluster.create(bin_dir, durable=True)
        sandbox = Proc([sys.executable, "-m", "engine.cli", "sandbox", "--port", "0"],
                       env(PLIVO_AUTH_ID=PLIVO_ID, PLIVO_AUTH_TOKEN=PLIVO_TOKEN), ROOT, tmp / "sandbox.log")
        sandbox_url = sandbox.wait_line("sandbox listening on ")
        print(f"rate={args.rate:g}/s seconds={args.seconds:g} runs={args.runs} concurrency={args.concurrency} "
              f"cores={os.cpu_count()}")
        if args.parts in ("all", "latency"):
            latency_round("sqlite", f"sqlite:///{tmp}/bench.db", sandbox_url, tmp, args.rate, args.seconds)
            latency_round("pg", cluster.new_database(), sandbox_url, tmp, args.rate, args.seconds)
        if args.parts == "latency":
            return
        one = cpu_round(1, cluster.new_database(), sandbox_url, tmp, args.runs, args.concurrency, cluster)
        two = cpu_round(2, cluster.new_database(), sandbox_url, tmp, args.runs, args.concurrency, cluster)
        print(f"ratio 2 processes / 1 on PostgreSQL: serve CPU per run {two['serve'] / one['serve']:.2f}, "
              f"throughput {two['rate'] / one['rate']:.2f}")
    finally:
        if sandbox is not None:
            sandbox.stop()
        cluster.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
