"""What metrics and log lines cost `callflow serve` per run, measured in process.

    .venv/bin/python bench/observe_bench.py [--runs 3000] [--rounds 3]

The Service (engine/service/runs.py) with a real SQLite store and a fake provider that
answers at once: per run a trigger, the Call request and the ring, answer and hangup
callbacks, 20 runs at a time, no HTTP (bench/e2e.py measures the whole). Each log level
runs in its own process (logging is process-wide), interleaved over the rounds; JSON lines
go to a file as `callflow serve` writes them (engine/service/logs.py). Prints CPU ms per
run for `--log-level info` (6 lines a run) and `warning` (none), and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.events import Response  # noqa: E402
from engine.load.build import load_flow  # noqa: E402
from engine.service import logs  # noqa: E402
from engine.service.provider import ProviderConfig  # noqa: E402
from engine.service.runs import Service  # noqa: E402
from engine.service.settings import Settings  # noqa: E402
from engine.service.sqlite_store import SQLiteStore  # noqa: E402


class InstantProvider:
    async def perform(self, req, handing=None):
        if handing is not None:
            await handing(True)
        return Response(status=201, headers={"content-type": "application/json"},
                        body={"message": "call fired", "request_uuid": "req-1", "api_id": "a-1"})


def params(status: str, **extra) -> dict:
    return {"CallUUID": "call-1", "From": "+12025551234", "To": "+12025550100", "Direction": "outbound",
            "CallStatus": status, "RequestUUID": "req-1", "ALegUUID": "call-1", "ALegRequestUUID": "req-1",
            "X-PH-customer": "johndoe", **extra}


async def cpu_per_run(n: int, folder: Path) -> float:
    store = SQLiteStore(str(folder / "bench.db"))
    flow = load_flow(ROOT / "flows" / "outbound-sip-headers.yaml")
    settings = Settings("MABENCH", "token", "http://127.0.0.1", ProviderConfig("MAPLIVO", "t", "https://api.example.com"))
    service = Service({flow.id: flow}, store, InstantProvider(), settings)

    async def one():
        run_id = (await service.trigger(flow.id, {"to": "+12025550100", "customer": "johndoe"})).run_id
        while service.locks.busy(run_id):  # the Call request, performed in the background
            await asyncio.sleep(0)
        await service.callback(run_id, 1, "ring", params("ringing"))
        await service.callback(run_id, 1, "answer", params("in-progress"))
        await service.callback(run_id, 1, "hangup", params("completed", HangupCause="NORMAL_CLEARING"))

    for _ in range(200):  # warm up
        await one()
    cpu = time.process_time()
    for _ in range(n // 20):
        await asyncio.gather(*(one() for _ in range(20)))
    cpu = time.process_time() - cpu
    await store.close()
    return cpu / (n // 20 * 20) * 1000


def child(level: str, n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        with open(Path(d) / "serve.log", "w") as log:
            logs.configure("json", level, log)
            print(f"{asyncio.run(cpu_per_run(n, Path(d))):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", choices=logs.LEVELS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.runs)
        return
    results: dict[str, list[float]] = {"info": [], "warning": []}
    for _ in range(args.rounds):
        for level in results:
            out = subprocess.run([sys.executable, __file__, "--child", level, "--runs", str(args.runs)],
                                 capture_output=True, text=True, check=True)
            results[level].append(float(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(v) for k, v in results.items()}
    for level, values in results.items():
        print(f"log level {level:8s} {med[level]:.3f} ms CPU/run (median of {len(values)}: "
              f"{', '.join(f'{v:.3f}' for v in values)})")
    print(f"info / warning: {med['info'] / med['warning']:.2f}x "
          f"({(med['info'] - med['warning']) * 1000:.0f} us a run for its log lines)")


if __name__ == "__main__":
    main()
