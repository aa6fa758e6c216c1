"""The engine's one Liquid environment.

Printing an undefined variable is an error (a flow that says "{{ Start.http.params.too }}"
must not dial an empty number), while `default` and `if` still see a missing value as
empty/false, so optional data can be handled in the template itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import liquid
from liquid import Environment
from liquid.exceptions import LiquidError

_MARKERS = ("{{", "{%")


def is_template(text: str) -> bool:
    return "{" in text and any(m in text for m in _MARKERS)


class TemplateError(Exception):
    """A template that does not parse or does not render; `index` is its offset in the source."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.message = message
        self.index = index


def _error(e: LiquidError) -> TemplateError:
    token = getattr(e, "token", None)
    message = getattr(e, "message", None) or str(e).splitlines()[0]
    return TemplateError(message, getattr(token, "start_index", None))


@dataclass(frozen=True, slots=True)
class VariableRef:
    segments: tuple  # ("Start", "http", "params", "to")
    index: int  # offset in the template source


class Template:
    """A compiled template; render it with the run's variables (node name -> outputs)."""

    __slots__ = ("source", "_bound")

    def __init__(self, source: str, bound):
        self.source = source
        self._bound = bound

    def render(self, variables: dict) -> str:
        # BoundTemplate.render(**variables) copies the mapping on every call, which makes a
        # render cost grow with the number of nodes that ran; hand it over as is instead.
        bound = self._bound
        try:
            context = bound.context_class(bound, globals=bound.make_globals(variables))
            buffer = bound._get_buffer()
            bound.render_with_context(context, buffer)
            return buffer.getvalue()
        except LiquidError as e:
            raise _error(e) from None

    def variables(self) -> list[VariableRef]:
        analysis = self._bound.analyze()
        refs = []
        for name, found in analysis.globals.items():
            for v in found:
                refs.append(VariableRef(tuple(str(s) if not isinstance(s, (str, int)) else s for s in v.segments),
                                        v.span.index))
        return sorted(refs, key=lambda r: r.index)

    def filters(self) -> list[tuple[str, int]]:
        analysis = self._bound.analyze()
        return sorted(((name, span.index) for name, spans in analysis.filters.items() for span in spans),
                      key=lambda x: x[1])

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


class TemplateEnvironment:
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

    def compile(self, source: str) -> Template:
        """Compile (once per distinct source) or raise TemplateError."""
        cached = self._cache.get(source)
        if cached is not None:
            return cached
        try:
            bound = self._env.from_string(source)
        except LiquidError as e:
            raise _error(e) from None
        template = Template(source, bound)
        if len(self._cache) < 100_000:  # bound the cache: flows are finite, payloads never compile
            self._cache[source] = template
        return template


templates = TemplateEnvironment()
