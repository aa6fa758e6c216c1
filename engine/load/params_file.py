"""Parameters files (`--params FILE`): the values one environment gives flows' params.

    values = load_params_file("production.yaml")      # raises ParamsFileError (one line)
    param_values(flow.params, flow.id, values, os.environ)

A file is a YAML mapping: name -> value (shared by every flow that declares the name) and/or
flow id -> {name -> value} (for that flow only; it wins over the shared values). Values are
text, numbers or true/false.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from engine import codes
from engine.diagnostics import Diagnostic
from engine.flow import Flow
from engine.params import env_name, missing_params, param_values

_SCALARS = (str, int, float, bool)


class ParamsFileError(ValueError):
    """A parameters file that cannot be used: the message is one line naming the file."""


def load_params_file(path: str | Path | None) -> dict:
    """The file's mapping ({} for no file); raises ParamsFileError."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ParamsFileError(f"{path}: cannot read the parameters file: {e.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ParamsFileError(f"{path}{where}: the parameters file is not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsFileError(f"{path}: a parameters file is a mapping: name -> value, or flow id -> mapping")
    for key, value in data.items():
        if isinstance(value, dict):
            bad = [k for k, v in value.items() if not isinstance(v, _SCALARS)]
            if bad:
                raise ParamsFileError(f"{path}: {key}.{bad[0]}: a param value is text, a number or true/false")
        elif not isinstance(value, _SCALARS):
            raise ParamsFileError(f"{path}: {key}: a param value is text, a number or true/false")
    return data


def values_for(flow: Flow, file_values: Mapping, environ: Mapping[str, str] | None = None) -> dict:
    """The param values `flow` runs with here: defaults < the file < CALLFLOW_PARAM_<NAME>."""
    return param_values(flow.params, flow.id, file_values, os.environ if environ is None else environ)


def missing_diagnostics(flow: Flow, file_values: Mapping, environ: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """`validate --params`: a declared param with no default and no value given."""
    values = values_for(flow, file_values, environ)
    return [Diagnostic.of(codes.MISSING_PARAM, flow.path,
                          f"param {p.name!r} has no default and no value: give it in the parameters file "
                          f"(under {flow.id!r} or at the top) or as ${env_name(p.name)}", p.line, p.col)
            for p in missing_params(flow.params, values)]
