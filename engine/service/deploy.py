"""Deploys while calls are live: flow revisions and reloads (contract section 7).

A flow's revision is the SHA-256 of its file's bytes (`Flow.revision`); every run records the
revision it started on (`RunState.flow_revision`) and finishes on it. The service keeps the
source of every revision it loads in the store (`Store.save_revision`, before any run starts
on it), so whichever process handles a run's next event can rebuild the flow it started on,
after the file changed or was removed (`flow_for_run`; built once per process, then cached).

`reload_flows` re-reads FLOWS_DIR (and the parameters file) on SIGHUP and on
`POST /v1/flows/reload`: every file is checked first, and when any is invalid nothing
changes and the diagnostics are returned; else the new revisions are saved and swapped in
at once (runs in progress keep the entry they hold). A refused reload is also kept
(`service.refused_reload`: when, why, the diagnostics) until a later reload applies, for
`GET /v1/flows` and the console's banner: a SIGHUP has nobody to answer. It is this
process's memory: with several processes, each reports the last reload it refused itself.

`entry_of_revision` gives the console any stored revision of a flow (a run's page draws the
graph the run ran on); `prune_revisions` (from the sweeper) deletes the stored revisions no
process serves and no unfinished run needs, once they are older than the keep period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from engine.diagnostics import Diagnostic
from engine.flow import Flow
from engine.load.build import check_text
from engine.load.discover import load_folder
from engine.load.params_file import ParamsFileError, load_params_file, values_for
from engine.state import RunState, iso

logger = logging.getLogger("callflow.server")
MAX_CACHED_REVISIONS = 256  # older revisions rebuilt in this process (each a built flow)


@dataclass
class ReloadResult:
    """What a reload did: `applied` False when nothing changed (`diagnostics` say why)."""

    applied: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        return {"applied": self.applied, "added": self.added, "changed": self.changed, "removed": self.removed,
                "error": self.error, "diagnostics": [d.as_dict() for d in self.diagnostics]}


class Revisions:
    """This process's older revisions, by revision: rebuilt from the store on demand."""

    def __init__(self):
        self._cache: OrderedDict[str, object] = OrderedDict()

    def get(self, revision: str):
        entry = self._cache.get(revision)
        if entry is not None:
            self._cache.move_to_end(revision)
        return entry

    def put(self, revision: str, entry) -> None:
        self._cache[revision] = entry
        self._cache.move_to_end(revision)
        while len(self._cache) > MAX_CACHED_REVISIONS:
            self._cache.popitem(last=False)


async def flow_for_run(service, state: RunState):
    """The LoadedFlow `state`'s run goes on with: the current one of its flow id when the
    revisions match (or the run predates revisions), else its own revision, rebuilt from the
    store; None when neither exists."""
    current = service.flows.get(state.flow_id)
    revision = state.flow_revision
    if current is not None and (not revision or current.flow.revision == revision):
        return current
    if not revision:
        return None
    entry = await entry_of_revision(service, state.flow_id, revision)
    if entry is None:
        logger.warning("run %s: flow revision %s is not in the store (or no longer builds); going on with the "
                       "current one", state.run_id, revision[:12],
                       extra={"event": "run.revision_missing", "run_id": state.run_id, "flow": state.flow_id})
        return current
    return entry


async def entry_of_revision(service, flow_id: str, revision: str):
    """The LoadedFlow of `flow_id` at `revision`: the current one, one this process built
    before, or rebuilt from the store; None when the store has no such revision of that flow
    (never stored, or pruned) or it no longer builds."""
    current = service.flows.get(flow_id)
    if current is not None and current.flow.revision == revision:
        return current
    cached = service.revisions.get(revision)
    if cached is not None:
        return cached if cached.flow.id == flow_id else None
    source = await service.store.load_revision(revision)
    if source is None:
        return None
    flow, diagnostics = check_text(source, f"{flow_id}@{revision[:12]}")
    if flow is None:
        logger.error("flow %s revision %s no longer builds: %s", flow_id, revision[:12],
                     diagnostics[0] if diagnostics else "", extra={"event": "flow.revision_invalid", "flow": flow_id})
        return None
    entry = service.loaded(flow)
    service.revisions.put(revision, entry)  # kept under its own flow id, whatever `flow_id` asked
    # Another flow's revision (a console URL naming the wrong flow): not this flow's, nothing broken.
    return entry if flow.id == flow_id else None


async def save_revisions(store, flows: dict[str, Flow]) -> None:
    """Keep every flow's source under its revision before any run starts on it."""
    for flow in flows.values():
        await store.save_revision(flow.id, flow.revision, flow.source)


async def reload_flows(service) -> ReloadResult:
    """Re-read FLOWS_DIR and the parameters file; all or nothing (see the module docstring)."""
    async with service.reload_lock:
        folder = Path(service.flows_dir)
        flows, diagnostics = await asyncio.to_thread(load_folder, folder)
        try:
            params = await asyncio.to_thread(load_params_file, service.params_path)
        except ParamsFileError as e:
            return _refused(service, ReloadResult(False, diagnostics, error=str(e)))
        errors = [d for d in diagnostics if d.severity == "error"]
        if errors and not service.allow_invalid:
            return _refused(service, ReloadResult(False, diagnostics, error=f"{len(errors)} error(s) in the flows "
                                                                            f"under {folder}: nothing changed"))
        if errors:  # --allow-invalid: a flow whose file is now invalid keeps its running revision
            broken = {d.path for d in errors}
            for fid, entry in service.flows.items():
                if entry.flow.path in broken and fid not in flows:
                    flows[fid] = entry.flow
        await save_revisions(service.store, flows)
        result = ReloadResult(True, diagnostics)
        _swap(service, flows, params, result)
        service.refused_reload = None
        logger.info("flows reloaded: %d flow(s); added %s, changed %s, removed %s", len(flows),
                    result.added or "none", result.changed or "none", result.removed or "none",
                    extra={"event": "flows.reloaded", "count": len(flows)})
        return result


def _swap(service, flows: dict[str, Flow], params: dict, result: ReloadResult) -> None:
    service.param_file_values = params
    fresh = {}
    for fid, flow in flows.items():
        old = service.flows.get(fid)
        if old is not None and old.flow.revision == flow.revision and old.executor.params == values_for(flow, params):
            fresh[fid] = old
            continue
        fresh[fid] = service.loaded(flow)
        (result.changed if old is not None else result.added).append(fid)
    result.removed = sorted(set(service.flows) - set(fresh))
    for fid, old in service.flows.items():
        if fresh.get(fid) is not old:  # runs on it go on with it
            service.revisions.put(old.flow.revision, old)
    service.flows = fresh  # one assignment: a handler sees the old set or the new one


def _refused(service, result: ReloadResult) -> ReloadResult:
    service.refused_reload = {"at": iso(time.time()), "process": service.owner, **result.as_dict()}
    for d in result.diagnostics:
        if d.severity == "error":
            logger.warning("reload refused: %s", d, extra={"event": "flows.reload_refused"})
    logger.warning("reload refused: %s", result.error, extra={"event": "flows.reload_refused"})
    return result


async def flows_listing(service) -> list[dict]:
    """GET /v1/flows' entries: each flow's revision, when it was loaded, and how many runs
    still wait on an older revision of it."""
    try:
        counts = await service.store.unfinished_by_revision()
    except Exception:  # noqa: BLE001 - the listing goes on without the counts
        counts = {}
    listing = []
    for fid, e in sorted(service.flows.items()):
        older = sum(n for (flow_id, rev), n in counts.items() if flow_id == fid and rev and rev != e.flow.revision)
        listing.append({"id": fid, "name": e.flow.name, "valid": True, "nodes": len(e.flow.nodes),
                        "path": e.flow.path, "warnings": len(e.flow.diagnostics), "created_on": e.created_on,
                        "revision": e.flow.revision, "loaded_at": e.loaded_at, "runs_on_older_revisions": older})
    return listing


async def prune_revisions(service) -> int:
    """Delete the stored revisions that no process served for `revision_keep_seconds` and
    that no unfinished run started on (`Store.prune_revisions`); this process's current ones
    are marked served now. Returns how many went."""
    now = service.clock()
    current = sorted({entry.flow.revision for entry in service.flows.values()})
    pruned = await service.store.prune_revisions(current, now, now - service.settings.revision_keep_seconds)
    if pruned:
        logger.info("pruned %d flow revision(s) no run needs", pruned, extra={"event": "flows.revisions_pruned",
                                                                             "count": pruned})
    return pruned
