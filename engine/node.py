"""The contract between the engine and node types.

A node type is a small class in its own module under `nodes/`: it declares its config
fields, its outcomes and outputs, whether it needs a call to be up, and what it does when
run (and, for nodes that wait, when resumed). It returns an Action; the executor does the
rest. The engine knows node types only through the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

from engine.errors import NodeFailed, ValueInvalid
from engine.events import Callback, Request, Response
from engine.fields import Field
from engine.plivoxml import Element

if TYPE_CHECKING:
    from engine.state import RunState

CallNeed = Literal["none", "required", "optional"]


# -- actions a node returns ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Next:
    """Done: take `outcome` (None ends the path)."""

    outcome: str | None
    outputs: dict | None = None
    error: str | None = None  # a note for the step record (e.g. why `failed`)


@dataclass(frozen=True, slots=True)
class Say:
    """An in-call verb appended to the XML document being built, then take `outcome`."""

    element: Element
    outcome: str | None = "done"
    outputs: dict | None = None


@dataclass(frozen=True, slots=True)
class Listen:
    """End the document with these elements and wait for a digits/no_input callback."""

    elements: tuple[Element, ...]


@dataclass(frozen=True, slots=True)
class EndCall:
    """End the document with this element; the call is over and the path ends here."""

    element: Element


@dataclass(frozen=True, slots=True)
class Send:
    """Make an HTTP request (an effect) and wait for its response."""

    request: Request


@dataclass(frozen=True, slots=True)
class AwaitCall:
    """A call has been placed: wait for its answer or hangup callback."""

    outputs: dict | None = None
    legs: int = 1


Action = Next | Say | Listen | EndCall | Send | AwaitCall


class Context:
    """What a node sees while it runs: its resolved config, the run, URL minting."""

    __slots__ = ("spec", "state", "env", "seq")

    def __init__(self, spec: "NodeSpec", state: "RunState", env: "RunEnvironment", seq: int):
        self.spec = spec
        self.state = state
        self.env = env
        self.seq = seq

    @property
    def name(self) -> str:
        return self.spec.name

    def has(self, key: str) -> bool:
        return key in self.spec.config

    def value(self, key: str, default: Any = None) -> Any:
        """The config value with templates rendered and coerced to the field's type."""
        compiled = self.spec.config.get(key)
        if compiled is None:
            f = self.spec.node_type.config.get(key)
            return f.default if f is not None and f.default is not None else default
        try:
            return self.spec.node_type.config[key].resolve(compiled, self.state.variables)
        except ValueInvalid as e:
            raise NodeFailed(f"{key}: {e}") from None

    def callback_url(self, kind: str) -> str:
        return self.env.callback_url(self.state.run_id, self.seq, kind)

    @property
    def call(self) -> dict | None:
        return self.state.call

    @property
    def in_call(self) -> bool:
        """A call is up and we are building the XML document it will play."""
        call = self.state.call
        return bool(call and call["up"] and self.state.doc is not None)


@dataclass(frozen=True)
class RunEnvironment:
    """Where the run lives: the public base of callback URLs and the provider's API."""

    public_url: str = "http://127.0.0.1:8080"
    api_url: str = "https://api.plivo.com"
    auth_id: str = "MAXXXXXXXXXXXXXXXXXX"

    def callback_url(self, run_id: str, seq: int, kind: str) -> str:
        return f"{self.public_url.rstrip('/')}/callbacks/{run_id}/{seq}/{kind}"

    def api(self, resource: str) -> str:
        return f"{self.api_url.rstrip('/')}/v1/Account/{self.auth_id}/{resource}/"


@dataclass(slots=True)
class NodeSpec:
    name: str
    node_type: "NodeType"
    config: dict  # compiled: templates are Template objects
    next: dict  # outcome -> node name
    error: str | None
    line: int
    col: int

    @property
    def type(self) -> str:
        return self.node_type.name



class NodeType:
    """Base class: override the class attributes and `run` (and `resume` if it waits)."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    config: ClassVar[Mapping[str, Field]] = {}
    outcomes: ClassVar[tuple[str, ...]] = ("done",)
    outputs: ClassVar[tuple[str, ...]] = ()
    call: ClassVar[CallNeed] = "none"
    # Does the node wait for the outside world (a callback)? Loops through such a node are
    # paced by people and calls; loops without one can spin.
    waits: ClassVar[bool] = False
    is_trigger: ClassVar[bool] = False
    # Does the node call arbitrary HTTP APIs (not the provider's)? Flow tests mock those.
    calls_http: ClassVar[bool] = False
    # Nodes that place or receive a call name the outcomes after which it is up; their
    # other outcomes leave no call up. None: the node does not change the call state.
    call_outcomes: ClassVar[frozenset[str] | None] = None

    def call_after(self, outcome: str, up_before: bool) -> bool:
        """Is a call up after this node takes `outcome`? (used by static validation)"""
        if self.call_outcomes is None or outcome == "error":
            return up_before
        return outcome in self.call_outcomes

    def node_outcomes(self, config: dict) -> tuple[str, ...]:
        return self.outcomes

    def possible_outcomes(self, config: dict) -> tuple[str, ...]:
        """The outcomes this configuration can actually take (a subset of node_outcomes)."""
        return self.node_outcomes(config)

    def default_outcome(self, config: dict) -> str | None:
        outs = self.node_outcomes(config)
        return outs[0] if len(outs) == 1 else None

    def node_outputs(self, config: dict) -> tuple[str, ...]:
        """Top-level output names; '*' below a name means any key (payload params, headers)."""
        return self.outputs

    def check(self, config: dict, path: tuple, report) -> None:
        """Extra static checks beyond the field types (regexes, header names...)."""

    def run(self, ctx: Context) -> Action:
        raise NotImplementedError

    def resume(self, ctx: Context, event: Response | Callback) -> Action:
        raise NodeFailed(f"{self.name} node does not wait for events")
