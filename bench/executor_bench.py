"""Executor cost per step on a generated linear flow of set_variables nodes, one template each.

    .venv/bin/python bench/executor_bench.py [--nodes 1000] [--repeat 20]

Prints microseconds per step for the executor, and side by side the bare cost of rendering
the same templates with python-liquid (the floor), with the ratio between the two.
Target: <= 50 us per step on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine.executor as executor_module  # noqa: E402
from engine.events import Trigger  # noqa: E402
from engine.executor import Executor  # noqa: E402
from engine.load.build import check_text  # noqa: E402


def linear_flow(n: int) -> str:
    lines = ["spec: callflow/v1", "id: linear", "nodes:", "  Start:", "    type: trigger",
             "    payload: {seed: '1'}", "    next: N0"]
    for i in range(n):
        prev = "Start.http.params.seed" if i == 0 else f"N{i-1}.v"
        lines += [f"  N{i}:", "    type: set_variables", f"    values: {{v: \"{{{{ {prev} }}}}x\"}}"]
        if i + 1 < n:
            lines.append(f"    next: N{i+1}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    n = args.nodes
    t0 = time.perf_counter()
    flow, diagnostics = check_text(linear_flow(n), "linear.yaml")
    load_s = time.perf_counter() - t0
    assert flow is not None, diagnostics
    # The run takes n+1 steps: lift the per-run step cap for the measurement only.
    executor_module.MAX_STEPS = n + 10
    ex = Executor(flow)
    per_step = []
    for r in range(args.repeat):
        state = ex.new_run(f"r{r}")
        t0 = time.perf_counter()
        ex.advance(state, Trigger({}))
        elapsed = time.perf_counter() - t0
        assert state.status == "completed" and len(state.steps) == n + 1, state.error
        per_step.append(elapsed / (n + 1) * 1e6)
    # The floor: render the same templates with the same variables, nothing else.
    templates = [flow.nodes[f"N{i}"].config["values"]["v"] for i in range(n)]
    variables = state.variables
    floor = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for t in templates:
            t.render(variables)
        floor.append((time.perf_counter() - t0) / n * 1e6)
    step_us, floor_us = statistics.median(per_step), statistics.median(floor)
    print(f"flow: {n} set_variables nodes, loaded and checked in {load_s*1000:.1f} ms")
    print(f"executor:        {step_us:7.1f} us/step (median of {args.repeat} runs; target <= 50)")
    print(f"liquid render:   {floor_us:7.1f} us/template (floor)")
    print(f"ratio executor/floor: {step_us / floor_us:.2f}")


if __name__ == "__main__":
    main()
