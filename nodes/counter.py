"""counter: count how many times the run has reached this node; take `reached` at the limit.

The count is the run's own record (its steps), so it survives restarts and needs no state of
its own: the third visit of a `counter` with `limit: 3` takes `reached`, the first two
`not_reached`. Used to bound retry loops (ask again twice, then give up).
"""

from engine.node import Context, Next, NodeType
from engine.registry import register
from engine.scalar_fields import Integer


@register
class Counter(NodeType):
    name = "counter"
    summary = "Count this node's visits in the run: not_reached until the limit, then reached."
    fields = {"limit": Integer(required=True, minimum=1,
                               description="The visit that takes reached (1: the first visit).")}
    outcomes = ("not_reached", "reached")
    outputs = ("count",)

    def default_outcome(self, config):
        return None

    def run(self, ctx: Context):
        limit = ctx.value("limit")
        count = sum(1 for step in ctx.state.steps if step.node == ctx.name)  # this visit included
        return Next("reached" if count >= limit else "not_reached", {"count": count})
