"""Flow parameters and secrets: what a flow declares (`params:`), the values a deployment
gives them, and the redaction that keeps secret values out of everything a run stores.

    declared = flow.params                                    # name -> Param
    values = param_values(declared, flow.id, file_values, os.environ)
    executor = Executor(flow, env, params=values)            # templates read {{ params.name }}

Values come from a parameters file (name -> value, or flow id -> {name -> value}) and from
`CALLFLOW_PARAM_<NAME>` variables, which win. A secret's value renders into the effects
(an http_request header carries it) but every text the executor writes into the run state
passes `Redactor.redact` first, so run records, traces, logs and snapshots show "***".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_PREFIX = "CALLFLOW_PARAM_"
MASK = "***"


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter: `default` None means a deployment must give a value."""

    name: str
    default: Any = None
    secret: bool = False
    description: str = ""
    line: int = 0
    col: int = 0


def env_name(name: str) -> str:
    """The environment variable that sets param `name` (`base_url` -> CALLFLOW_PARAM_BASE_URL)."""
    return ENV_PREFIX + name.upper()


def file_values_for(flow_id: str, file_values: Mapping) -> dict:
    """The values a parameters file gives one flow: its top-level scalars (shared by every
    flow), then its section under the flow's id (a mapping), which wins."""
    shared = {k: v for k, v in file_values.items() if not isinstance(v, Mapping)}
    section = file_values.get(flow_id)
    if isinstance(section, Mapping):
        shared.update(section)
    return shared


def param_values(declared: Mapping[str, Param], flow_id: str, file_values: Mapping | None = None,
                 environ: Mapping[str, str] | None = None) -> dict:
    """name -> value for every declared param that has one (default < file < environment);
    a param with none is left out (`missing_params` names them)."""
    given = file_values_for(flow_id, file_values or {})
    values = {}
    for name, param in declared.items():
        value = param.default
        if name in given:
            value = given[name]
        env_value = (environ or {}).get(env_name(name))
        if env_value is not None:
            value = env_value
        if value is not None:
            values[name] = value
    return values


def missing_params(declared: Mapping[str, Param], values: Mapping) -> list[Param]:
    """Declared params with no default and no value given."""
    return [p for name, p in declared.items() if name not in values]


class Redactor:
    """Replaces every secret value inside strings (nested in lists and dicts) with "***"."""

    __slots__ = ("secrets",)

    def __init__(self, secrets=()):
        # Longest first: a secret that contains another is masked whole.
        self.secrets = tuple(sorted({str(s) for s in secrets if s is not None and str(s)}, key=len, reverse=True))

    @classmethod
    def of(cls, declared: Mapping[str, Param], values: Mapping) -> "Redactor":
        return cls(values[n] for n, p in declared.items() if p.secret and n in values)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def redact(self, value: Any) -> Any:
        """`value` with each secret masked (a new object where anything changed)."""
        if not self.secrets or value is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.redact(k) if isinstance(k, str) else k: self.redact(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(self.redact(v) for v in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # an event or effect shown
            return dataclasses.replace(value, **{f.name: self.redact(getattr(value, f.name))
                                                 for f in dataclasses.fields(value) if f.init})
        return value


NO_SECRETS = Redactor()


class RenderScope(Mapping):
    """What templates render with: the run's variables (node name -> outputs) and `params`,
    without copying either (the variables grow with every node that ran)."""

    __slots__ = ("variables", "params")

    def __init__(self, variables: Mapping, params: Mapping):
        self.variables = variables
        self.params = params

    def __getitem__(self, key):
        if key == "params":
            return self.params
        return self.variables[key]

    def __contains__(self, key) -> bool:
        return key == "params" or key in self.variables

    def __iter__(self):
        yield "params"
        yield from self.variables

    def __len__(self) -> int:
        return len(self.variables) + 1
