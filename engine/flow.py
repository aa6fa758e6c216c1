"""A checked flow: its nodes (NodeSpecs) and their networkx graph.

Flows are built from files by `engine.load` (`load_flow`, `check_text`); the executor only
reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from engine.diagnostics import Diagnostic
from engine.node import NodeSpec


@dataclass(slots=True)
class Flow:
    id: str
    name: str
    description: str
    path: str
    nodes: dict[str, NodeSpec]
    trigger: str
    graph: nx.DiGraph
    diagnostics: list[Diagnostic] = field(default_factory=list)  # warnings of a valid flow

    @property
    def trigger_spec(self) -> NodeSpec:
        return self.nodes[self.trigger]
