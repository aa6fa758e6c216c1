"""`callflow test --update`: snapshots of what a run did, written into the test file.

`snapshot()` turns a run record into the expectations it meets, leaving out what says
nothing about the flow or differs on every run (callback plumbing, the provider's API URL,
UUIDs, bulky callback `params` and response `headers`). Values minted per run are written
stably (`normalise()`): a callback URL the run minted becomes `{callback:Menu/digits}` (the
node and the kind, not the step number, so inserting a node rewrites nothing) and a UUID
inside a request or document becomes `{uuid}`; the comparison normalises runs the same way. `write_snapshots()` replaces the
`expect:` blocks of the named cases in place, keeping the rest of the file (comments, key
order, blank lines) as written.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from engine.flow import Flow
from engine.local.run import SANDBOX_ENV
from engine.local.testfile import CaseFile

# Call API plumbing the engine adds to every call: left out of snapshots (they still match).
_UUID_ANYWHERE = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
UUID_MARK = "{uuid}"
_BULKY = ("params", "headers")
_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def normalise(record: dict) -> dict:
    """The record with what is minted per run written stably, in its requests and documents:
    `{callback:<node>/<kind>}` for the run's own callback URLs, `{uuid}` for UUIDs."""
    steps = record.get("steps") or []
    prefix = re.escape(SANDBOX_ENV.public_url.rstrip("/") + f"/callbacks/{record['run_id']}/")
    minted = re.compile(prefix + r"(\d+)/([a-z_]+)")

    def callback(m: re.Match) -> str:
        seq = int(m.group(1))
        node = steps[seq]["node"] if seq < len(steps) else m.group(1)
        return f"{{callback:{node}/{m.group(2)}}}"

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return _UUID_ANYWHERE.sub(UUID_MARK, minted.sub(callback, value))
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    out = dict(record)
    out["requests"] = fix(record["requests"])
    out["documents"] = fix(record["documents"])
    return out


def snapshot(record: dict, flow: Flow) -> dict:
    """Expectations that the run just met, readable: what --update writes."""
    record = normalise(record)
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
    if isinstance(value, str) and _UUID_ANYWHERE.search(value):  # a UUID, or a URL naming one
        return None
    return value


def _without_callbacks(body: dict) -> dict:
    """A request body minus the callback URLs the run minted (and their methods): plumbing
    that differs per run, not what a flow author expects."""
    prefix = SANDBOX_ENV.public_url.rstrip("/") + "/callbacks/"
    minted = {k for k, v in body.items() if isinstance(v, str) and v.startswith((prefix, "{callback:"))}
    methods = {k[:-4] + "_method" for k in minted if k.endswith("_url")}
    return {k: v for k, v in body.items() if k not in minted and k not in methods}


# -- writing expectations into the file, keeping the rest as written ------------------------------
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
