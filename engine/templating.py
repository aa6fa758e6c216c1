"""The engine's one Liquid environment.

Printing an undefined variable is an error (a flow that says "{{ Start.http.params.too }}"
must not dial an empty number), while `default` and `if` still see a missing value as
empty/false, so optional data can be handled in the template itself.
"""

from __future__ import annotations

import re

import liquid
from liquid import Environment
from liquid.exceptions import LiquidError

from engine.errors import TemplateError

_MARKERS = ("{{", "{%")


def is_template(text: str) -> bool:
    return "{" in text and any(m in text for m in _MARKERS)


# -- simple templates ------------------------------------------------------------------------------
# Most flow templates are plain text around `{{ Node.field | filter: arg }}` outputs. Parsing
# them with Liquid costs ~50 us each, which dominates validating a big flow; so `compile`
# recognises this strict subset of Liquid with one regular expression and leaves the Liquid
# parse to the first render. Everything the subset accepts, Liquid parses the same way (a
# property test checks it against Liquid's own parser and analysis); anything else (tags,
# whitespace control, comparisons, ranges, keyword arguments, escapes...) goes to Liquid now.
LITERAL_WORDS = ("true", "false", "nil", "null", "empty", "blank")
_KEYWORDS = LITERAL_WORDS + ("and", "or", "not", "contains", "in", "with", "as", "for", "if", "else")
IDENT = r"[A-Za-z_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
FILTER_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
STRING = r"'[^'\\{}\n]*'|\"[^\"\\{}\n]*\""
NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_.-])"
_NOT_A_KEYWORD = rf"(?!(?:{'|'.join(_KEYWORDS)})(?![A-Za-z0-9_-]))"
ROOT = rf"{_NOT_A_KEYWORD}{IDENT}"
# A keyword after a dot too (`A.or`: Liquid refuses it) is left to Liquid's parse.
PATH = rf"{ROOT}(?:\.{_NOT_A_KEYWORD}{IDENT}|\[(?:[0-9]+|{STRING})\])*"
LITERAL = r"(?:true|false|nil)(?![A-Za-z0-9_-])"
ARG = rf"(?:{STRING}|{NUMBER}|{LITERAL}|{PATH})"
FILTER = rf"\|[ ]*{FILTER_NAME}(?:[ ]*:[ ]*{ARG}(?:[ ]*,[ ]*{ARG})*)?"
OUTPUT = rf"\{{\{{[ ]*(?:{PATH}|{STRING}|{NUMBER})(?:[ ]*{FILTER})*[ ]*\}}\}}"
_TEXT = r"(?:[^{]|\{(?![{%]))*"
_SIMPLE = re.compile(rf"(?:{_TEXT}{OUTPUT})*{_TEXT}")


def is_simple(source: str) -> bool:
    """Is `source` in the subset of Liquid that needs no parse until it renders?"""
    return _SIMPLE.fullmatch(source) is not None


def _error(e: LiquidError) -> TemplateError:
    token = getattr(e, "token", None)
    message = getattr(e, "message", None) or str(e).splitlines()[0]
    return TemplateError(message, getattr(token, "start_index", None))


class Template:
    """A compiled template; render it with the run's variables (node name -> outputs)."""

    __slots__ = ("source", "_bound")

    def __init__(self, source: str, bound):
        self.source = source
        self._bound = bound  # None for a simple template until it first renders

    @property
    def bound(self):
        """Liquid's parsed template (parsed now if it was deferred)."""
        if self._bound is None:
            self._bound = templates.parse(self.source)
        return self._bound

    @property
    def parsed(self) -> bool:
        """Has Liquid parsed it? A simple template (`is_simple`) waits for its first render."""
        return self._bound is not None

    def render(self, variables: dict) -> str:
        # BoundTemplate.render(**variables) copies the mapping on every call, which makes a
        # render cost grow with the number of nodes that ran; hand it over as is instead.
        bound = self._bound or self.bound
        try:
            context = bound.context_class(bound, globals=bound.make_globals(variables))
            buffer = bound._get_buffer()
            bound.render_with_context(context, buffer)
            return buffer.getvalue()
        except LiquidError as e:
            raise _error(e) from None

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


class TemplateEnvironment:
    """The Liquid environment flows render with, and a cache of compiled templates."""

    def __init__(self) -> None:
        self._env = Environment(undefined=liquid.FalsyStrictUndefined)
        # Bounds on what one render may do: flows are trusted more than payloads, but a
        # template looping over a big HTTP response must not exhaust the process.
        self._env.output_stream_limit = 1024 * 1024
        self._env.loop_iteration_limit = 100_000
        self._cache: dict[str, Template] = {}

    @property
    def filter_names(self) -> frozenset[str]:
        return frozenset(self._env.filters)

    def parse(self, source: str):
        """Liquid's parse of a source (raises TemplateError)."""
        try:
            return self._env.from_string(source)
        except LiquidError as e:
            raise _error(e) from None

    def compile(self, source: str) -> Template:
        """Compile (once per distinct source) or raise TemplateError."""
        cached = self._cache.get(source)
        if cached is not None:
            return cached
        template = Template(source, None if is_simple(source) else self.parse(source))
        if len(self._cache) < 100_000:  # bound the cache: flows are finite, payloads never compile
            self._cache[source] = template
        return template

    def clear_cache(self) -> None:
        """Forget every compiled template (for benchmarks that must compile afresh)."""
        self._cache.clear()


templates = TemplateEnvironment()
