"""A checked flow: its nodes (NodeSpecs) and their networkx graph.

Flows are built from files by `engine.load` (`load_flow`, `check_text`); the executor only
reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from engine.diagnostics import Diagnostic
from engine.events import StartEvent
from engine.node import NodeSpec
from engine.params import Param


@dataclass(slots=True)
class Flow:
    """A valid flow: `nodes` by name, `trigger` the name of its entry node, `graph` the
    nodes and their edges, `diagnostics` its warnings."""

    id: str
    name: str
    description: str
    path: str
    nodes: dict[str, NodeSpec]
    trigger: str
    graph: nx.DiGraph
    diagnostics: list[Diagnostic] = field(default_factory=list)  # warnings of a valid flow
    params: dict[str, Param] = field(default_factory=dict)  # declared parameters (`params:`)
    source: str = ""  # the file's text, kept so any process can rebuild this revision
    revision: str = ""  # SHA-256 (hex) of the file's bytes: runs finish on the revision they started on
    # node -> can a call be up when a run enters it? ({True}, {False} or both): validation's
    # proof (engine.load.checks), which drawings use for call-optional nodes such as `wait`.
    call_states: dict[str, frozenset[bool]] = field(default_factory=dict)

    def always_in_call(self, name: str) -> bool:
        """Does node `name` run during a call on every path that reaches it? A call-optional
        node (`wait`, `hangup`) only when every way in has a call up."""
        need = self.nodes[name].node_type.needs_call
        if need != "optional":
            return need == "required"
        states = self.call_states.get(name)
        return bool(states) and all(states)

    @property
    def trigger_spec(self) -> NodeSpec:
        """The entry node, where every run starts."""
        return self.nodes[self.trigger]

    def missing_payload(self, payload: dict) -> list[str]:
        """The keys a run request must supply and `payload` lacks (checked before a run)."""
        spec = self.trigger_spec
        return spec.node_type.missing_payload(spec.config, payload)

    def start_target(self, event_type: type[StartEvent]) -> str | None:
        """The first node after the entry node on runs started by such an event (None: the
        flow has no path for them, e.g. it takes no incoming calls)."""
        spec = self.trigger_spec
        return spec.next.get(spec.node_type.start_outcome(event_type))
