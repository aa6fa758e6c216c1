"""Flow files under files and folders, loaded together: `callflow validate` and `callflow serve`.

One loader for both, so they agree on which files are flows and on what is wrong with them
(every diagnostic of every file, plus flow ids used twice among the files loaded together).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine import codes
from engine.diagnostics import Diagnostic, sort_key
from engine.flow import Flow
from engine.load.build import check_source, read_flow_file

FLOW_SUFFIXES = (".yaml", ".yml")
_NOT_FLOWS = (".test.yaml", ".test.yml", ".scenario.yaml", ".scenario.yml")
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox"}


def flow_files(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Flow files under the paths: files as given, folders searched (test cases, scenarios,
    hidden files and folders, virtualenvs skipped), each file once, in a stable order."""
    files, problems, seen = [], [], set()
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.suffix in FLOW_SUFFIXES and f.is_file() and _is_flow(f)
                           and not _SKIP_DIRS.intersection(f.relative_to(p).parts[:-1])
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.exists():
            found = [p]
        else:
            problems.append(Diagnostic.of(codes.UNREADABLE, str(p), "no such file or folder"))
            continue
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files, problems


def _is_flow(path: Path) -> bool:
    """In folders, flow test cases and scenarios sit beside flows: skip them by name."""
    return not path.name.endswith(_NOT_FLOWS)


@dataclass(frozen=True, slots=True)
class LoadedFlows:
    """The flows under some paths, by id, and every diagnostic about them, sorted."""

    flows: dict[str, Flow]  # the flows that loaded; an id used twice belongs to its first file
    diagnostics: list[Diagnostic]
    files: int  # how many flow files were checked


def load_paths(paths: list[Path]) -> LoadedFlows:
    """Load every flow file under the paths (see `flow_files`)."""
    files, diagnostics = flow_files(paths)
    flows: dict[str, Flow] = {}
    seen_ids: dict[str, str] = {}  # flow id -> the first file that uses it
    for f in files:
        data, problems = read_flow_file(f)
        if data is None:
            diagnostics.extend(problems)
            continue
        flow, diags, doc = check_source(data, str(f))
        diagnostics.extend(diags)
        # Ids must be unique among the flows loaded together, broken or not.
        flow_id = doc.data.get("id") if isinstance(doc.data, dict) else None
        if isinstance(flow_id, str) and flow_id:
            if flow_id in seen_ids:
                line, col = doc.pos(("id",))
                diagnostics.append(Diagnostic.of(codes.DUPLICATE_FLOW_ID, str(f),
                                                 f"flow id {flow_id!r} is also used by {seen_ids[flow_id]}", line, col))
                continue
            seen_ids[flow_id] = str(f)
        if flow is not None:
            flows[flow.id] = flow
    return LoadedFlows(flows, sorted(diagnostics, key=sort_key), len(files))


def validate_paths(paths: list[Path], file_params: dict | None = None) -> tuple[list[Diagnostic], int]:
    """`callflow validate`: every diagnostic under the paths, and how many files were checked;
    with `file_params` (--params), also each declared param that gets no value."""
    loaded = load_paths(paths)
    if file_params is None:
        return loaded.diagnostics, loaded.files
    from engine.load.params_file import missing_diagnostics

    extra = [d for flow in loaded.flows.values() for d in missing_diagnostics(flow, file_params)]
    return sorted(loaded.diagnostics + extra, key=sort_key), loaded.files


def load_folder(folder: Path) -> tuple[dict[str, Flow], list[Diagnostic]]:
    """`callflow serve`: the flows under a folder by id, and every diagnostic about them."""
    if not folder.is_dir():
        return {}, [Diagnostic.of(codes.UNREADABLE, str(folder), "no such folder")]
    loaded = load_paths([folder])
    return loaded.flows, loaded.diagnostics
