"""The contract between the engine and node types.

A node type is a small class in its own module under `nodes/`: it declares its config
fields, its outcomes and outputs, whether it needs a call to be up, and what it does when
run (and, for nodes that wait, when resumed). It returns an Action; the executor does the
rest. The engine knows node types only through the registry, and the entry node (the
trigger) only through the entry-node methods of `NodeType` (`start`, `missing_payload`...).

    @register
    class Beep(NodeType):
        name = "beep"
        fields = {"seconds": Integer(minimum=1, default=1)}
        needs_call = "required"

        def run(self, ctx: Context) -> Action:
            return AddVerb(element("Wait", length=ctx.value("seconds")))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

from engine.errors import NodeFailed, ValueInvalid
from engine.events import Callback, Request, Response, StartEvent, TimerFired
from engine.fields import Field
from engine.params import RenderScope
from engine.plivoxml import Element

if TYPE_CHECKING:
    from engine.state import Call, RunState

CallNeed = Literal["none", "required", "optional"]  # NodeType.needs_call


# -- actions a node returns ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Next:
    """Done: take `outcome` (None ends the path)."""

    outcome: str | None
    outputs: dict | None = None
    error: str | None = None  # a note for the step record (e.g. why `failed`)


@dataclass(frozen=True, slots=True)
class AddVerb:
    """Append an in-call verb (Speak, Play, Wait...) to the XML document being built, then
    take `outcome`: the call plays it once the document is served."""

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


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Outside a call: wait `seconds` on a durable timer (the executor sets it due at its
    clock + seconds); the shell fires it with `TimerFired` and the node's `resume` decides.
    `outputs`, when given, are kept meanwhile (what `resume` reads: a call_out's last attempt)."""

    seconds: float
    outputs: dict | None = None


@dataclass(frozen=True, slots=True)
class Repeat:
    """Run this node again, as a new step (a menu asking again after no input or a wrong
    key): this step ends with the outcome `again` and `note` says why; `outputs` are what
    the next attempt reads (ctx.state.variables[ctx.name])."""

    outputs: dict
    note: str


Action = Next | AddVerb | Listen | EndCall | Send | AwaitCall | SetTimer | Repeat


class Context:
    """What a node sees while it runs: its resolved config, the run, URL minting.

    The executor makes one per run/resume: `ctx.value("text")` is the config value
    rendered and coerced, `ctx.callback_url("digits")` a URL whose callback resumes this
    step, `ctx.call` the call the run controls, `ctx.now` the time on the run's clock."""

    __slots__ = ("spec", "state", "env", "seq", "params", "now")

    def __init__(self, spec: "NodeSpec", state: "RunState", env: "RunEnvironment", seq: int,
                 params: Mapping | None = None, now: float | None = None):
        self.spec = spec
        self.state = state
        self.env = env
        self.seq = seq
        self.params = params  # the flow's param values ({{ params.name }}); never stored in the state
        # The executor's clock when the node runs or resumes (the simulated one in tests).
        self.now = now if now is not None else state.steps[seq].started_at if seq < len(state.steps) else 0.0

    @property
    def name(self) -> str:
        """The node's name in the flow."""
        return self.spec.name

    def has(self, key: str) -> bool:
        """Does the flow file set `key` for this node?"""
        return key in self.spec.config

    def value(self, key: str, default: Any = None) -> Any:
        """The config value with templates rendered and coerced to the field's type."""
        compiled = self.spec.config.get(key)
        if compiled is None:
            f = self.spec.node_type.fields.get(key)
            return f.default if f is not None and f.default is not None else default
        try:
            variables = self.state.variables
            if self.params:
                variables = RenderScope(variables, self.params)
            return self.spec.node_type.fields[key].resolve(compiled, variables)
        except ValueInvalid as e:
            raise NodeFailed(f"{key}: {e}") from None

    def callback_url(self, kind: str) -> str:
        """The URL of a provider callback (a CallbackKind) that comes back to this step."""
        return self.env.callback_url(self.state.run_id, self.seq, kind)

    @property
    def call(self) -> "Call | None":
        """The call the run controls, if any (up or not)."""
        return self.state.call

    @property
    def in_call(self) -> bool:
        """A call is up and we are building the XML document it will play."""
        call = self.state.call
        return bool(call and call.up and self.state.pending_xml is not None)


@dataclass(frozen=True)
class RunEnvironment:
    """Where the run lives: the public base of callback URLs and the provider's API.

        RunEnvironment(public_url="https://calls.example.com", auth_id="MA...")"""

    public_url: str = "http://127.0.0.1:8080"
    api_url: str = "https://api.plivo.com"
    auth_id: str = "MAXXXXXXXXXXXXXXXXXX"

    def callback_url(self, run_id: str, seq: int, kind: str) -> str:
        """`{public_url}/callbacks/{run_id}/{seq}/{kind}`: where the provider calls back."""
        return f"{self.public_url.rstrip('/')}/callbacks/{run_id}/{seq}/{kind}"

    def api(self, resource: str) -> str:
        """The provider API URL of `resource` ("Call", "Message") for this account."""
        return f"{self.api_url.rstrip('/')}/v1/Account/{self.auth_id}/{resource}/"


@dataclass(slots=True)
class NodeSpec:
    """One node of a built flow: its type, compiled config values and where it leads.
    Built by `engine.load`; read by the executor and the analysis."""

    name: str
    node_type: "NodeType"
    config: dict  # compiled: templates are Template objects
    next: dict  # outcome -> node name
    error: str | None
    line: int
    col: int

    @property
    def type(self) -> str:
        """The node type's name ("speak")."""
        return self.node_type.name


class NodeType:
    """Base class of node types: override the class attributes and `run` (and `resume` if
    it waits); the entry node type overrides the entry-node methods at the end instead.

    `@register` makes the one instance the registry hands out; methods that take `config`
    get a node's compiled values (NodeSpec.config) and must not keep state."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    fields: ClassVar[Mapping[str, Field]] = {}  # config key -> its declaration
    outcomes: ClassVar[tuple[str, ...]] = ("done",)
    outputs: ClassVar[tuple[str, ...]] = ()
    # Must a call be up when the node runs ("required": it adds to the call's document)?
    needs_call: ClassVar[CallNeed] = "none"
    # Does the node wait for the outside world (a callback)? Loops through such a node are
    # paced by people and calls; loops without one can spin.
    waits: ClassVar[bool] = False
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
        """The outcomes a node of this type with this (compiled) config may take."""
        return self.outcomes

    def possible_outcomes(self, config: dict) -> tuple[str, ...]:
        """The outcomes this configuration can actually take (a subset of node_outcomes)."""
        return self.node_outcomes(config)

    def default_outcome(self, config: dict) -> str | None:
        """The outcome `next: Node` (a bare name) means; None: next must be a mapping."""
        outs = self.node_outcomes(config)
        return outs[0] if len(outs) == 1 else None

    def node_outputs(self, config: dict) -> tuple[str, ...]:
        """Top-level output names; '*' below a name means any key (payload params, headers)."""
        return self.outputs

    def check(self, config: dict, path: tuple, report) -> None:
        """Extra static checks beyond the field types (regexes, header names...)."""

    def check_during_call(self, config: dict, path: tuple, report) -> None:
        """Extra static checks for a node that validation finds reachable with a call up
        (a call-optional node whose limits differ during a call)."""

    def waits_with(self, call_up: bool) -> bool:
        """Does the node wait for the outside world when reached with (or without) a call up?
        (`waits`, unless the node's mode depends on the call: a timer outside a call.)"""
        return self.waits

    def run(self, ctx: Context) -> Action:
        """Run the node: return what the executor does next (raise NodeFailed on failure)."""
        raise NotImplementedError

    def side_callback(self, ctx: Context, event: Callback) -> str:
        """A side callback (CONFIRM, DIAL_RECORD) while the node waits on its document: the XML
        to answer it with; the node may note what it says in its outputs. The run waits on."""
        return "<Response></Response>"

    def resume(self, ctx: Context, event: Response | Callback | TimerFired) -> Action:
        """The node waited (Send, AwaitCall, Listen, SetTimer) and `event` came: what next."""
        raise NodeFailed(f"{self.name} node does not wait for events")

    # -- entry nodes: where runs start ----------------------------------------------------------
    # A flow has exactly one node whose type has is_trigger. It never runs: the executor asks
    # it how a run starts, and the outer layers ask it what a run request must hold.
    is_trigger: ClassVar[bool] = False
    # outcome -> what starts a run that takes it, for messages ("a run request"). A run that
    # starts with outcome X finds the entry node's outputs under X ({{ Start.X... }}).
    started_by: ClassVar[Mapping[str, str]] = {}

    def start_outcome(self, event_type: type[StartEvent]) -> str:
        """The outcome a run started by an event of this type takes (Trigger, InboundCall)."""
        raise NotImplementedError(f"{self.name} nodes do not start runs")

    def start(self, config: dict, event: StartEvent) -> Next:
        """The first step of a run `event` starts: its outcome and the node's outputs."""
        raise NotImplementedError(f"{self.name} nodes do not start runs")

    def missing_payload(self, config: dict, payload: dict) -> list[str]:
        """The keys a run request must supply and `payload` lacks (null counts as absent)."""
        return []

    def payload_keys(self, config: dict) -> set[str]:
        """Every payload key the node declares (a default or a required key)."""
        return set()

    def payload_key(self, segments: tuple) -> str | None:
        """The payload key an output reference reads (("Start", "http", "params", "to") ->
        "to"), else None."""
        return None

    def payload_fields(self, config: dict) -> list[dict]:
        """The run form: one {"name", "default", "required", "editable"} per payload key."""
        return []
