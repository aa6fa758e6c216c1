"""Typed config fields that node types declare.

One declaration serves three purposes, so they cannot drift apart: checking a flow file
(with positions), resolving values at run time (rendering templates, coercing types), and
generating the JSON Schema for editors.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from engine.errors import TemplateError, ValueInvalid
from engine.templating import Template, is_template, templates

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
SIP_URI = re.compile(r"^sips?:[A-Za-z0-9._~%!$&'()*+,;=:-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def phone_problem(value: str) -> str | None:
    """None when value is an E.164 number or a SIP URI, else what is wrong."""
    if E164.match(value) or SIP_URI.match(value):
        return None
    if re.fullmatch(r"[0-9]{7,15}", value):
        return f"{value!r} is not E.164: write it as '+{value}'"
    return f"{value!r} is neither an E.164 number (+12025551234) nor a SIP URI (sip:user@host)"


class Reporter:
    """Where compile() sends problems; the loader binds it to a document and a node."""

    def __init__(self, error: Callable[..., None], template_error: Callable[..., None]):
        self.error = error  # error(path, code, message, key=False, severity="error")
        self.template_error = template_error  # template_error(path, index, code, message)


_INVALID = object()


@dataclass(frozen=True)
class Field:
    description: str = ""
    required: bool = False
    default: Any = None
    templated: bool = True  # strings may hold Liquid

    type_name = "value"

    # -- static side -------------------------------------------------------------------
    def compile(self, value: Any, path: tuple, report: Reporter) -> Any:
        if isinstance(value, str) and self.templated and is_template(value):
            try:
                return templates.compile(value)
            except TemplateError as e:
                report.template_error(path, e.index, "template-syntax", f"Liquid syntax error: {e.message}")
                return _INVALID
        return self.compile_literal(value, path, report)

    def compile_literal(self, value: Any, path: tuple, report: Reporter) -> Any:
        return value

    def _wrong_type(self, value: Any, path: tuple, report: Reporter) -> Any:
        shown = type(value).__name__ if value is not None else "nothing"
        report.error(path, "wrong-type", f"expected {self.type_name}, got {shown}")
        return _INVALID

    # -- run-time side -------------------------------------------------------------------
    def resolve(self, compiled: Any, variables: Mapping) -> Any:
        if type(compiled) is Template:
            try:
                return self.coerce(compiled.render(variables))
            except TemplateError as e:
                raise ValueInvalid(f"template {compiled.source!r}: {e.message}") from None
        return compiled

    def coerce(self, rendered: str) -> Any:
        return rendered

    # -- schema side --------------------------------------------------------------------------
    def schema(self) -> dict:
        return {}

    def _described(self, schema: dict) -> dict:
        if self.description:
            schema["description"] = self.description
        if self.default is not None:
            schema["default"] = self.default
        return schema

    def json_schema(self) -> dict:
        return self._described(self.schema())


_TEMPLATE_SCHEMA = {"type": "string", "pattern": r"\{[{%]"}


@dataclass(frozen=True)
class Text(Field):
    max_length: int | None = None
    type_name = "text"

    def compile_literal(self, value, path, report):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return self._wrong_type(value, path, report)
        if not isinstance(value, str):
            report.error(path, "wrong-type", f"expected text, got a number ({value!r}); quote it")
            return _INVALID
        if self.max_length and len(value) > self.max_length:
            report.error(path, "value-too-long", f"at most {self.max_length} characters, got {len(value)}")
        return value

    def coerce(self, rendered):
        if self.max_length and len(rendered) > self.max_length:
            raise ValueInvalid(f"at most {self.max_length} characters, got {len(rendered)}")
        return rendered

    def schema(self):
        s = {"type": "string"}
        if self.max_length:
            s["maxLength"] = self.max_length
        return s


def literal_prefix(source: str) -> str:
    """The text of a template before its first tag or output: fixed whatever is rendered."""
    cut = [i for i in (source.find("{{"), source.find("{%")) if i >= 0]
    return source[:min(cut)] if cut else source


@dataclass(frozen=True)
class Url(Text):
    type_name = "URL"

    def compile(self, value, path, report):
        compiled = super().compile(value, path, report)
        if isinstance(compiled, Template):
            # "htp://{{ host }}/x" can never render to an http(s) URL: check the fixed start.
            prefix = literal_prefix(value).lower()
            if prefix and not re.match(r"^https?://", prefix) and not "https://".startswith(prefix) \
                    and not "http://".startswith(prefix):
                report.error(path, "invalid-url",
                             f"{value!r} does not start with http:// or https://, whatever the template renders")
        return compiled

    def compile_literal(self, value, path, report):
        value = super().compile_literal(value, path, report)
        if isinstance(value, str) and not re.match(r"^https?://[^\s/?#]+", value):
            report.error(path, "invalid-url", f"{value!r} is not an http(s) URL")
        return value

    def coerce(self, rendered):
        if not re.match(r"^https?://[^\s/?#]+[^\s]*$", rendered):
            raise ValueInvalid(f"{rendered!r} is not an http(s) URL")
        return rendered

    def schema(self):
        return {"anyOf": [{"type": "string", "pattern": "^https?://"}, _TEMPLATE_SCHEMA]}


@dataclass(frozen=True)
class Phone(Field):
    """An E.164 number or SIP URI; YAML reads an unquoted +1202... as an int, which we catch."""

    type_name = "phone number"

    def compile_literal(self, value, path, report):
        if isinstance(value, int) and not isinstance(value, bool):
            report.error(path, "unquoted-number",
                         f"{value} was read by YAML as a number: quote it, e.g. \"+{value}\"")
            return _INVALID
        if not isinstance(value, str):
            return self._wrong_type(value, path, report)
        problem = phone_problem(value)
        if problem:
            report.error(path, "invalid-phone", problem)
        return value

    def coerce(self, rendered):
        rendered = rendered.strip()
        problem = phone_problem(rendered)
        if problem:
            raise ValueInvalid(problem)
        return rendered

    def schema(self):
        return {"type": "string", "anyOf": [{"pattern": E164.pattern}, {"pattern": "^sips?:"},
                                             {"pattern": r"\{[{%]"}]}


@dataclass(frozen=True)
class Number(Field):
    minimum: float | None = None
    maximum: float | None = None
    type_name = "number"
    json_type = "number"
    literal_types = (int, float)

    def _parse(self, text: str):
        return float(text)

    def _range(self, value) -> str | None:
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum}, got {value}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum}, got {value}"
        return None

    def compile_literal(self, value, path, report):
        if isinstance(value, bool) or not isinstance(value, self.literal_types):
            return self._wrong_type(value, path, report)
        problem = self._range(value)
        if problem:
            report.error(path, "out-of-range", problem)
        return value

    def coerce(self, rendered):
        try:
            value = self._parse(rendered.strip())
        except ValueError:
            raise ValueInvalid(f"expected {'an' if self.type_name[0] in 'aeiou' else 'a'} "
                               f"{self.type_name}, got {rendered!r}") from None
        problem = self._range(value)
        if problem:
            raise ValueInvalid(problem)
        return value

    def schema(self):
        s: dict = {"type": self.json_type}
        if self.minimum is not None:
            s["minimum"] = self.minimum
        if self.maximum is not None:
            s["maximum"] = self.maximum
        return {"anyOf": [s, _TEMPLATE_SCHEMA]}


@dataclass(frozen=True)
class Integer(Number):
    minimum: int | None = None
    maximum: int | None = None
    type_name = "integer"
    json_type = "integer"
    literal_types = (int,)

    def _parse(self, text: str):
        return int(text)


@dataclass(frozen=True)
class Boolean(Field):
    type_name = "true or false"

    def compile_literal(self, value, path, report):
        if not isinstance(value, bool):
            return self._wrong_type(value, path, report)
        return value

    def coerce(self, rendered):
        text = rendered.strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0", ""):
            return False
        raise ValueInvalid(f"expected true or false, got {rendered!r}")

    def schema(self):
        return {"anyOf": [{"type": "boolean"}, _TEMPLATE_SCHEMA]}


def _shown(choice: Any) -> str:
    return str(choice).lower() if isinstance(choice, bool) else str(choice)


@dataclass(frozen=True)
class Choice(Field):
    choices: tuple = ()
    type_name = "choice"

    def compile_literal(self, value, path, report):
        # 1 == True in Python: compare types too, so `machine_detection: 1` is not `true`.
        if not any(value == c and type(value) is type(c) for c in self.choices):
            allowed = ", ".join(_shown(c) for c in self.choices)
            hint = did_you_mean(str(value), [str(c) for c in self.choices])
            report.error(path, "invalid-choice", f"{value!r} is not one of: {allowed}{hint}")
            return _INVALID
        return value

    def coerce(self, rendered):
        for c in self.choices:
            if str(c) == rendered.strip():
                return c
        raise ValueInvalid(f"{rendered!r} is not one of: {', '.join(str(c) for c in self.choices)}")

    def schema(self):
        return {"anyOf": [{"enum": list(self.choices)}, _TEMPLATE_SCHEMA]}


@dataclass(frozen=True)
class Data(Field):
    """Plain data, never rendered (payload values)."""

    templated: bool = False
    type_name = "mapping of values"

    def compile_literal(self, value, path, report):
        if not isinstance(value, dict):
            return self._wrong_type(value, path, report)
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                report.error(path + (k,), "wrong-type", "payload values must be text, numbers or booleans")
        return value

    def schema(self):
        return {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}


@dataclass(frozen=True)
class ListOf(Field):
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
            report.error(path, "too-few-items", f"needs at least {self.min_items} item(s)")
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
                report.error(path + (k,), "invalid-name", f"{k!r}: {self.key_hint or 'invalid name'}", key=True)
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
            report.error(path + (key,), "unknown-key", f"unknown key {key!r}{hint}", key=True)
            continue
        compiled = f.compile(raw, path + (key,), report)
        if compiled is not _INVALID:
            out[key] = compiled
    for key, f in fields.items():
        if f.required and key not in value:
            report.error(path, "missing-key", f"missing required key {key!r}", key=True)
    return out


def fields_schema(fields: Mapping[str, Field]) -> dict:
    return {
        "type": "object",
        "properties": {k: f.json_schema() for k, f in fields.items()},
        "required": [k for k, f in fields.items() if f.required],
        "additionalProperties": False,
    }
