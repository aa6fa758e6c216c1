"""The SQLite schema 6 -> 7 upgrade and the number search at scale.

    .venv/bin/python bench/number_search_bench.py [--runs 100000]

1. Builds a schema 6 file of `--runs` finished runs, half started by an incoming call, half
   placing an outbound call (as schema 6 stored them: no number columns, no inbound index).
2. Times the open that upgrades it (the columns filled from every state, the indexes built;
   the open's own checks included), then a second open of the current file.
3. Times `list_runs(number=...)` (a number at either end, through the two indexes), the
   median of 100.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_store_contract import inbound, outbound, sqlite_schema_6_file  # noqa: E402

from engine.service.sqlite_store import SQLiteStore  # noqa: E402


def schema_6_file(path: str, runs: int) -> None:
    states = (inbound(f"r{i}", f"ca-{i}") if i % 2 else outbound(f"r{i}", "+12025550100", f"+1415555{i % 10000:04d}")
              for i in range(runs))
    sqlite_schema_6_file(path, list(states))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    path = os.path.join(tempfile.mkdtemp(), "runs.db")
    schema_6_file(path, args.runs)
    print(f"schema 6 file: {args.runs} runs, {os.path.getsize(path) / 1e6:.0f} MB")
    started = time.perf_counter()
    store = SQLiteStore(path)
    print(f"open, upgrading to schema 7: {time.perf_counter() - started:.2f} s")
    asyncio.run(store.close())
    started = time.perf_counter()
    store = SQLiteStore(path)
    print(f"open, current: {time.perf_counter() - started:.2f} s")

    async def search() -> list[float]:
        times = []
        for _ in range(100):
            started = time.perf_counter()
            page, _ = await store.list_runs(number="+14155550042")
            times.append(time.perf_counter() - started)
        assert page, "the search found nothing"
        await store.close()
        return times

    print(f"list_runs(number=): {statistics.median(asyncio.run(search())) * 1000:.2f} ms (median of 100)")


if __name__ == "__main__":
    main()
