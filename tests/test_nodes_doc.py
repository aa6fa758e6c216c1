"""docs/nodes.md is generated from the node types and their fixtures: the committed copy is
the generated one, and it has a section per node type."""

from __future__ import annotations

from pathlib import Path

from engine.local.nodes_doc import nodes_doc
from engine.registry import node_types

DOC = Path(__file__).resolve().parent.parent / "docs" / "nodes.md"


def test_committed_nodes_doc_is_the_generated_one():
    text = nodes_doc()
    assert DOC.read_text() == text, "docs/nodes.md is stale: run `python -m engine.local.nodes_doc > docs/nodes.md`"
    for name, node_type in node_types().items():
        assert f"## `{name}`" in text
        for key in node_type.fields:
            assert f"`{key}`" in text


def test_the_drawings_of_the_bundled_flows_in_flows_md_are_current():
    from click.testing import CliRunner

    from engine.cli import main

    flows_md = (DOC.parent / "flows.md").read_text()
    for flow in ("support-line", "conference-bridge", "sms-auto-reply"):
        drawn = CliRunner().invoke(main, ["graph", str(DOC.parent.parent / "flows" / f"{flow}.yaml"),
                                          "--format", "mermaid"])
        assert drawn.exit_code == 0, drawn.output
        assert f"```mermaid\n{drawn.output.rstrip()}\n```" in flows_md, f"redraw {flow} in docs/flows.md"
