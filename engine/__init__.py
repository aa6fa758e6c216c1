"""callflow as a library: load a flow, check it, run it.

    import engine

    flow = engine.load_flow("flows/outbound-sip-headers.yaml")     # or FlowInvalid
    state = engine.LocalRun(flow).run({"to": "+12025550100", "customer": "johndoe"})
    print(state.status, state.path)                                 # completed [...]

The names below are the public API (docs/embedding.md). They are loaded on first use
(PEP 562), so `import engine` costs next to nothing and `callflow --help` stays quick.
The layers underneath: the pure core directly in `engine/` (node contract, fields,
templating, XML, events, state, executor), `engine.load` (flow files -> Flow),
`engine.local` (sandbox, LocalRun, flow tests), `engine.service` (`callflow serve`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_HOMES = {
    # loading and checking flows
    "load_flow": "engine.load.build",
    "check_text": "engine.load.build",
    "check_file": "engine.load.build",
    "Flow": "engine.flow",
    "Diagnostic": "engine.diagnostics",
    # errors
    "CallflowError": "engine.errors",
    "FlowInvalid": "engine.errors",
    # the pure executor: (state, event) -> effects
    "Executor": "engine.executor",
    "RunEnvironment": "engine.node",
    "RunState": "engine.state",
    "Trigger": "engine.events",
    "InboundCall": "engine.events",
    "InboundMessage": "engine.events",
    "Response": "engine.events",
    "Callback": "engine.events",
    "Expired": "engine.events",
    "TimerFired": "engine.events",
    "Request": "engine.events",
    "ServeDocument": "engine.events",
    "Finished": "engine.events",
    # writing node types
    "NodeType": "engine.node",
    "register": "engine.registry",
    # running on this machine
    "LocalRun": "engine.local.run",
    "Scenario": "engine.local.scenario",
    "load_scenario": "engine.local.scenario",
}

__all__ = [  # the public names; tests/test_public_api.py pins them
    "Callback",
    "CallflowError",
    "Diagnostic",
    "Executor",
    "Expired",
    "Finished",
    "Flow",
    "FlowInvalid",
    "InboundCall",
    "InboundMessage",
    "LocalRun",
    "NodeType",
    "Request",
    "Response",
    "RunEnvironment",
    "RunState",
    "Scenario",
    "ServeDocument",
    "TimerFired",
    "Trigger",
    "check_file",
    "check_text",
    "load_flow",
    "load_scenario",
    "register",
]

if TYPE_CHECKING:
    from engine.diagnostics import Diagnostic
    from engine.errors import CallflowError, FlowInvalid
    from engine.events import (
        Callback,
        Expired,
        Finished,
        InboundCall,
        InboundMessage,
        Request,
        Response,
        ServeDocument,
        TimerFired,
        Trigger,
    )
    from engine.executor import Executor
    from engine.flow import Flow
    from engine.load.build import check_file, check_text, load_flow
    from engine.local.run import LocalRun
    from engine.local.scenario import Scenario, load_scenario
    from engine.node import NodeType, RunEnvironment
    from engine.registry import register
    from engine.state import RunState


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
