"""trigger: where a run starts, from a run request (`http`) or an incoming call (`call`)."""

from engine.errors import NodeFailed
from engine.fields import Data, ListOf, Text
from engine.node import Context, NodeType
from engine.registry import register


@register
class Trigger(NodeType):
    name = "trigger"
    summary = "Start of the flow: a run request (http) or an incoming call (call)."
    config = {
        "payload": Data(description="Static payload: default values, overridden by the run request. Never rendered."),
        "required": ListOf(item=Text(templated=False), description="Payload keys the run request must supply."),
    }
    outcomes = ("http", "call")
    # Dotted output patterns (engine.load.analysis): `*` is any key below; X-PH- prefixes removed.
    outputs = ("http.params.*", "call.from", "call.to", "call.call_uuid", "call.headers.*")
    call_outcomes = frozenset({"call"})
    is_trigger = True

    def default_outcome(self, config):
        return "http"  # `next: Node` on a trigger means the run-request path, as in PHLO

    def run(self, ctx: Context):
        raise NodeFailed("the trigger starts a run; no node can lead back to it")
