"""Node types by name. Built-in types are found by scanning the `nodes` package, so adding
a node type means adding a module; nothing in the engine lists them."""

from __future__ import annotations

import importlib
import pkgutil

from engine.node import NodeType

_types: dict[str, NodeType] = {}
_loaded = False


def register(cls: type[NodeType]) -> type[NodeType]:
    """Class decorator used by node modules: `@register class Speak(NodeType): ...`
    registers one instance under `cls.name` (a second class with the same name is an error)."""
    if cls.name in _types and type(_types[cls.name]) is not cls:
        raise ValueError(f"node type {cls.name!r} registered twice")
    _types[cls.name] = cls()
    return cls


def node_types() -> dict[str, NodeType]:
    """Every registered node type by name (the `nodes` package is imported on first use)."""
    global _loaded
    if not _loaded:
        import nodes

        for info in pkgutil.iter_modules(nodes.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"nodes.{info.name}")
        _loaded = True
    return _types
