"""set_variables: compute named values for later nodes ({{ Node.name }})."""

from engine.fields import AnyJson, MapOf
from engine.node import Context, Next, NodeType
from engine.registry import register


@register
class SetVariables(NodeType):
    name = "set_variables"
    summary = "Set named values (templates) that later nodes read as {{ ThisNode.name }}."
    fields = {
        "values": MapOf(value=AnyJson(), key_pattern=r"[A-Za-z_][A-Za-z0-9_]*", required=True,
                        key_hint="variable names are words: letters, digits and '_'",
                        description="name -> value (strings may be templates)."),
    }

    def node_outputs(self, config):
        """Each name; a literal mapping declares its keys, a list any index below it."""
        out: list[str] = []

        def walk(prefix: str, value) -> None:
            if isinstance(value, dict) and value and all(isinstance(k, str) and "." not in k for k in value):
                for k, v in value.items():
                    walk(f"{prefix}.{k}", v)
            elif isinstance(value, (dict, list)) and value:
                out.append(prefix + ".*")
            else:
                out.append(prefix)

        for name, value in (config.get("values") or {}).items():
            walk(name, value)
        return tuple(out)

    def run(self, ctx: Context):
        return Next("done", ctx.value("values"))
