"""`callflow test`: flow test cases, kept as YAML files next to the flows.

A test file `<flow>.test.yaml` names its flow and holds cases (read by `engine.local.testfile`);
each case is one run on the embedded sandbox, through the same code path as `callflow run`
(`engine.local.run.LocalRun`), with simulated callees and mocked HTTP responses, and
expectations on what came out, compared here. A test never touches the network: an
`http_request` node without a mock fails. `--update` writes snapshots
(`engine.local.snapshots`). The format is documented in docs/testing.md.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.diagnostics import Diagnostic, has_errors
from engine.flow import Flow
from engine.load.build import check_file
from engine.load.params_file import values_for
from engine.local.run import LocalRun
from engine.local.snapshots import normalise, snapshot, write_snapshots
from engine.local.testfile import (
    Case,
    CaseFile,
    check_mocks,
    find_test_files,
    parse_test_file,
)

RUN_ID = "test"  # fixed, so callback URLs in documents are the same on every run


@dataclass
class Result:
    """One case's outcome: the problems found (none: it passed), the run record and its snapshot."""

    flow: str  # flow id (or the test file's name when the flow does not load)
    case: str
    problems: list[str]
    record: dict | None = None
    snapshot: dict | None = None
    updated: bool = False

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        return f"{self.flow}/{self.case}"


def run_case(flow: Flow, case: Case, params: dict | None = None) -> Result:
    missing = [] if case.call or case.message else flow.missing_payload(case.payload)
    if missing:
        return Result(flow.id, case.name, [f"the payload lacks required key(s) {', '.join(missing)}"])
    runner = LocalRun(flow, case.scenario, params=params)
    try:
        if case.call:
            state = runner.run_inbound(case.call["from"], case.call["to"], case.call["headers"], run_id=RUN_ID)
        elif case.message:
            message = case.message
            state = runner.run_message(message["from"], message["to"], message["text"], run_id=RUN_ID)
        else:
            state = runner.run(dict(case.payload), run_id=RUN_ID)
    except Exception as e:  # noqa: BLE001 - an engine bug must not end the whole test run
        return Result(flow.id, case.name, [f"the engine raised {type(e).__name__}: {e}"])
    record = state.record()
    snap = snapshot(record, flow)
    problems = compare(case.expect, record) if case.expect is not None else ["no expectations yet (run with --update)"]
    return Result(flow.id, case.name, problems, record, snap)


def compare(expect: dict, record: dict) -> list[str]:
    """What of `expect` the run did not meet. Requests, documents and variables are compared
    with the run normalised as snapshots write it (`{callback:Menu/digits}`, `{uuid}`); test
    files written before that, with the exact URLs, still match the run as it was."""
    stable = normalise(record)
    problems: list[str] = []
    if "status" in expect and expect["status"] != record["status"]:
        why = f" ({record['error']})" if record.get("error") else ""
        problems.append(f"status: expected {expect['status']}, got {record['status']}{why}")
    if "error" in expect and (not record.get("error") or expect["error"] not in record["error"]):
        problems.append(f"error: expected it to contain {expect['error']!r}, got {record.get('error')!r}")
    if "path" in expect and list(expect["path"]) != record["path"]:
        problems.append(f"path: expected {_inline(expect['path'])}")
        problems.append(f"      got      {_inline(record['path'])}")
    if "requests" in expect:
        want, got = expect["requests"], record["requests"]
        if len(want) != len(got):
            problems.append(f"requests: expected {len(want)}, got {len(got)}: "
                            + (", ".join(f"{r['node']} {r['method']} {r['url']}" for r in got) or "none"))
        for i, (w, g, raw) in enumerate(zip(want, stable["requests"], got)):
            problems.extend(_either(w, g, raw, f"requests[{i}]"))
    if "documents" in expect:
        want, got = expect["documents"], record["documents"]
        if len(want) != len(got):
            problems.append(f"documents: expected {len(want)}, got {len(got)}")
        for i, (w, g, raw) in enumerate(zip(want, stable["documents"], got)):
            if isinstance(w, str):
                if w != g and w != raw:
                    problems.append(f"documents[{i}] differs:")
                    problems.extend("  " + line for line in _xml_diff(w, g))
            else:
                needles = w["contains"] if isinstance(w["contains"], list) else [w["contains"]]
                for needle in needles:
                    if needle not in g and needle not in raw:
                        problems.append(f"documents[{i}]: expected it to contain {needle!r}; it is {g!r}")
    if "variables" in expect:
        problems.extend(_subset(expect["variables"], record["variables"], "variables"))
    return problems


def _either(want: Any, stable: Any, raw: Any, where: str) -> list[str]:
    """`want` matched against the normalised value, else against the value as it was."""
    problems = _subset(want, stable, where)
    return problems if problems and _subset(want, raw, where) else []


def _subset(want: Any, got: Any, where: str) -> list[str]:
    """Every key of `want` in `got` with a matching value (recursively); lists match item by item."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: expected a mapping, got {_inline(got)}"]
        out = []
        for k, v in want.items():
            if k not in got:
                out.append(f"{where}.{k}: expected {_inline(v)}, missing")
            else:
                out.extend(_subset(v, got[k], f"{where}.{k}"))
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: expected {_inline(want)}, got {_inline(got)}"]
        out = []
        for i, (w, g) in enumerate(zip(want, got)):
            out.extend(_subset(w, g, f"{where}[{i}]"))
        return out
    if not _same(want, got):
        return [f"{where}: expected {_inline(want)}, got {_inline(got)}"]
    return []


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return want == got
    return type(want) is type(got) and want == got


def _inline(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _xml_diff(want: str, got: str) -> list[str]:
    split = lambda s: s.replace("><", ">\n<").splitlines()  # noqa: E731 - one element a line
    lines = list(difflib.unified_diff(split(want), split(got), "expected", "got", lineterm="", n=1))
    return lines[2:] if len(lines) > 2 else [f"expected {want!r}", f"got      {got!r}"]



# -- a file and the command -------------------------------------------------------------------------
@dataclass
class FileRun:
    """A test file run: the file, its flow (None when it does not load), results, diagnostics."""

    test: CaseFile
    flow: Flow | None
    results: list[Result]
    diagnostics: list[Diagnostic]


def selector(patterns: tuple[str, ...] | list[str]) -> Callable[[str], bool] | None:
    """`-k` patterns -> does a case label (`flow/case`, as PASS lines print it) match any? A
    pattern with `*`, `?` or `[` is a glob over the whole label, else a substring of it."""
    if not patterns:
        return None

    def matches(label: str) -> bool:
        return any(fnmatch.fnmatchcase(label, p) if any(c in p for c in "*?[") else p in label for p in patterns)
    return matches


def run_file(path: Path, select: Callable[[str], bool] | None = None, file_params: dict | None = None) -> FileRun:
    tf = parse_test_file(path)
    diagnostics = list(tf.diagnostics)
    if has_errors(diagnostics) or tf.flow_path is None:
        return FileRun(tf, None, [Result(path.name, "*", ["the test file is invalid"])], diagnostics)
    flow, flow_diags = check_file(tf.flow_path)
    diagnostics.extend(d for d in flow_diags if d.severity == "error")
    if flow is None:
        return FileRun(tf, None, [Result(path.name, c.name, ["the flow does not load"]) for c in tf.cases]
                       or [Result(path.name, "*", ["the flow does not load"])], diagnostics)
    if select is not None:
        tf.cases = [c for c in tf.cases if select(f"{flow.id}/{c.name}")]
    if not check_mocks(tf, flow):
        return FileRun(tf, flow, [Result(flow.id, c.name, ["the test file is invalid"]) for c in tf.cases],
                       tf.diagnostics)
    params = values_for(flow, file_params or {})
    return FileRun(tf, flow, [run_case(flow, c, params) for c in tf.cases], diagnostics)


def coverage(flow: Flow, results: list[Result]) -> list[str]:
    """Routed outcomes of each node that no case took: ['Call.machine', ...]."""
    return coverage_counts(flow, results)[0]


def coverage_counts(flow: Flow, results: list[Result]) -> tuple[list[str], int]:
    """(the routed outcomes no case took, how many routed outcomes there are)."""
    taken = set()
    for r in results:
        for step in (r.record or {}).get("steps", ()):
            taken.add((step["node"], step["outcome"]))
    missing = []
    total = 0
    for name, spec in flow.nodes.items():
        if spec.node_type.is_trigger:
            continue
        possible = spec.node_type.possible_outcomes(spec.config)
        for outcome in spec.next:
            if outcome in possible:
                total += 1
                if (name, outcome) not in taken:
                    missing.append(f"{name}.{outcome}")
        if spec.error is not None:
            total += 1
            if (name, "error") not in taken:
                missing.append(f"{name}.error")
    return missing, total


def _coverage_line(flow: Flow, results: list[Result], minimum: float | None) -> tuple[str, bool]:
    """The `coverage` line of a flow, and whether it is below `--min-coverage`."""
    missing, total = coverage_counts(flow, results)
    percent = 100.0 if not total else 100.0 * (total - len(missing)) / total
    line = f"coverage {flow.id}: {percent:.0f}% of {total} routed outcome(s); " + (
        "every routed outcome taken" if not missing else "not taken: " + ", ".join(missing))
    below = minimum is not None and percent < minimum
    if below:
        line += f" (below --min-coverage {minimum:g})"
    return line, below


def run_tests(paths: list[Path], *, update: bool = False, show_coverage: bool = False,
              patterns: tuple[str, ...] = (), min_coverage: float | None = None,
              echo: Callable[[str], None] = print, file_params: dict | None = None) -> int:
    """The `callflow test` command: prints a line per case and a closing count; exit status.
    `patterns` (-k) run only the matching cases; `min_coverage` fails a flow whose cases take
    less than that percentage of its routed outcomes."""
    files, problems = find_test_files(paths)
    select = selector(patterns)
    passed = failed = 0
    short: list[str] = []
    for problem in problems:
        echo(f"error: {problem}")
    for path in files:
        fr = run_file(path, select, file_params)
        for d in fr.diagnostics:
            echo(str(d))
        if update and fr.flow is not None:
            changed = [r for r in fr.results if r.snapshot is not None and not r.passed]
            if changed:
                write_snapshots(fr.test, {r.case: r.snapshot for r in changed})
                for r in changed:
                    r.problems, r.updated = [], True
        for r in fr.results:
            if r.passed:
                passed += 1
                echo(f"PASS {r.label}" + (" (expectations updated)" if r.updated else ""))
            else:
                failed += 1
                first, *rest = r.problems
                echo(f"FAIL {r.label}: {first}")
                for line in rest:
                    echo(f"    {line}")
        if (show_coverage or min_coverage is not None) and fr.flow is not None and fr.results:
            line, below = _coverage_line(fr.flow, fr.results, min_coverage)
            echo(line)
            if below:
                short.append(fr.flow.id)
    echo(f"{passed} passed, {failed} failed" + (f", coverage below {min_coverage:g}% in {', '.join(short)}"
                                                  if short else ""))
    if not files and not problems:
        echo("error: no test files found (<flow>.test.yaml)")
    elif select is not None and not passed + failed:
        echo(f"error: no case matches -k {' -k '.join(patterns)}")
        return 1
    return 1 if failed or problems or not files or short else 0
