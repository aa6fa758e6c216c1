"""Whole-process time of `callflow run` on the seed flow, beside the bare interpreter.

    .venv/bin/python bench/run_process.py [--repeat 15]

Prints the median wall time of `callflow run flows/outbound-sip-headers.yaml ... --json`,
of `python -c pass` (interpreter start, the floor) and of importing the engine, with ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = [sys.executable, "-m", "engine.cli", "run", "flows/outbound-sip-headers.yaml",
       "-p", "to=+12025550100", "-p", "customer=johndoe", "--json"]


def median_time(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    floor = median_time([sys.executable, "-c", "pass"], args.repeat)
    imports = median_time([sys.executable, "-c", "import engine.cli, engine.local.run, engine.flow"], args.repeat)
    run = median_time(RUN, args.repeat)
    print(f"python -c pass:          {floor*1000:7.1f} ms")
    print(f"import engine:           {imports*1000:7.1f} ms")
    print(f"callflow run (seed):     {run*1000:7.1f} ms  (median of {args.repeat})")
    print(f"ratio run/interpreter:   {run/floor:.1f}")


if __name__ == "__main__":
    main()
