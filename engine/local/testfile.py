"""Flow test files (`<flow>.test.yaml`): finding them, reading them and checking them.

A test file names its flow (`flow:`, by default the file's own name without `.test`) and
holds cases; each case says how to start the run (payload or incoming call), how simulated
callees behave, which HTTP responses are mocked, and what to expect. Reading never raises on
bad input: every problem lands, with its position, in `CaseFile.diagnostics`. The format is
documented in docs/testing.md; running the cases is `engine.local.flowtest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import codes
from engine.diagnostics import Diagnostic, sort_key
from engine.errors import FlowInvalid
from engine.events import payload_problems
from engine.fields import did_you_mean
from engine.flow import Flow
from engine.load.document import Document
from engine.load.yaml_reader import load_text
from engine.local.incoming import DEFAULT_TO, SIP_PART
from engine.local.scenario import (
    Scenario,
    load_scenario,
    parse_behaviour,
    parse_http_mock,
    parse_now_at,
    parse_sequence,
)
from engine.scalar_fields import phone_problem

TEST_SUFFIXES = (".test.yaml", ".test.yml")
CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_KEYS = ("flow", "description", "cases")
CASE_KEYS = ("description", "payload", "call", "message", "callee", "destinations", "http", "scenario", "now", "expect")
CALL_KEYS = ("from", "to", "headers")
MESSAGE_KEYS = ("from", "to", "text")
EXPECT_KEYS = ("status", "error", "path", "requests", "documents", "variables")
STATUSES = ("completed", "failed", "waiting", "running")


@dataclass
class Case:
    """One case of a test file: how to run the flow once, and what to expect of the run."""

    name: str
    payload: dict
    scenario: Scenario
    expect: dict | None  # None: no expectations written yet
    path: tuple  # in the document
    call: dict | None = None  # an incoming call starts the run: {from, to, headers}
    message: dict | None = None  # an incoming SMS starts the run: {from, to, text}


@dataclass
class CaseFile:
    """A test file as read: its document, the flow it tests and its cases."""

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


def unknown_key(doc: Document, path: tuple, allowed) -> None:
    """`unknown key 'calee' (expected ...); did you mean 'callee'?` at the key."""
    key = str(path[-1])
    doc.diag(path, codes.UNKNOWN_KEY, f"unknown key {key!r} (expected {', '.join(allowed)})"
             + did_you_mean(key, allowed), key=True)


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
            unknown_key(doc, (key,), TOP_KEYS)
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
            unknown_key(doc, cpath + (key,), CASE_KEYS)
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
        default = parse_sequence(parse_behaviour, doc, cpath + ("callee",), raw["callee"])
    destinations = dict(base.destinations)
    raw_dest = raw.get("destinations") or {}
    if isinstance(raw_dest, dict):
        for dest, spec in raw_dest.items():
            destinations[str(dest)] = parse_sequence(parse_behaviour, doc, cpath + ("destinations", dest), spec)
    else:
        doc.diag(cpath + ("destinations",), codes.WRONG_TYPE, "destinations maps a number or SIP URI to a behaviour")
    mocks = dict(base.http)
    raw_http = raw.get("http") or {}
    if isinstance(raw_http, dict):
        for node, spec in raw_http.items():
            mocks[str(node)] = parse_sequence(parse_http_mock, doc, cpath + ("http", node), spec)
    else:
        doc.diag(cpath + ("http",), codes.WRONG_TYPE, "http maps an http_request node name to its mocked response")
    expect = raw.get("expect")
    if expect is not None:
        _check_expect(doc, cpath + ("expect",), expect)
    now = parse_now_at(doc, cpath + ("now",), raw["now"]) if "now" in raw else base.now
    return Case(name, dict(payload), Scenario(default=default, destinations=destinations, http=mocks, now=now),
                expect if isinstance(expect, dict) else None, cpath, _incoming(doc, cpath, raw),
                _message(doc, cpath, raw))


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
            unknown_key(doc, path + (key,), CALL_KEYS)
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


def _message(doc: Document, cpath: tuple, raw: dict) -> dict | None:
    """`message: {from, to, text}`: the run starts with an incoming SMS instead of a request."""
    if "message" not in raw:
        return None
    message, path = raw["message"], cpath + ("message",)
    if not isinstance(message, dict):
        doc.diag(path, codes.WRONG_TYPE, "message is a mapping: from, to, text")
        return None
    if "call" in raw:
        doc.diag(path, codes.WRONG_TYPE, "a case starts with an incoming call or an incoming message, not both",
                 key=True)
    for key in message:
        if key not in MESSAGE_KEYS:
            unknown_key(doc, path + (key,), MESSAGE_KEYS)
    for key in ("from", "to"):
        value = message.get(key, DEFAULT_TO if key == "to" else None)
        if not isinstance(value, str) or phone_problem(value):
            doc.diag(path + (key,) if key in message else path, codes.INVALID_PHONE,
                     f"message.{key} is the sender's E.164 number" if key == "from"
                     else f"message.{key} is the number the message was sent to (E.164)")
    text = message.get("text", "")
    if not isinstance(text, str):
        doc.diag(path + ("text",), codes.WRONG_TYPE, "message.text is the text of the SMS")
    return {"from": str(message.get("from", "")), "to": str(message.get("to", DEFAULT_TO)), "text": str(text)}


def _check_expect(doc: Document, path: tuple, expect: Any) -> None:
    if not isinstance(expect, dict):
        doc.diag(path, codes.WRONG_TYPE, f"expect is a mapping of {', '.join(EXPECT_KEYS)}")
        return
    for key, value in expect.items():
        kpath = path + (key,)
        if key not in EXPECT_KEYS:
            unknown_key(doc, kpath, EXPECT_KEYS)
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


def check_mocks(tf: CaseFile, flow: Flow) -> bool:
    """Do the cases' `http` mocks name nodes of `flow` that call HTTP APIs? Problems land in
    `tf.diagnostics` (mocks from a scenario file are not checked: they are not in this file)."""
    ok = True
    for case in tf.cases:
        for node in case.scenario.http:
            if ("cases", case.name, "http", node) not in tf.doc.key_pos:
                continue  # from a scenario file
            if node not in flow.nodes:
                ok = False
                tf.doc.diag(case.path + ("http", node), codes.UNKNOWN_NODE,
                            f"http mocks node {node!r}, which is not a node of {flow.id}", key=True)
            elif not flow.nodes[node].node_type.calls_http:
                ok = False
                tf.doc.diag(case.path + ("http", node), codes.WRONG_TYPE,
                            f"http mocks only nodes that call HTTP APIs; {node!r} is a {flow.nodes[node].type} node",
                            key=True)
    return ok


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

