"""branch: route on a value; the first matching condition names the outcome."""

import re
from functools import lru_cache

from engine import codes
from engine.errors import NodeFailed
from engine.fields import ListOf, Record
from engine.node import Context, Next, NodeType
from engine.registry import register
from engine.scalar_fields import Choice, Text

WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
OPS = ("equals", "not_equals", "contains", "starts_with", "ends_with", "greater_than", "less_than", "matches")


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise NodeFailed(f"{what} {text!r} is not a number") from None


def matches(op: str, value: str, operand: str) -> bool:
    if op == "equals":
        return value == operand
    if op == "not_equals":
        return value != operand
    if op == "contains":
        return operand in value
    if op == "starts_with":
        return value.startswith(operand)
    if op == "ends_with":
        return value.endswith(operand)
    if op == "greater_than":
        return _number(value, "value") > _number(operand, "operand")
    if op == "less_than":
        return _number(value, "value") < _number(operand, "operand")
    try:
        return _regex(operand).search(value) is not None
    except re.error as e:
        raise NodeFailed(f"regex {operand!r}: {e}") from None


@register
class Branch(NodeType):
    name = "branch"
    summary = "Route on a value: one outcome per condition, plus no_match."
    fields = {
        "value": Text(required=True, description="The value to test (usually a template)."),
        "conditions": ListOf(required=True, min_items=1, item=Record(fields={
            "name": Text(required=True, templated=False, description="The outcome this condition takes."),
            "op": Choice(required=True, choices=OPS, templated=False),
            "value": Text(required=True, description="The operand."),
        }), description="Tested in order; the first that holds names the outcome."),
    }
    outputs = ("matched",)

    def node_outcomes(self, config):
        names = tuple(c["name"] for c in config.get("conditions") or ()
                      if isinstance(c, dict) and isinstance(c.get("name"), str))
        return names + ("no_match",)

    def default_outcome(self, config):
        return None

    def check(self, config, path, report):
        seen = set()
        for i, cond in enumerate(config.get("conditions") or ()):
            if not isinstance(cond, dict):
                continue  # already reported (wrong-type)
            name = cond.get("name")
            cpath = path + ("conditions", i)
            if isinstance(name, str):
                if not WORD.match(name) or name == "no_match":
                    report.error(cpath + ("name",), codes.INVALID_NAME,
                                 f"condition name {name!r} must be a word (letters, digits, '_'), not no_match")
                if name in seen:
                    report.error(cpath + ("name",), codes.DUPLICATE_OUTCOME, f"condition name {name!r} is used twice")
                seen.add(name)
            operand = cond.get("value")
            if cond.get("op") == "matches" and isinstance(operand, str):
                try:
                    re.compile(operand)
                except re.error as e:
                    report.error(cpath + ("value",), codes.INVALID_REGEX, f"regex {operand!r} does not compile: {e}")
            if cond.get("op") in ("greater_than", "less_than") and isinstance(operand, str):
                try:
                    float(operand)
                except ValueError:
                    report.error(cpath + ("value",), codes.NOT_A_NUMBER,
                                 f"{cond['op']} compares numbers; {operand!r} is not one")

    def run(self, ctx: Context):
        value = ctx.value("value")
        for cond in ctx.value("conditions"):
            if matches(cond["op"], value, cond["value"]):
                return Next(cond["name"], {"matched": cond["name"]})
        return Next("no_match", {"matched": None})
