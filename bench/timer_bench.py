"""Durable timers at scale: 100,000 runs waiting on a `wait` timer in one SQLite store.

    .venv/bin/python bench/timer_bench.py [--runs 100000] [--due 100] [--ticks 20]

1. Builds two stores with the store API: one empty, one with `--runs` runs waiting on a
   timer due in a day, plus five batches of `--due` runs due one after another.
2. Memory: a real `callflow serve --sandbox` on each store, its RSS once it is up; then a
   serve-like process (a `Service` over the store, as serve builds it) running fire_timers
   ticks, its RSS after them. A waiting run must cost no memory: it is a row, not an object.
3. Time of one `fire_timers` tick in that process: with nothing due (the median of
   `--ticks`) and with `--due` runs due (each batch: claim, then per run load, TimerFired,
   save; the flow then sets a variable and completes, so the tick measures the timers and the
   store, not a provider). Target: a tick within 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.events import Trigger  # noqa: E402
from engine.executor import Executor  # noqa: E402
from engine.load.build import check_text  # noqa: E402
from engine.state import RunState  # noqa: E402

FLOW = """\
spec: callflow/v1
id: timer-bench
name: Wait, then note it
nodes:
  Start:
    type: trigger
    next: {http: Later}
  Later:
    type: wait
    seconds: 86400
    next: Note
  Note:
    type: set_variables
    values: {fired: "yes"}
"""
T0 = 1_800_000_000.0  # the stores' "now": every timer is due relative to it
BATCHES = 5


def flow():
    built, diagnostics = check_text(FLOW, "timer-bench.yaml")
    assert built is not None, diagnostics
    return built


def template(until: float) -> str:
    """A run waiting on its timer, due at `until`, as the store keeps it."""
    executor = Executor(flow(), clock=lambda: T0)
    state = executor.new_run("TEMPLATE")
    executor.advance(state, Trigger({}))
    state.waiting.until = until
    return state.to_json()


async def fill(db: str, runs: int, due: int) -> float:
    """Create the waiting runs through the store (group commit); returns the seconds taken."""
    from engine.service.sqlite_store import SQLiteStore

    store = SQLiteStore(db)
    started = time.perf_counter()
    plan = [(template(T0 + 86400), runs)] + [(template(T0 + k), due) for k in range(1, BATCHES + 1)]
    made = 0
    for text, count in plan:
        for start in range(0, count, 2000):
            states = [RunState.from_json(text.replace('"TEMPLATE"', f'"run-{made + i}"'))
                      for i in range(min(2000, count - start))]
            made += len(states)
            await asyncio.gather(*(store.create_run(s) for s in states))
    seconds = time.perf_counter() - started
    await store.close()
    return seconds


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve_rss(db: str, flows_dir: Path) -> float:
    """RSS of a real `callflow serve --sandbox` on `db`, a second after it is ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "CALLFLOW_"))}
    env["PYTHONUNBUFFERED"] = "1"
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", str(flows_dir), "--sandbox", "--port", "0",
                             "--db", f"sqlite:///{db}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=errors, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("callflow serving on "):
                break
        else:
            errors.seek(0)
            raise SystemExit(f"callflow serve on {db} exited before it was ready: {errors.read()[-2000:].decode()}")
        time.sleep(1.0)
        return rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


async def measure(db: str, ticks: int) -> dict:
    """In this (fresh) process: a Service over the store, idle ticks, then the due batches."""
    from engine.service.provider import ProviderConfig
    from engine.service.runs import Service
    from engine.service.settings import Settings
    from engine.service.sqlite_store import SQLiteStore
    from engine.service.timers import fire_timers

    now = [T0 + 0.5]
    settings = Settings(auth_id="MABENCHACCOUNT000001", auth_token="t", public_url="http://127.0.0.1:9",
                        provider=ProviderConfig("MABENCHACCOUNT000001", "t", "http://127.0.0.1:9"))
    store = SQLiteStore(db)
    service = Service({"timer-bench": flow()}, store, provider=None, settings=settings, clock=lambda: now[0])
    idle, due, fired = [], [], []
    for _ in range(ticks):
        started = time.perf_counter()
        fired.append(await fire_timers(service))
        idle.append(time.perf_counter() - started)
    for k in range(1, BATCHES + 1):
        now[0] = T0 + k + 0.5
        started = time.perf_counter()
        fired.append(await fire_timers(service))
        due.append(time.perf_counter() - started)
    await store.close()
    return {"idle_ms": statistics.median(idle) * 1000, "idle_max_ms": max(idle) * 1000,
            "due_ms": statistics.median(due) * 1000 if due else None, "due_max_ms": max(due) * 1000,
            "fired": fired, "rss_mb": rss_mb(os.getpid())}


def child(db: str, ticks: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", db, "--ticks", str(ticks)], check=True, cwd=ROOT,
                         stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--due", type=int, default=100)
    ap.add_argument("--ticks", type=int, default=20)
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # the serve-like child process
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure, args.ticks))))
        return
    with tempfile.TemporaryDirectory(prefix="timer-bench-") as tmp:
        flows_dir = Path(tmp) / "flows"
        flows_dir.mkdir()
        (flows_dir / "timer-bench.yaml").write_text(FLOW)
        empty, full = str(Path(tmp) / "empty.db"), str(Path(tmp) / "waiting.db")
        asyncio.run(fill(empty, 0, 0))
        took = asyncio.run(fill(full, args.runs, args.due))
        total = args.runs + BATCHES * args.due
        print(f"created {total} waiting runs through the store in {took:.1f} s "
              f"({total / took:,.0f}/s); file {Path(full).stat().st_size / 2**20:.0f} MB")
        print(f"callflow serve RSS:  no run waiting {serve_rss(empty, flows_dir):6.1f} MB;  "
              f"{total} waiting {serve_rss(full, flows_dir):6.1f} MB")
        none, many = child(empty, args.ticks), child(full, args.ticks)
        print(f"serve-like process after {args.ticks + BATCHES} ticks, RSS:  no run waiting {none['rss_mb']:6.1f} MB;"
              f"  {total} waiting {many['rss_mb']:6.1f} MB")
        print(f"fire_timers tick, nothing due ({args.runs} waiting): median {many['idle_ms']:.2f} ms, "
              f"max {many['idle_max_ms']:.2f} ms (empty store: {none['idle_ms']:.2f} ms)")
        print(f"fire_timers tick, {args.due} due: median {many['due_ms']:.1f} ms, max {many['due_max_ms']:.1f} ms "
              f"(fired per tick: {many['fired'][args.ticks:]}); target <= 50 ms")


if __name__ == "__main__":
    main()
