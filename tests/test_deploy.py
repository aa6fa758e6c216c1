"""engine/service/deploy.py in process: what a reload keeps, replaces and refuses."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_deploy_e2e import MENU
from test_server import FakeProvider

from engine.load.discover import load_folder
from engine.service.deploy import (
    Revisions,
    entry_of_revision,
    prune_revisions,
    reload_flows,
    save_revisions,
)
from engine.service.provider import ProviderConfig
from engine.service.runs import Service
from engine.service.settings import Settings
from engine.service.sqlite_store import SQLiteStore
from engine.state import RunState, Waiting, WaitReason

PARAMS_FLOW = MENU.replace("id: menu", "id: hello").replace(
    "nodes:", "params:\n  greeting: {default: Hi}\nnodes:").replace("WORD prompt", "{{ params.greeting }}")


def service_on(tmp_path, allow_invalid=False) -> Service:
    flows, _ = load_folder(tmp_path / "flows")
    settings = Settings(auth_id="MATRIGGERAPIACCOUNT1", auth_token="t", public_url="https://x.example.com",
                        provider=ProviderConfig("MAPROVIDERACCOUNT001", "p", "https://api.example.com"))
    service = Service(flows, SQLiteStore(str(tmp_path / "runs.db")), FakeProvider(), settings)
    service.flows_dir, service.params_path, service.allow_invalid = str(tmp_path / "flows"), str(tmp_path / "p.yaml"), \
        allow_invalid
    return service


def test_allow_invalid_keeps_the_running_revision_of_a_file_that_broke_and_params_rebuild(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "menu.yaml").write_text(MENU.replace("WORD", "Old"))
    (tmp_path / "flows" / "hello.yaml").write_text(PARAMS_FLOW)
    (tmp_path / "p.yaml").write_text("greeting: Hello\n")

    async def main():
        service = service_on(tmp_path, allow_invalid=True)
        try:
            menu, hello = service.flows["menu"], service.flows["hello"]
            (tmp_path / "flows" / "menu.yaml").write_text("spec: callflow/v1\nid: menu\nnodes: {}\n")
            (tmp_path / "p.yaml").write_text("greeting: Bonjour\n")
            result = await reload_flows(service)
            assert result.applied and result.changed == ["hello"] and not result.removed
            assert service.flows["menu"] is menu  # broken file: the running revision stays
            assert service.flows["hello"] is not hello and service.flows["hello"].executor.params == \
                {"greeting": "Bonjour"}
            old = RunState("r", "hello", flow_revision=hello.flow.revision)
            assert await service.flow_of(old) is not None  # new params, same revision: the current entry
            (tmp_path / "p.yaml").write_text("greeting: [not, a, scalar]\n")
            refused = await reload_flows(service)
            assert not refused.applied and "a param value is text" in refused.error
            assert service.flows["hello"].executor.params == {"greeting": "Bonjour"}
        finally:
            await service.store.close()

    asyncio.run(main())


def test_a_run_whose_revision_is_unknown_goes_on_with_the_current_flow(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "menu.yaml").write_text(MENU.replace("WORD", "Old"))

    async def main():
        service = service_on(tmp_path)
        try:
            current = service.flows["menu"]
            assert await service.flow_of(RunState("a", "menu")) is current  # stored before revisions
            assert await service.flow_of(RunState("b", "menu", flow_revision="f" * 64)) is current
            assert await service.flow_of(RunState("c", "gone", flow_revision="f" * 64)) is None
        finally:
            await service.store.close()

    asyncio.run(main())


def test_pruning_keeps_what_is_served_or_needed_and_a_refused_reload_is_kept_until_one_applies(tmp_path):
    """The sweeper's job (deploy.prune_revisions): after the keep period, the revision a
    finished run ran on goes, the one a waiting run needs and the current one stay; the
    console finds a stored old revision by its id (entry_of_revision), not a pruned one."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "menu.yaml").write_text(MENU.replace("WORD", "First"))
    now = [time.time()]

    async def main():
        service = service_on(tmp_path)
        service.clock, service.params_path = (lambda: now[0]), None
        service.settings.revision_keep_seconds = 3600.0
        try:
            await save_revisions(service.store, {fid: e.flow for fid, e in service.flows.items()})
            first = service.flows["menu"].flow.revision
            await service.store.create_run(RunState("done", "menu", status="completed", flow_revision=first))
            for word, run_id in (("Second", "waiting"), ("Third", None)):
                (tmp_path / "flows" / "menu.yaml").write_text(MENU.replace("WORD", word))
                assert (await reload_flows(service)).applied
                if run_id:
                    await service.store.create_run(RunState(run_id, "menu", status="waiting",
                                                            flow_revision=service.flows["menu"].flow.revision,
                                                            waiting=Waiting("Ask", 1, WaitReason.INPUT)))
            second, third = (await service.store.load("waiting")).state.flow_revision, \
                service.flows["menu"].flow.revision
            assert await prune_revisions(service) == 0  # all served within the hour
            service.revisions = Revisions()  # as in a process that never built them
            assert (await entry_of_revision(service, "menu", first)).flow.revision == first
            assert await entry_of_revision(service, "other", first) is None  # a revision of another flow
            now[0] += 3601
            assert await prune_revisions(service) == 1
            assert await service.store.load_revision(first) is None
            assert await service.store.load_revision(second) is not None  # a waiting run needs it
            assert await service.store.load_revision(third) is not None  # served (marked at every prune)
            service.revisions = Revisions()
            assert await entry_of_revision(service, "menu", first) is None

            (tmp_path / "flows" / "menu.yaml").write_text("spec: callflow/v1\nid: menu\nnodes: {}\n")
            refused = await reload_flows(service)
            assert not refused.applied and service.refused_reload["diagnostics"] == refused.as_dict()["diagnostics"]
            assert service.refused_reload["process"] == service.owner and service.refused_reload["at"]
            (tmp_path / "flows" / "menu.yaml").write_text(MENU.replace("WORD", "Third"))
            assert (await reload_flows(service)).applied and service.refused_reload is None
        finally:
            await service.store.close()

    asyncio.run(main())


def test_the_revision_keep_period_setting():
    from engine.service.settings import DEFAULT_REVISION_KEEP_SECONDS, settings_from_env

    assert settings_from_env("http://x", {}).revision_keep_seconds == DEFAULT_REVISION_KEEP_SECONDS == 604800
    assert settings_from_env("http://x", {"CALLFLOW_REVISION_KEEP_SECONDS": "86400"}).revision_keep_seconds == 86400
    # never below 10 minutes: far above the minute between two markings of what a process serves
    assert settings_from_env("http://x", {"CALLFLOW_REVISION_KEEP_SECONDS": "5"}).revision_keep_seconds == 600
    with pytest.raises(ValueError, match="CALLFLOW_REVISION_KEEP_SECONDS"):
        settings_from_env("http://x", {"CALLFLOW_REVISION_KEEP_SECONDS": "soon"})
