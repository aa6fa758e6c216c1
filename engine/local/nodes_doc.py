"""docs/nodes.md, generated from the node types themselves so that it cannot drift.

Each section comes from a node type's declarations (summary, module docstring, fields,
outcomes, outputs, whether it needs a call) and from its fixture (nodes/testdata): the
example is the fixture's first node of the type, as written, and the XML is the first
document a fixture case served after that node ran (callback URLs as `{callback:Node/kind}`).
`python -m engine.local.nodes_doc > docs/nodes.md` writes it; tests/test_nodes_doc.py keeps
the committed copy equal to it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from engine.fields import Field, ListOf, MapOf, Record
from engine.local.flowtest import run_file
from engine.local.snapshots import normalise
from engine.node import NodeType
from engine.registry import node_types
from engine.scalar_fields import Choice

TESTDATA = Path(__file__).resolve().parent.parent.parent / "nodes" / "testdata"
CALL = {"required": "needed: runs only while a call is up", "optional": "optional: with or without a call",
        "none": "none: it does not use the call"}


def _kind(f: Field) -> str:
    if isinstance(f, Choice):
        return " \\| ".join(f"`{str(c).lower() if isinstance(c, bool) else c}`" for c in f.choices)
    if isinstance(f, ListOf):
        item = _kind(f.item)
        return f"{item} or a list of them" if f.one_or_many else f"list of {item}"
    if isinstance(f, Record):
        return "mapping: " + ", ".join(f"`{k}`" for k in f.fields)
    if isinstance(f, MapOf):
        return f"mapping of name -> {_kind(f.value)}"
    return f.type_name


def _config_table(node_type: NodeType) -> list[str]:
    if not node_type.fields:
        return ["No config."]
    rows = ["| key | type | default | what |", "|---|---|---|---|"]
    for key, f in node_type.fields.items():
        name = f"**`{key}`**" if f.required else f"`{key}`"
        default = "" if f.default is None else f"`{str(f.default).lower() if isinstance(f.default, bool) else f.default}`"
        what = f.description.replace("|", "\\|")
        rows.append(f"| {name} | {_kind(f)} | {default} | {what} |")
    return rows


def _example(spec, text: str) -> str:
    """The node's lines in its fixture file, as written."""
    lines = text.splitlines()
    start = spec.line - 1
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    return "\n".join(line[indent:] for line in lines[start:end]).rstrip()


def _document(run, type_name: str) -> str | None:
    """The first document served after a node of the type ran, in the fixture's cases."""
    for result in run.results:
        record = result.record
        if not record:
            continue
        docs = normalise(record)["documents"]
        types = [step["type"] for step in record["steps"]]
        if type_name in types and docs:
            return docs[0]
    return None


def section(type_name: str, node_type: NodeType) -> list[str]:
    module = sys.modules[type(node_type).__module__]
    run = run_file(TESTDATA / f"{type_name}.test.yaml")
    spec = next(s for s in run.flow.nodes.values() if s.node_type is node_type)
    dynamic = type(node_type).node_outcomes is not NodeType.node_outcomes
    outcomes = node_type.node_outcomes(spec.config) if dynamic else node_type.outcomes
    doc = (module.__doc__ or "").strip()
    if doc.startswith(f"{type_name}:"):  # its first line says what the summary says
        doc = doc.partition("\n")[2].strip()
    summary = re.sub(r"(<[A-Za-z][^>]*>)", r"`\1`", node_type.summary)  # Plivo tags, not HTML
    out = [f"## `{type_name}`", "", summary, "", doc, "", "Config:", ""]
    out += _config_table(node_type)
    shown = ", ".join(f"`{o}`" for o in outcomes) or "none"
    out += ["", f"Outcomes{' (from its config; in the example)' if dynamic else ''}: {shown}."]
    outputs = node_type.node_outputs(spec.config)
    out += [f"Outputs: {', '.join(f'`{o}`' for o in outputs) or 'none'}. Call: {CALL[node_type.needs_call]}."]
    out += ["", f"Example (nodes/testdata/{type_name}.yaml):", "", "```yaml", _example(spec, run.test.flow_path.read_text()), "```"]
    document = _document(run, type_name) if node_type.needs_call != "none" else None
    if document:
        out += ["", "XML it produces there:", "", "```xml", document.replace("><", ">\n<"), "```"]
    return out + [""]


def nodes_doc() -> str:
    out = ["# Node types", "",
           "Generated from the node types' declarations and their fixtures (nodes/testdata) by",
           "`python -m engine.local.nodes_doc > docs/nodes.md`; do not edit by hand. The overview",
           "table is in [flows.md](flows.md#node-types).", ""]
    for name, node_type in sorted(node_types().items()):
        out += section(name, node_type)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(nodes_doc(), end="")
