"""How fast is `callflow validate` on big flows, and does it grow linearly?

    .venv/bin/python bench/validate_bench.py            # 1,000 and 10,000 nodes
    .venv/bin/python bench/validate_bench.py 500 5000   # other sizes
    .venv/bin/python bench/validate_bench.py --profile 10000

Generates flows of N nodes, a realistic mix in repeating groups of three: a set_variables
node computing values from earlier nodes and the payload, a branch on one of them, and an
http_request whose URL, headers and JSON body are templates; the branch skips the request
on no_match, so later reads of the request's outputs are guarded with `default` (as a
careful author would write them). Every template references earlier nodes, so the
dominator, output and payload checks all run. Each size is validated in-process through
`check_text` (YAML parse, node compile, graph, analysis) after a warm-up, best of 3, with
the template cache cleared before each round so every template is really parsed.

A 10,000-node file is about 1.6 MB, above the 1 MiB cap on flow files; the bench lifts
the cap for itself only (the cap is a product limit, not what is measured here).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import templating  # noqa: E402
from engine.load import (
    references,  # noqa: E402
    yaml_reader,  # noqa: E402
)
from engine.load.build import check_text  # noqa: E402


def generate(n: int) -> str:
    lines = [
        "spec: callflow/v1",
        f"id: bench-{n}",
        f"name: Generated flow of {n} nodes",
        "nodes:",
        "  Start:",
        "    type: trigger",
        "    payload: {region: eu, tier: gold}",
        "    required: [customer, order]",
        "    next: V0",
    ]
    groups = max(1, (n - 1) // 3)
    for g in range(groups):
        prev_v = f"V{g - 1}" if g else "Start"
        older_v = f"V{max(g - 7, 0)}" if g else "Start"
        prev_h = f"H{g - 1}"
        nxt = f"V{g + 1}" if g + 1 < groups else "End"
        ref_prev = f"{prev_v}.total" if g else "Start.http.params.order"
        ref_older = f"{older_v}.label" if g >= 1 and older_v != "Start" and g - 7 >= 0 else "Start.http.params.tier"
        lines += [
            f"  V{g}:",
            "    type: set_variables",
            "    values:",
            f"      total: \"{{{{ {ref_prev} | plus: {g % 13} }}}}\"",
            f"      label: \"{{{{ Start.http.params.customer }}}}-{{{{ {ref_older} | downcase }}}}\"",
            f"      last_status: \"{{{{ {prev_h}.status_code | default: 0 }}}}\"" if g else "      last_status: \"0\"",
            f"    next: B{g}",
            f"  B{g}:",
            "    type: branch",
            f"    value: \"{{{{ V{g}.total }}}}\"",
            "    conditions:",
            f"      - {{name: big, op: greater_than, value: \"{100 + g}\"}}",
            f"      - {{name: tagged, op: contains, value: \"{{{{ Start.http.params.region }}}}\"}}",
            "    next:",
            f"      big: H{g}",
            f"      tagged: H{g}",
            f"      no_match: {nxt}",
            f"  H{g}:",
            "    type: http_request",
            "    method: POST",
            f"    url: \"https://api.example.com/orders/{{{{ Start.http.params.order }}}}/step/{g}\"",
            "    headers:",
            f"      X-Trace: \"{{{{ V{g}.label }}}}\"",
            "    json:",
            f"      total: \"{{{{ V{g}.total }}}}\"",
            f"      matched: \"{{{{ B{g}.matched }}}}\"",
            "    next:",
            f"      success: {nxt}",
            f"      failed: {nxt}",
        ]
    lines += ["  End:", "    type: set_variables", "    values: {done: \"yes\"}"]
    return "\n".join(lines) + "\n"


def measure(text: str, rounds: int = 3) -> tuple[float, float, int]:
    """Best wall-clock and best CPU time (this process) of `rounds` validations."""
    best = best_cpu = float("inf")
    diagnostics = []
    for _ in range(rounds):
        templating.templates.clear_cache()
        references.clear_cache()
        start, start_cpu = time.perf_counter(), time.process_time()
        flow, diagnostics = check_text(text, "bench.yaml")
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        assert flow is not None, "\n".join(map(str, diagnostics[:20]))
        del flow
    return best, best_cpu, len(diagnostics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument("--profile", action="store_true", help="cProfile the largest size")
    args = parser.parse_args()
    yaml_reader.MAX_FLOW_BYTES = 64 * 1024 * 1024  # the product cap (checked in load_text) is not what we measure
    check_text(generate(100), "warm.yaml")
    results = []
    for n in args.sizes:
        text = generate(n)
        nodes = text.count("\n    type: ")
        if args.profile and n == max(args.sizes):
            templating.templates.clear_cache()
            references.clear_cache()
            profiler = cProfile.Profile()
            profiler.enable()
            check_text(text, "bench.yaml")
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        seconds, cpu, found = measure(text)
        results.append((nodes, seconds, cpu))
        print(f"{nodes:>7} nodes  {len(text) / 1e6:6.2f} MB  {seconds:7.3f} s wall  {cpu:7.3f} s cpu  "
              f"{seconds / nodes * 1e6:7.1f} us/node  {found} diagnostic(s)")
    if len(results) >= 2:
        (n0, t0, c0), (n1, t1, c1) = results[0], results[-1]
        print(f"ratio: {n1 / n0:.1f}x nodes -> {t1 / t0:.2f}x wall time, {c1 / c0:.2f}x cpu time")


if __name__ == "__main__":
    main()
