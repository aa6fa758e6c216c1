"""The run store's cost per completed run, SQLite beside PostgreSQL, in one run.

    .venv/bin/python bench/store_bench.py [--runs 1000] [--concurrency 50] [--repeat 3]

One `callflow sandbox`, then for each backend a `callflow serve` on it (SQLite: a file in a
temp folder, WAL, synchronous=NORMAL; PostgreSQL: a throwaway cluster of tests/postgres.py with
fsync on and synchronous_commit off, the same "a crash of the process loses nothing, a power
cut may lose the last commits" as SQLite's NORMAL), the seed flow's runs triggered as
bench/e2e.py does. Rounds alternate between the two (the machine's other load hits both alike).
Per completed run: serve's CPU ms, the PostgreSQL server processes' CPU ms
(the database's work, which SQLite does inside serve), store calls (counted by a wrapper in
the serve process: `--serve-counting`), SQL statements (PostgreSQL: sent by the store) and
transactions committed (PostgreSQL: pg_stat_database). Medians of the rounds; the ratio is
PostgreSQL's (serve + server) CPU over SQLite's serve CPU (target <= 1.3).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
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
)

COUNTS_LINE = "store calls: "


def serve_counting(argv: list[str]) -> None:
    """`callflow serve ARGV` with the store wrapped to count its calls (printed at exit)."""
    import engine.service.main as serve_module
    from engine.cli import main as cli

    counts: Counter = Counter()
    stores = []

    class Counting:
        def __init__(self, store):
            self._store = store

        def __getattr__(self, name):
            attr = getattr(self._store, name)
            if name.startswith("_") or not callable(attr):
                return attr

            async def call(*args, **kw):
                counts[name] += 1
                return await attr(*args, **kw)
            return call

    real_open = serve_module.open_store

    def open_counting(url, **kw):
        store = real_open(url, **kw)
        stores.append(store)
        return Counting(store)

    def report(*_):
        statements = sum(getattr(s, "statements", 0) for s in stores)
        print(COUNTS_LINE + json.dumps({"calls": counts, "statements": statements}), flush=True)

    serve_module.open_store = open_counting
    # uvicorn handles SIGTERM, then raises it again once stopped: this handler gets it then.
    signal.signal(signal.SIGTERM, report)
    cli(["serve", *argv], standalone_mode=False)


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass  # a backend that exited: its CPU is lost (connections are pooled: rare)
    return total


def postgres_pids(cluster) -> list[int]:
    """The postmaster and its children (backends, writer, checkpointer...)."""
    main = int((cluster.dir / "data" / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    return [main, *map(int, children)]


async def commits(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    finally:
        await conn.close()


class Backend:
    """One `callflow serve` (under the counting wrapper) on one store, and its rounds."""

    def __init__(self, name: str, db: str, sandbox_url: str, tmp: Path, cluster=None):
        self.name, self.db, self.cluster, self.rounds, self.total_runs = name, db, cluster, [], 0
        self.serve = Proc([sys.executable, str(Path(__file__).resolve()), "--serve-counting", str(tmp / "flows"),
                           "--port", "0", "--db", db],
                          env(CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN, PLIVO_AUTH_ID=PLIVO_ID,
                              PLIVO_AUTH_TOKEN=PLIVO_TOKEN, PLIVO_API_URL=sandbox_url, CALLFLOW_LOG_LEVEL="warning"),
                          ROOT, tmp / f"serve-{name}.log")
        self.url = self.serve.wait_line("callflow serving on ")

    def round(self, runs: int, concurrency: int, keep: bool = True) -> None:
        pids = postgres_pids(self.cluster) if self.cluster else []
        c0 = asyncio.run(commits(self.db)) if self.cluster else 0
        cpu0, pg0, t0 = self.serve.cpu(), cpu_of(pids), time.perf_counter()
        e = asyncio.run(engine_phase(self.url, runs, concurrency))
        seconds = time.perf_counter() - t0
        done = e["runs"] - e["not_completed"]
        c1 = asyncio.run(commits(self.db)) if self.cluster else 0
        self.total_runs += e["runs"]
        if keep:
            self.rounds.append({"serve": (self.serve.cpu() - cpu0) / done * 1000,
                                "server": (cpu_of(pids) - pg0) / done * 1000,
                                "rate": done / seconds, "commits": (c1 - c0) / done})

    def finish(self) -> dict:
        """The medians of the rounds and the calls per run serve counted (once stopped)."""
        line, end = "", time.monotonic() + 5
        while not line and time.monotonic() < end:  # the reader thread may still be copying it
            with contextlib.suppress(queue.Empty):
                candidate = self.serve.lines.get(timeout=0.1)
                if candidate.startswith(COUNTS_LINE):
                    line = candidate[len(COUNTS_LINE):]
        counts = json.loads(line) if line else {"calls": {}, "statements": 0}
        med, n = statistics.median, self.total_runs
        return {**{k: med(r[k] for r in self.rounds) for k in ("serve", "server", "rate", "commits")},
                "calls": sum(counts["calls"].values()) / n, "statements": counts["statements"] / n,
                "by_call": {k: round(v / n, 2) for k, v in sorted(counts["calls"].items())}}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-counting":
        serve_counting(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from postgres import Cluster, find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL server binaries: apt-get install postgresql")
    tmp = Path(tempfile.mkdtemp(prefix="callflow-store-bench-"))
    (tmp / "flows").mkdir()
    shutil.copy(ROOT / "flows" / f"{FLOW}.yaml", tmp / "flows")
    cluster, sandbox = Cluster(), None
    try:
        cluster.create(bin_dir, durable=True)
        db = cluster.new_database()
        sandbox = Proc([sys.executable, "-m", "engine.cli", "sandbox", "--port", "0"],
                       env(PLIVO_AUTH_ID=PLIVO_ID, PLIVO_AUTH_TOKEN=PLIVO_TOKEN), ROOT, tmp / "sandbox.log")
        sandbox_url = sandbox.wait_line("sandbox listening on ")
        print(f"runs={args.runs} concurrency={args.concurrency} repeat={args.repeat} cores={os.cpu_count()}")
        backends = []
        try:
            for name, url, server in (("sqlite", f"sqlite:///{tmp}/bench.db", None), ("pg-tcp", db, cluster),
                                      ("pg-unix", cluster.socket_url(db.rsplit("/", 1)[1]), cluster)):
                backends.append(Backend(name, url, sandbox_url, tmp, server))
            for round_ in range(args.repeat + 1):  # round 0 warms up (pools, caches); rounds alternate backends
                for backend in backends:
                    backend.round(args.runs if round_ else min(200, args.runs), args.concurrency, keep=round_ > 0)
                    httpx.delete(f"{sandbox_url}/sandbox/calls")
        finally:
            for backend in backends:
                backend.serve.stop()
        results = {b.name: b.finish() for b in backends}
        for name, r in results.items():
            print(f"{name:8} {r['rate']:6.1f} runs/s  CPU ms/run: serve {r['serve']:.2f} + database server "
                  f"{r['server']:.2f} = {r['serve'] + r['server']:.2f}  store calls/run {r['calls']:.2f} "
                  f"SQL statements/run {r['statements'] or float('nan'):.2f} commits/run "
                  f"{r['commits'] or float('nan'):.2f}  {r['by_call']}")
        s = results["sqlite"]
        for name in ("pg-tcp", "pg-unix"):
            p = results[name]
            print(f"ratio {name}/sqlite CPU per run: serve only {p['serve'] / s['serve']:.2f}, "
                  f"serve + database server {(p['serve'] + p['server']) / s['serve']:.2f} (target <= 1.3)")
    finally:
        if sandbox is not None:
            sandbox.stop()
        cluster.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
