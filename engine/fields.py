"""Typed config fields that node types declare: the `Field` contract, the container
fields (lists, mappings, records, any JSON, plain data) and checking a node's config
against its declarations. The scalar fields are in `engine.scalar_fields`.

One declaration serves three purposes, so they cannot drift apart: checking a flow file
(with positions), resolving values at run time (rendering templates, coercing types), and
generating the JSON Schema for editors:

    fields = {"text": Text(required=True), "loop": Integer(minimum=0)}
    config = compile_fields(fields, {"text": "Hi {{ Start.name }}"}, ("nodes", "Hello"), report)
    fields["text"].resolve(config["text"], variables)  # -> "Hi Ada"
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping

from engine import codes
from engine.errors import TemplateError, ValueInvalid
from engine.events import payload_problems
from engine.templating import Template, is_template, templates


def did_you_mean(word: str, choices) -> str:
    """The hint "; did you mean 'x'?" naming the choice closest to a misspelt word, or "" if none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Reporter:
    """Where compile() sends problems; the loader binds it to a document and a node."""

    def __init__(self, error: Callable[..., None], template_error: Callable[..., None]):
        self.error = error  # error(path, code: Code, message, key=False); the code's severity
        self.template_error = template_error  # template_error(path, index, code: Code, message)


class Compiled(Enum):
    """What `Field.compile` returns for a value it reported as wrong: the key is left out."""

    INVALID = "invalid"


@dataclass(frozen=True)
class Field:
    """A config key's declaration; the base of every field type (any value, as written).

    Subclasses override `compile_literal` (check a value from the file, report problems),
    `coerce` (a rendered template's text to the field's type) and `schema`."""

    description: str = ""
    required: bool = False
    default: Any = None
    templated: bool = True  # strings may hold Liquid

    type_name = "value"

    # -- static side -------------------------------------------------------------------
    def compile(self, value: Any, path: tuple, report: Reporter) -> Any:
        """The value to store in NodeSpec.config (a Template for templates), or
        Compiled.INVALID once its problem is reported at `path`."""
        if isinstance(value, str) and self.templated and is_template(value):
            try:
                return templates.compile(value)
            except TemplateError as e:
                report.template_error(path, e.index, codes.TEMPLATE_SYNTAX, f"Liquid syntax error: {e.message}")
                return Compiled.INVALID
        return self.compile_literal(value, path, report)

    def compile_literal(self, value: Any, path: tuple, report: Reporter) -> Any:
        """Check a value that is not a template; return it (or Compiled.INVALID)."""
        return value

    def _wrong_type(self, value: Any, path: tuple, report: Reporter) -> Any:
        shown = type(value).__name__ if value is not None else "nothing"
        report.error(path, codes.WRONG_TYPE, f"expected {self.type_name}, got {shown}")
        return Compiled.INVALID

    # -- run-time side -------------------------------------------------------------------
    def resolve(self, compiled: Any, variables: Mapping) -> Any:
        """The run-time value: templates rendered with the run's variables and coerced
        (raises ValueInvalid when the rendered text does not fit the field)."""
        if type(compiled) is Template:
            try:
                return self.coerce(compiled.render(variables))
            except TemplateError as e:
                raise ValueInvalid(f"template {compiled.source!r}: {e.message}") from None
        return compiled

    def coerce(self, rendered: str) -> Any:
        """A rendered template's text as the field's type (raise ValueInvalid if it is not)."""
        return rendered

    # -- schema side --------------------------------------------------------------------------
    def schema(self) -> dict:
        """The JSON Schema of the value, without description and default."""
        return {}

    def _described(self, schema: dict) -> dict:
        if self.description:
            schema["description"] = self.description
        if self.default is not None:
            schema["default"] = self.default
        return schema

    def json_schema(self) -> dict:
        """The JSON Schema of the key, with its description and default."""
        return self._described(self.schema())


TEMPLATE_SCHEMA = {"type": "string", "pattern": r"\{[{%]"}  # a string holding Liquid


@dataclass(frozen=True)
class Data(Field):
    """Plain data, never rendered (payload values)."""

    templated: bool = False
    type_name = "mapping of values"

    def compile_literal(self, value, path, report):
        if not isinstance(value, dict):
            return self._wrong_type(value, path, report)
        for k, problem in payload_problems(value):
            report.error(path + (k,), codes.WRONG_TYPE, problem)
        return value

    def schema(self):
        return {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}


@dataclass(frozen=True)
class ListOf(Field):
    """A list of `item`s (`one_or_many`: a single item is accepted too)."""

    item: Field = field(default_factory=Field)
    one_or_many: bool = False  # a single item is accepted too
    min_items: int = 0
    type_name = "list"

    def compile(self, value, path, report):
        if self.one_or_many:  # a single item may be a template
            return super().compile(value, path, report)
        return self.compile_literal(value, path, report)  # a template never renders to a list

    def compile_literal(self, value, path, report):
        if not isinstance(value, list):
            if self.one_or_many:
                return self.item.compile(value, path, report)
            return self._wrong_type(value, path, report)
        if len(value) < self.min_items:
            report.error(path, codes.TOO_FEW_ITEMS, f"needs at least {self.min_items} item(s)")
        return [self.item.compile(v, path + (i,), report) for i, v in enumerate(value)]

    def resolve(self, compiled, variables):
        if isinstance(compiled, list):
            return [self.item.resolve(v, variables) for v in compiled]
        return self.item.resolve(compiled, variables)

    def schema(self):
        arr = {"type": "array", "items": self.item.json_schema()}
        if self.min_items:
            arr["minItems"] = self.min_items
        if self.one_or_many:
            return {"anyOf": [self.item.json_schema(), arr]}
        return arr


@dataclass(frozen=True)
class MapOf(Field):
    """name -> value; a template string renders to text, never to a mapping: a wrong type."""

    value: Field = field(default_factory=Field)
    key_pattern: str | None = None
    key_hint: str = ""
    type_name = "mapping"

    def compile(self, value, path, report):
        return self.compile_literal(value, path, report)

    def compile_literal(self, value, path, report):
        if not isinstance(value, dict):
            return self._wrong_type(value, path, report)
        out = {}
        for k, v in value.items():
            if self.key_pattern and not re.fullmatch(self.key_pattern, k):
                report.error(path + (k,), codes.INVALID_NAME, f"{k!r}: {self.key_hint or 'invalid name'}", key=True)
            out[k] = self.value.compile(v, path + (k,), report)
        return out

    def resolve(self, compiled, variables):
        return {k: self.value.resolve(v, variables) for k, v in compiled.items()}

    def schema(self):
        s: dict = {"type": "object", "additionalProperties": self.value.json_schema()}
        if self.key_pattern:
            s["propertyNames"] = {"pattern": f"^(?:{self.key_pattern})$"}
        return s


@dataclass(frozen=True)
class Record(Field):
    """A mapping of declared fields; like MapOf, never a template string."""

    fields: Mapping[str, Field] = field(default_factory=dict)
    type_name = "mapping"

    def compile(self, value, path, report):
        return self.compile_literal(value, path, report)

    def compile_literal(self, value, path, report):
        if not isinstance(value, dict):
            return self._wrong_type(value, path, report)
        return compile_fields(self.fields, value, path, report)

    def resolve(self, compiled, variables):
        return {k: self.fields[k].resolve(v, variables) for k, v in compiled.items()}

    def schema(self):
        return fields_schema(self.fields)


@dataclass(frozen=True)
class AnyJson(Field):
    """Any YAML value (request bodies); strings inside may be templates."""

    type_name = "value"

    def compile_literal(self, value, path, report):
        if isinstance(value, dict):
            return {k: self.compile(v, path + (k,), report) for k, v in value.items()}
        if isinstance(value, list):
            return [self.compile(v, path + (i,), report) for i, v in enumerate(value)]
        return value

    def resolve(self, compiled, variables):
        if isinstance(compiled, dict):
            return {k: self.resolve(v, variables) for k, v in compiled.items()}
        if isinstance(compiled, list):
            return [self.resolve(v, variables) for v in compiled]
        return super().resolve(compiled, variables)


def compile_fields(fields: Mapping[str, Field], value: dict, path: tuple, report: Reporter,
                   ignore: frozenset = frozenset()) -> dict:
    """Check a mapping against declared fields: unknown keys, missing keys, each value."""
    out = {}
    for key, raw in value.items():
        if key in ignore:
            continue
        f = fields.get(key)
        if f is None:
            hint = did_you_mean(key, list(fields) + list(ignore))
            report.error(path + (key,), codes.UNKNOWN_KEY, f"unknown key {key!r}{hint}", key=True)
            continue
        compiled = f.compile(raw, path + (key,), report)
        if compiled is not Compiled.INVALID:
            out[key] = compiled
    for key, f in fields.items():
        if f.required and key not in value:
            report.error(path, codes.MISSING_KEY, f"missing required key {key!r}", key=True)
    return out


def fields_schema(fields: Mapping[str, Field]) -> dict:
    """The JSON Schema of a mapping of declared fields (a node's config, a Record)."""
    return {
        "type": "object",
        "properties": {k: f.json_schema() for k, f in fields.items()},
        "required": [k for k, f in fields.items() if f.required],
        "additionalProperties": False,
    }
