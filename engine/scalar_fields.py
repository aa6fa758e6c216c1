"""The scalar config fields: text, URLs, phone numbers, numbers, booleans and choices
(the `Field` contract and the container fields are in `engine.fields`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine import codes
from engine.errors import ValueInvalid
from engine.fields import TEMPLATE_SCHEMA, Compiled, Field, did_you_mean
from engine.templating import Template

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
SIP_URI = re.compile(r"^sips?:[A-Za-z0-9._~%!$&'()*+,;=:-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def phone_problem(value: str) -> str | None:
    """None when value is an E.164 number or a SIP URI, else what is wrong."""
    if E164.match(value) or SIP_URI.match(value):
        return None
    if re.fullmatch(r"[0-9]{7,15}", value):
        return f"{value!r} is not E.164: write it as '+{value}'"
    return f"{value!r} is neither an E.164 number (+12025551234) nor a SIP URI (sip:user@host)"


@dataclass(frozen=True)
class Text(Field):
    """Text (a YAML number is refused: quote it), at most `max_length` characters."""

    max_length: int | None = None
    type_name = "text"

    def compile_literal(self, value, path, report):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return self._wrong_type(value, path, report)
        if not isinstance(value, str):
            report.error(path, codes.WRONG_TYPE, f"expected text, got a number ({value!r}); quote it")
            return Compiled.INVALID
        if self.max_length and len(value) > self.max_length:
            report.error(path, codes.VALUE_TOO_LONG, f"at most {self.max_length} characters, got {len(value)}")
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
    """An http(s) URL; a template's fixed start is checked too."""

    type_name = "URL"

    def compile(self, value, path, report):
        compiled = super().compile(value, path, report)
        if isinstance(compiled, Template):
            # "htp://{{ host }}/x" can never render to an http(s) URL: check the fixed start.
            prefix = literal_prefix(value).lower()
            if prefix and not re.match(r"^https?://", prefix) and not "https://".startswith(prefix) \
                    and not "http://".startswith(prefix):
                report.error(path, codes.INVALID_URL,
                             f"{value!r} does not start with http:// or https://, whatever the template renders")
        return compiled

    def compile_literal(self, value, path, report):
        value = super().compile_literal(value, path, report)
        if isinstance(value, str) and not re.match(r"^https?://[^\s/?#]+", value):
            report.error(path, codes.INVALID_URL, f"{value!r} is not an http(s) URL")
        return value

    def coerce(self, rendered):
        if not re.match(r"^https?://[^\s/?#]+[^\s]*$", rendered):
            raise ValueInvalid(f"{rendered!r} is not an http(s) URL")
        return rendered

    def schema(self):
        return {"anyOf": [{"type": "string", "pattern": "^https?://"}, TEMPLATE_SCHEMA]}


@dataclass(frozen=True)
class Phone(Field):
    """An E.164 number or SIP URI; YAML reads an unquoted +1202... as an int, which we catch."""

    type_name = "phone number"

    def compile_literal(self, value, path, report):
        if isinstance(value, int) and not isinstance(value, bool):
            report.error(path, codes.UNQUOTED_NUMBER,
                         f"{value} was read by YAML as a number: quote it, e.g. \"+{value}\"")
            return Compiled.INVALID
        if not isinstance(value, str):
            return self._wrong_type(value, path, report)
        problem = phone_problem(value)
        if problem:
            report.error(path, codes.INVALID_PHONE, problem)
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
    """A number between `minimum` and `maximum` (both optional)."""

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
            report.error(path, codes.OUT_OF_RANGE, problem)
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
        return {"anyOf": [s, TEMPLATE_SCHEMA]}


@dataclass(frozen=True)
class Integer(Number):
    """A whole number between `minimum` and `maximum` (both optional)."""

    minimum: int | None = None
    maximum: int | None = None
    type_name = "integer"
    json_type = "integer"
    literal_types = (int,)

    def _parse(self, text: str):
        return int(text)


@dataclass(frozen=True)
class Boolean(Field):
    """true or false (a template may render true/yes/1 or false/no/0/empty)."""

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
        return {"anyOf": [{"type": "boolean"}, TEMPLATE_SCHEMA]}


def _shown(choice: Any) -> str:
    return str(choice).lower() if isinstance(choice, bool) else str(choice)


@dataclass(frozen=True)
class Choice(Field):
    """One of `choices` (compared with their types: 1 is not true)."""

    choices: tuple = ()
    type_name = "choice"

    def compile_literal(self, value, path, report):
        # 1 == True in Python: compare types too, so `machine_detection: 1` is not `true`.
        if not any(value == c and type(value) is type(c) for c in self.choices):
            allowed = ", ".join(_shown(c) for c in self.choices)
            hint = did_you_mean(str(value), [str(c) for c in self.choices])
            report.error(path, codes.INVALID_CHOICE, f"{value!r} is not one of: {allowed}{hint}")
            return Compiled.INVALID
        return value

    def coerce(self, rendered):
        for c in self.choices:
            if str(c) == rendered.strip():
                return c
        raise ValueInvalid(f"{rendered!r} is not one of: {', '.join(str(c) for c in self.choices)}")

    def schema(self):
        return {"anyOf": [{"enum": list(self.choices)}, TEMPLATE_SCHEMA]}
