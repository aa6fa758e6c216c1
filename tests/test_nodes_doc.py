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
