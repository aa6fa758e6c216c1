"""The catalogue of diagnostic codes: one `Code` per kind of problem validation reports.

Every reporter (`Document.diag`, the builder, the flow checks, node types' `check`, flow
tests, scenarios, `callflow serve`'s folder loading) takes one of these, never a bare
string, so a code cannot be misspelt or left undocumented: docs/diagnostics.md explains
each one under its anchor, and a test keeps the two in step. The code's `name` is what
output shows (`path:line:col: error unknown-node ...`) and is stable for scripts.

Pure data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]

DOCS = "docs/diagnostics.md"


@dataclass(frozen=True, slots=True)
class Code:
    """One kind of diagnostic: its stable name, its severity, and a one-line summary."""

    name: str  # "unknown-node": what diagnostics show
    severity: Severity
    summary: str

    @property
    def anchor(self) -> str:
        """Its section's anchor in docs/diagnostics.md (the heading is the name in backquotes)."""
        return self.name

    @property
    def doc(self) -> str:
        """Where it is explained, e.g. "docs/diagnostics.md#unknown-node"."""
        return f"{DOCS}#{self.anchor}"


CATALOGUE: dict[str, Code] = {}  # name -> Code, in the order of docs/diagnostics.md


def _define(name: str, severity: Severity, summary: str) -> Code:
    assert name not in CATALOGUE, name
    code = CATALOGUE[name] = Code(name, severity, summary)
    return code


# -- YAML and files ----------------------------------------------------------------------------
YAML_SYNTAX = _define("yaml-syntax", "error", "the file is not valid YAML, or not UTF-8 text")
DUPLICATE_KEY = _define("duplicate-key", "error", "the same key twice in one mapping")
YAML_ANCHOR = _define("yaml-anchor", "error", "an anchor (&name): anchors and aliases are not allowed")
YAML_ALIAS = _define("yaml-alias", "error", "an alias (*name): anchors and aliases are not allowed")
YAML_TAG = _define("yaml-tag", "error", "an explicit YAML tag other than the standard ones")
YAML_COMPLEX_KEY = _define("yaml-complex-key", "error", "a mapping key that is not a plain string")
YAML_MULTIPLE_DOCUMENTS = _define("yaml-multiple-documents", "error", "a second YAML document in one flow file")
FILE_TOO_LARGE = _define("file-too-large", "error", "a flow file over 1 MiB, refused unread")
UNREADABLE = _define("unreadable", "error", "the path does not exist or cannot be read")
EMPTY_FLOW = _define("empty-flow", "error", "the file holds only comments or whitespace")
TOO_DEEP = _define("too-deep", "error", "values nested too deeply")

# -- top level ---------------------------------------------------------------------------------
SPEC_VERSION = _define("spec-version", "error", "`spec` names a format version this engine does not read")
INVALID_ID = _define("invalid-id", "error", "a flow id that is not url-safe")
DUPLICATE_FLOW_ID = _define("duplicate-flow-id", "error", "two flow files loaded together use the same id")
NO_NODES = _define("no-nodes", "error", "`nodes` is empty")
TRIGGER_COUNT = _define("trigger-count", "error", "not exactly one trigger node")

# -- nodes and their config --------------------------------------------------------------------
UNKNOWN_KEY = _define("unknown-key", "error", "a key the file or the node type does not have")
MISSING_KEY = _define("missing-key", "error", "a required key is missing")
UNKNOWN_NODE_TYPE = _define("unknown-node-type", "error", "`type` names no node type")
INVALID_NAME = _define("invalid-name", "error", "a node, condition, variable or header name breaks its rule")
WRONG_TYPE = _define("wrong-type", "error", "a value of the wrong kind")
UNQUOTED_NUMBER = _define("unquoted-number", "error", "a phone number YAML reads as a number")
INVALID_PHONE = _define("invalid-phone", "error", "a phone number that is neither E.164 nor a SIP URI")
FROM_IN_TO = _define("from-in-to", "error", "call_out would call its own caller id")
INVALID_URL = _define("invalid-url", "error", "a URL that is not http:// or https://")
INVALID_CHOICE = _define("invalid-choice", "error", "a value that is not one of the allowed choices")
OUT_OF_RANGE = _define("out-of-range", "error", "a number outside its bounds")
VALUE_TOO_LONG = _define("value-too-long", "error", "text longer than its limit")
TOO_FEW_ITEMS = _define("too-few-items", "error", "an empty list that needs items")
CONFLICTING_KEYS = _define("conflicting-keys", "error", "two keys that exclude each other")
INVALID_REGEX = _define("invalid-regex", "error", "a branch regular expression that does not compile")
NOT_A_NUMBER = _define("not-a-number", "error", "a numeric comparison whose operand is not a number")
DUPLICATE_OUTCOME = _define("duplicate-outcome", "error", "two branch conditions with the same name")
UNKNOWN_TIMEZONE = _define("unknown-timezone", "error", "a time zone that is not an IANA name")
INVALID_HOURS = _define("invalid-hours", "error", "business hours with a bad day, range of hours or date")
OVERLAPPING_HOURS = _define("overlapping-hours", "error", "two ranges of business hours that overlap on a day")
RETRY_ON = _define("retry-on", "error", "`retry.on` names something a retry cannot follow")

# -- SIP headers -------------------------------------------------------------------------------
SIP_HEADER_PREFIX = _define("sip-header-prefix", "error", "a SIP header name written with the X-PH- prefix")
SIP_HEADER_VALUE = _define("sip-header-value", "error", "a SIP header value with characters other than A-Z a-z 0-9")
SIP_HEADER_DUPLICATE = _define("sip-header-duplicate", "error", "two SIP header names that differ only in case")

# -- the graph ---------------------------------------------------------------------------------
UNKNOWN_NODE = _define("unknown-node", "error", "`next` or `error` names no node")
UNKNOWN_OUTCOME = _define("unknown-outcome", "error", "`next` maps an outcome the node type does not have")
IMPOSSIBLE_OUTCOME = _define("impossible-outcome", "warning", "`next` routes an outcome the node can never take")
AMBIGUOUS_NEXT = _define("ambiguous-next", "error", "a bare `next` on a node with several outcomes")
NEXT_TO_TRIGGER = _define("next-to-trigger", "error", "an edge back to the trigger")
UNREACHABLE_NODE = _define("unreachable-node", "warning", "no path from the trigger reaches the node")
NEEDS_CALL = _define("needs-call", "error", "an in-call node reachable with no call up")
CALL_ALREADY_UP = _define("call-already-up", "error", "a node that places a call reachable while one is up")
LOOP_WITHOUT_WAIT = _define("loop-without-wait", "warning", "a loop with no node that waits for a call, a caller or a timer")

# -- templates ---------------------------------------------------------------------------------
TEMPLATE_SYNTAX = _define("template-syntax", "error", "a Liquid syntax error")
TEMPLATE_INCLUDE = _define("template-include", "error", "include or render: flows have no template files")
UNKNOWN_FILTER = _define("unknown-filter", "error", "a Liquid filter that does not exist")
UNKNOWN_VARIABLE = _define("unknown-variable", "error", "a template variable that names no node")
UNKNOWN_OUTPUT = _define("unknown-output", "error", "a field the node type never outputs")
NEVER_SET = _define("never-set", "error", "a read of a node that cannot have run before the reader")
MAYBE_UNSET = _define("maybe-unset", "warning", "a read of a node that runs before the reader on some paths only")
UNDECLARED_PARAM = _define("undeclared-param", "error", "a template reads `params.name` the flow does not declare")
MISSING_PARAM = _define("missing-param", "error",
                        "with --params: a declared param with no default and no value given")
UNDECLARED_PAYLOAD_KEY = _define("undeclared-payload-key", "warning",
                                 "a payload key neither in the trigger's payload nor in its required keys")
