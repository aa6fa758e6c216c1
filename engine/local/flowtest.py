"""`callflow test`: flow test cases, kept as YAML files next to the flows.

A test file `<flow>.test.yaml` names its flow and holds cases; each case is one run on the
embedded sandbox, through the same code path as `callflow run` (`runner.LocalRun`), with
simulated callees and mocked HTTP responses, and expectations on what came out. A test
never touches the network: an `http_request` node without a mock fails. The format is
documented in docs/testing.md.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from engine import codes
from engine.diagnostics import Diagnostic, has_errors, sort_key
from engine.errors import FlowInvalid
from engine.events import payload_problems
from engine.flow import Flow
from engine.load.build import check_file
from engine.load.document import Document, load_text
from engine.local.scenario import Scenario, _behaviour, _mock, load_scenario
from engine.scalar_fields import phone_problem

TEST_SUFFIXES = (".test.yaml", ".test.yml")
RUN_ID = "test"  # fixed, so callback URLs in documents are the same on every run
CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_KEYS = ("flow", "description", "cases")
SIP_PART = re.compile(r"[A-Za-z0-9]+")
CASE_KEYS = ("description", "payload", "call", "callee", "destinations", "http", "scenario", "expect")
CALL_KEYS = ("from", "to", "headers")
EXPECT_KEYS = ("status", "error", "path", "requests", "documents", "variables")
STATUSES = ("completed", "failed", "waiting", "running")
# Call API plumbing the engine adds to every call: left out of snapshots (they still match).
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_BULKY = ("params", "headers")
_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


# -- the test file -------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    payload: dict
    scenario: Scenario
    expect: dict | None  # None: no expectations written yet
    path: tuple  # in the document
    call: dict | None = None  # an incoming call starts the run: {from, to, headers}


@dataclass
class CaseFile:
    path: Path
    doc: Document
    flow_path: Path | None = None
    cases: list[Case] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return sorted(set(self.doc.diagnostics), key=sort_key)


def default_flow_path(test_path: Path) -> Path:
    """`x.test.yaml` tests `x.yaml` (or `x.yml`)."""
    name = test_path.name
    for suffix in TEST_SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            candidates = [test_path.with_name(stem + ext) for ext in (".yaml", ".yml")]
            return next((c for c in candidates if c.exists()), candidates[0])
    return test_path


def parse_test_file(path: Path, text: str | bytes | None = None) -> CaseFile:
    """Read a test file; problems land in `.diagnostics` (never raises on bad input)."""
    if text is None:
        try:
            text = path.read_bytes()
        except OSError as e:
            doc = Document(str(path))
            doc.diag((), codes.UNREADABLE, f"cannot read file: {e.strerror}")
            return CaseFile(path, doc)
    doc = load_text(text, str(path))
    tf = CaseFile(path, doc)
    data = doc.data
    if doc.diagnostics and data is None:
        return tf
    if not isinstance(data, dict):
        doc.diag((), codes.WRONG_TYPE, "a test file is a mapping with flow and cases")
        return tf
    for key in data:
        if key not in TOP_KEYS:
            doc.diag((key,), codes.UNKNOWN_KEY, f"unknown key {key!r} (expected {', '.join(TOP_KEYS)})", key=True)
    flow_ref = data.get("flow")
    if flow_ref is None:
        tf.flow_path = default_flow_path(path)
    elif isinstance(flow_ref, str) and flow_ref:
        tf.flow_path = path.parent / flow_ref
    else:
        doc.diag(("flow",), codes.WRONG_TYPE, "flow is the path of the flow file, relative to this file")
    cases = data.get("cases")
    if cases is None:
        doc.diag((), codes.MISSING_KEY, "missing required key 'cases'")
        return tf
    if not isinstance(cases, dict) or not cases:
        doc.diag(("cases",), codes.WRONG_TYPE, "cases maps a case name to its run and expectations")
        return tf
    for name, raw in cases.items():
        case = _parse_case(doc, path, str(name), raw)
        if case is not None:
            tf.cases.append(case)
    return tf


def _parse_case(doc: Document, file_path: Path, name: str, raw: Any) -> Case | None:
    cpath = ("cases", name)
    if not CASE_NAME.match(name):
        doc.diag(cpath, codes.INVALID_NAME, f"case name {name!r}: letters, digits, '_', '-' and '.'", key=True)
    if not isinstance(raw, dict):
        doc.diag(cpath, codes.WRONG_TYPE, "a case is a mapping: payload, callee, destinations, http, expect")
        return None
    for key in raw:
        if key not in CASE_KEYS:
            doc.diag(cpath + (key,), codes.UNKNOWN_KEY, f"unknown key {key!r} (expected {', '.join(CASE_KEYS)})",
                     key=True)
    payload = raw.get("payload") or {}
    if not isinstance(payload, dict):
        doc.diag(cpath + ("payload",), codes.WRONG_TYPE, "payload maps keys to text, numbers or booleans")
        payload = {}
    for k, problem in payload_problems(payload, allow_null=False):
        doc.diag(cpath + ("payload", k), codes.WRONG_TYPE, problem)
    base = Scenario()
    if "scenario" in raw:
        ref = raw["scenario"]
        if isinstance(ref, str) and ref:
            try:
                base = load_scenario(file_path.parent / ref)
            except FlowInvalid as e:
                doc.diagnostics.extend(e.diagnostics)
        else:
            doc.diag(cpath + ("scenario",), codes.WRONG_TYPE, "scenario is the path of a scenario file")
    default = base.default
    if "callee" in raw:
        default = _behaviour(doc, cpath + ("callee",), raw["callee"])
    destinations = dict(base.destinations)
    raw_dest = raw.get("destinations") or {}
    if isinstance(raw_dest, dict):
        for dest, spec in raw_dest.items():
            destinations[str(dest)] = _behaviour(doc, cpath + ("destinations", dest), spec)
    else:
        doc.diag(cpath + ("destinations",), codes.WRONG_TYPE, "destinations maps a number or SIP URI to a behaviour")
    mocks = dict(base.http)
    raw_http = raw.get("http") or {}
    if isinstance(raw_http, dict):
        for node, spec in raw_http.items():
            mocks[str(node)] = _mock(doc, cpath + ("http", node), spec)
    else:
        doc.diag(cpath + ("http",), codes.WRONG_TYPE, "http maps an http_request node name to its mocked response")
    expect = raw.get("expect")
    if expect is not None:
        _check_expect(doc, cpath + ("expect",), expect)
    return Case(name, dict(payload), Scenario(default=default, destinations=destinations, http=mocks),
                expect if isinstance(expect, dict) else None, cpath, _incoming(doc, cpath, raw))


def _incoming(doc: Document, cpath: tuple, raw: dict) -> dict | None:
    """`call: {from, to, headers}`: the run starts with an incoming call instead of a request."""
    if "call" not in raw:
        return None
    call = raw["call"]
    path = cpath + ("call",)
    if not isinstance(call, dict):
        doc.diag(path, codes.WRONG_TYPE, "call is a mapping: from, to, headers")
        return None
    for key in call:
        if key not in CALL_KEYS:
            doc.diag(path + (key,), codes.UNKNOWN_KEY, f"unknown key {key!r} (expected {', '.join(CALL_KEYS)})", key=True)
    for key in ("from", "to"):
        if not isinstance(call.get(key), str) or phone_problem(call[key]):
            doc.diag(path + (key,) if key in call else path, codes.INVALID_PHONE,
                     f"call.{key} is the caller's E.164 number or SIP URI" if key == "from"
                     else f"call.{key} is the number the caller dialled (E.164 or SIP URI)")
    headers = call.get("headers") or {}
    if not isinstance(headers, dict) or not all(
            isinstance(v, (str, int)) and SIP_PART.fullmatch(str(k)) and SIP_PART.fullmatch(str(v))
            for k, v in headers.items()):
        doc.diag(path + ("headers",), codes.SIP_HEADER_VALUE, "headers maps SIP header names to values (A-Z a-z 0-9)")
        headers = {}
    return {"from": str(call.get("from", "")), "to": str(call.get("to", "")),
            "headers": {str(k): str(v) for k, v in headers.items()}}


def _check_expect(doc: Document, path: tuple, expect: Any) -> None:
    if not isinstance(expect, dict):
        doc.diag(path, codes.WRONG_TYPE, f"expect is a mapping of {', '.join(EXPECT_KEYS)}")
        return
    for key, value in expect.items():
        kpath = path + (key,)
        if key not in EXPECT_KEYS:
            doc.diag(kpath, codes.UNKNOWN_KEY, f"unknown key {key!r} (expected {', '.join(EXPECT_KEYS)})", key=True)
        elif key == "status" and value not in STATUSES:
            doc.diag(kpath, codes.INVALID_CHOICE, f"{value!r} is not one of: {', '.join(STATUSES)}")
        elif key == "error" and not isinstance(value, str):
            doc.diag(kpath, codes.WRONG_TYPE, "error is text the run's error must contain")
        elif key == "path" and not (isinstance(value, list) and all(isinstance(n, str) for n in value)):
            doc.diag(kpath, codes.WRONG_TYPE, "path is the list of node names the run went through")
        elif key == "requests" and not (isinstance(value, list) and all(isinstance(r, dict) for r in value)):
            doc.diag(kpath, codes.WRONG_TYPE, "requests is a list of mappings (node, method, url, json, form)")
        elif key == "documents":
            if not isinstance(value, list):
                doc.diag(kpath, codes.WRONG_TYPE, "documents is a list: XML text, or {contains: text or list}")
                continue
            for i, d in enumerate(value):
                if isinstance(d, str):
                    continue
                ok = isinstance(d, dict) and set(d) == {"contains"} and (
                    isinstance(d["contains"], str)
                    or (isinstance(d["contains"], list) and all(isinstance(c, str) for c in d["contains"])))
                if not ok:
                    doc.diag(kpath + (i,), codes.WRONG_TYPE, "a document is XML text or {contains: text or list}")
        elif key == "variables" and not isinstance(value, dict):
            doc.diag(kpath, codes.WRONG_TYPE, "variables maps node names to their expected outputs (a subset)")


# -- running -------------------------------------------------------------------------------------
@dataclass
class Result:
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


def run_case(flow: Flow, case: Case) -> Result:
    from engine.local.run import LocalRun

    missing = [] if case.call else flow.missing_payload(case.payload)
    if missing:
        return Result(flow.id, case.name, [f"the payload lacks required key(s) {', '.join(missing)}"])
    runner = LocalRun(flow, case.scenario, mock_http_only=True)
    try:
        if case.call:
            state = runner.run_inbound(case.call["from"], case.call["to"], case.call["headers"], run_id=RUN_ID)
        else:
            state = runner.run(dict(case.payload), run_id=RUN_ID)
    except Exception as e:  # noqa: BLE001 - an engine bug must not end the whole test run
        return Result(flow.id, case.name, [f"the engine raised {type(e).__name__}: {e}"])
    record = state.record()
    snap = snapshot(record, flow)
    problems = compare(case.expect, record) if case.expect is not None else ["no expectations yet (run with --update)"]
    return Result(flow.id, case.name, problems, record, snap)


def snapshot(record: dict, flow: Flow) -> dict:
    """Expectations that the run just met, readable: what --update writes."""
    from engine.local.run import SANDBOX_ENV

    out: dict = {"status": record["status"]}
    if record.get("error"):
        out["error"] = record["error"]
    out["path"] = list(record["path"])
    requests = []
    for r in record["requests"]:
        item: dict = {"node": r["node"]}
        if not r["url"].startswith(SANDBOX_ENV.api_url):  # the provider's URLs are plumbing
            item["method"] = r["method"]
            item["url"] = r["url"]
        body = r.get("json")
        if isinstance(body, dict):
            body = _without_callbacks(body)
        if body is not None:
            item["json"] = body
        if r.get("form") is not None:
            item["form"] = r["form"]
        requests.append(item)
    out["requests"] = requests
    out["documents"] = list(record["documents"])
    variables = {}
    for name, value in record["variables"].items():
        spec = flow.nodes.get(name)
        if spec is None or spec.node_type.is_trigger:
            continue  # the trigger's outputs are the payload, already in the case
        kept = _stable(value)
        if kept not in (None, {}):
            variables[name] = kept
    if variables:
        out["variables"] = variables
    return out


def _stable(value: Any, depth: int = 0) -> Any:
    """Drop what changes from run to run (UUIDs) and bulky callback/HTTP header maps."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if depth == 0 and k in _BULKY:
                continue
            kept = _stable(v, depth + 1)
            if kept is not None:
                out[k] = kept
        return out
    if isinstance(value, str) and _UUID.match(value):
        return None
    return value


def compare(expect: dict, record: dict) -> list[str]:
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
        for i, (w, g) in enumerate(zip(want, got)):
            problems.extend(_subset(w, g, f"requests[{i}]"))
    if "documents" in expect:
        want, got = expect["documents"], record["documents"]
        if len(want) != len(got):
            problems.append(f"documents: expected {len(want)}, got {len(got)}")
        for i, (w, g) in enumerate(zip(want, got)):
            if isinstance(w, str):
                if w != g:
                    problems.append(f"documents[{i}] differs:")
                    problems.extend("  " + line for line in _xml_diff(w, g))
            else:
                needles = w["contains"] if isinstance(w["contains"], list) else [w["contains"]]
                for needle in needles:
                    if needle not in g:
                        problems.append(f"documents[{i}]: expected it to contain {needle!r}; it is {g!r}")
    if "variables" in expect:
        problems.extend(_subset(expect["variables"], record["variables"], "variables"))
    return problems


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


# -- discovery and the command ---------------------------------------------------------------------
def find_test_files(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Test files under the paths: test files as given, flows' sibling test files, folders
    searched recursively. Returns (files, problems)."""
    files: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def add(f: Path) -> None:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            files.append(f)

    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.name.endswith(TEST_SUFFIXES) and f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            for f in found:
                add(f)
        elif p.is_file() and p.name.endswith(TEST_SUFFIXES):
            add(p)
        elif p.is_file():
            sibling = [p.with_name(p.stem + s) for s in TEST_SUFFIXES]
            existing = [s for s in sibling if s.exists()]
            if existing:
                add(existing[0])
            else:
                problems.append(f"{p}: no test cases ({sibling[0].name} not found)")
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


@dataclass
class FileRun:
    test: CaseFile
    flow: Flow | None
    results: list[Result]
    diagnostics: list[Diagnostic]


def run_file(path: Path) -> FileRun:
    tf = parse_test_file(path)
    diagnostics = list(tf.diagnostics)
    if has_errors(diagnostics) or tf.flow_path is None:
        return FileRun(tf, None, [Result(path.name, "*", ["the test file is invalid"])], diagnostics)
    flow, flow_diags = check_file(tf.flow_path)
    diagnostics.extend(d for d in flow_diags if d.severity == "error")
    if flow is None:
        return FileRun(tf, None, [Result(path.name, c.name, ["the flow does not load"]) for c in tf.cases]
                       or [Result(path.name, "*", ["the flow does not load"])], diagnostics)
    unknown = False
    for case in tf.cases:
        for node in case.scenario.http:
            if ("cases", case.name, "http", node) not in tf.doc.key_pos:
                continue  # from a scenario file
            if node not in flow.nodes:
                unknown = True
                tf.doc.diag(case.path + ("http", node), codes.UNKNOWN_NODE,
                            f"http mocks node {node!r}, which is not a node of {flow.id}", key=True)
            elif not flow.nodes[node].node_type.calls_http:
                unknown = True
                tf.doc.diag(case.path + ("http", node), codes.WRONG_TYPE,
                            f"http mocks only nodes that call HTTP APIs; {node!r} is a {flow.nodes[node].type} node",
                            key=True)
    if unknown:
        diagnostics = sorted(set(tf.doc.diagnostics), key=sort_key)
        return FileRun(tf, flow, [Result(flow.id, c.name, ["the test file is invalid"]) for c in tf.cases],
                       diagnostics)
    return FileRun(tf, flow, [run_case(flow, c) for c in tf.cases], diagnostics)


def _without_callbacks(body: dict) -> dict:
    """A request body minus the callback URLs the run minted (and their methods): plumbing
    that differs per run, not what a flow author expects."""
    from engine.local.run import SANDBOX_ENV

    prefix = SANDBOX_ENV.public_url.rstrip("/") + "/callbacks/"
    minted = {k for k, v in body.items() if isinstance(v, str) and v.startswith(prefix)}
    methods = {k[:-4] + "_method" for k in minted if k.endswith("_url")}
    return {k: v for k, v in body.items() if k not in minted and k not in methods}


def coverage(flow: Flow, results: list[Result]) -> list[str]:
    """Routed outcomes of each node that no case took: ['Call.machine', ...]."""
    taken = set()
    for r in results:
        for step in (r.record or {}).get("steps", ()):
            taken.add((step["node"], step["outcome"]))
    missing = []
    for name, spec in flow.nodes.items():
        if spec.node_type.is_trigger:
            continue
        possible = spec.node_type.possible_outcomes(spec.config)
        for outcome in spec.next:
            if outcome in possible and (name, outcome) not in taken:
                missing.append(f"{name}.{outcome}")
        if spec.error is not None and (name, "error") not in taken:
            missing.append(f"{name}.error")
    return missing


def run_tests(paths: list[Path], *, update: bool = False, show_coverage: bool = False,
              echo: Callable[[str], None] = print) -> int:
    """The `callflow test` command: prints a line per case and a closing count; exit status."""
    files, problems = find_test_files(paths)
    passed = failed = 0
    for problem in problems:
        echo(f"error: {problem}")
    for path in files:
        fr = run_file(path)
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
        if show_coverage and fr.flow is not None:
            missing = coverage(fr.flow, fr.results)
            echo(f"coverage {fr.flow.id}: " + ("every routed outcome taken" if not missing
                                                 else "not taken: " + ", ".join(missing)))
    echo(f"{passed} passed, {failed} failed")
    if not files and not problems:
        echo("error: no test files found (<flow>.test.yaml)")
    return 1 if failed or problems or not files else 0


# -- --update: rewrite expectations, keeping the rest of the file as written ------------------------
class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # indent lists under their key


def _represent_list(dumper, data):
    # Short lists of words (node names, digits) inline: [Start, Call, Done]
    flow = all(isinstance(v, (int, float, bool)) or (isinstance(v, str) and _WORD.fullmatch(v)) for v in data) \
        and sum(len(str(v)) + 2 for v in data) < 90
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_str(dumper, data):
    style = None
    if "\n" in data:
        style = "|"
    elif "'" in data and '"' not in data and "\\" not in data and data.isprintable():
        style = '"'  # "it's" reads better than 'it''s'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def dump_expect(snap: dict, indent: int) -> list[str]:
    text = yaml.dump({"expect": snap}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096,
                     default_flow_style=False, indent=2)
    pad = " " * indent
    return [pad + line if line else line for line in text.splitlines()]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """First line after `start` (0-based) that is not inside a block indented more than `indent`;
    trailing blank lines are left outside."""
    end = start + 1
    last = start + 1
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if stripped and _indent(line) <= indent:
            break
        end += 1
        if stripped:
            last = end
    return last


def write_snapshots(tf: CaseFile, snaps: dict[str, dict]) -> None:
    """Replace (or add) the `expect:` of the named cases in place; the rest of the file keeps its
    comments and layout. Falls back to rewriting the whole file for flow-style cases."""
    text = tf.doc.text
    lines = text.splitlines()
    edits: list[tuple[int, int, list[str]]] = []  # (start, end, new lines), 0-based, end exclusive
    for name, snap in snaps.items():
        cpath = ("cases", name)
        case_key = tf.doc.key_position(cpath)
        expect_key = tf.doc.key_position(cpath + ("expect",))
        children = [tf.doc.line_col(offset) for p, offset in tf.doc.key_pos.items() if len(p) == 3 and p[:2] == cpath]
        if case_key is None or not children or min(children)[0] == case_key[0]:
            return _rewrite_whole(tf, snaps)
        if expect_key is not None:
            start = expect_key[0] - 1
            indent = expect_key[1] - 1
            if lines[start][:indent].strip():  # not a block key on its own line
                return _rewrite_whole(tf, snaps)
            edits.append((start, _block_end(lines, start, indent), dump_expect(snap, indent)))
        else:
            indent = min(children)[1] - 1 if children else case_key[1] + 1
            end = _block_end(lines, case_key[0] - 1, case_key[1] - 1)
            edits.append((end, end, dump_expect(snap, indent)))
    for start, end, new in sorted(edits, reverse=True):
        lines[start:end] = new
    tf.path.write_text("\n".join(lines) + "\n")


def _rewrite_whole(tf: CaseFile, snaps: dict[str, dict]) -> None:
    data = tf.doc.data
    for name, snap in snaps.items():
        data["cases"][name]["expect"] = snap
    tf.path.write_text(yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096,
                                 default_flow_style=False))
