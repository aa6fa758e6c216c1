"""The console through deploys, in a real browser (headless Chromium, the fixtures of
tests/test_console_browser.py) against a real `callflow serve --sandbox` of its own: a
refused reload's diagnostics on the flows page until a reload applies; a run's page draws
the revision the run ran on (and says so), and the current one, said so, once its revision
was pruned; the runs page searched by caller or callee number.

With CALLFLOW_DOCS_SCREENSHOT=1 the pages are also written to docs/console-reload-refused.png,
docs/console-search.png and docs/console-old-revision.png."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from test_console_browser import (  # noqa: F401  (the module's fixtures, shared)
    AUTH_ID,
    DEADLINE,
    auth_header,
    browser,
    css,
    docs_shot,
    no_console_errors,
    open_console,
    pytestmark,
    run_status,
    shot,
    start_serve,
    wait_for,
)

FLOW_V1 = """\
spec: callflow/v1
id: deploy-check
name: Deploy check
nodes:
  Start:
    type: trigger
    payload:
      from: "+12025551234"
    required: [to]
    next: Call
  Call:
    type: call_out
    from: "{{ Start.http.params.from }}"
    to: "{{ Start.http.params.to }}"
    next:
      answered: Greet
      busy: Done
      no_answer: Done
      failed: Done
      machine: Done
  Greet:
    type: speak
    text: "Hello from the first revision."
    next: Done
  Done:
    type: hangup
"""
# Greet renamed Welcome, and a node added after it.
FLOW_V2 = FLOW_V1.replace("answered: Greet", "answered: Welcome").replace(
    """  Greet:
    type: speak
    text: "Hello from the first revision."
    next: Done""", """  Welcome:
    type: speak
    text: "Welcome to the second revision."
    next: Thanks
  Thanks:
    type: speak
    text: "Thanks for listening."
    next: Done""")
BROKEN = FLOW_V2.replace("    next: Thanks\n", "    next: Nowhere\n", 1)


class Deploy:
    """The serve of this module: its folder, its API, and a restart."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.flow_file = workdir / "flows" / "deploy-check.yaml"
        self.flow_file.parent.mkdir()
        self.flow_file.write_text(FLOW_V1)
        self.process = start_serve(workdir)
        self.api = httpx.Client(base_url=self.process.url, headers={"Authorization": auth_header()}, timeout=10)

    @property
    def url(self) -> str:
        return self.process.url

    def restart(self) -> None:
        self.process.stop()
        self.process = start_serve(self.workdir)
        self.api.base_url = self.process.url

    def completed_run(self, to: str) -> dict:
        r = self.api.post(f"/v1/account/{AUTH_ID}/phlo/deploy-check/", json={"to": to})
        assert r.status_code == 201, r.text
        run_id = r.json()["api_id"]
        return wait_for(lambda: (rec := self.api.get(f"/v1/runs/{run_id}").json())["status"] == "completed" and rec,
                        what="the run to complete")

    def close(self) -> None:
        self.api.close()
        self.process.stop()


@pytest.fixture(scope="module")
def deploy(tmp_path_factory):
    served = Deploy(tmp_path_factory.mktemp("console-deploy"))
    yield served
    served.close()


def graph_nodes(driver) -> set[str]:
    return set(driver.execute_script(
        "return Array.from(document.querySelectorAll('svg.flow-graph g.node[data-name]'), g => g.dataset.name)"))


def test_a_refused_reload_shows_on_the_flows_page_until_a_reload_applies(browser, deploy):  # noqa: F811
    d = browser
    open_console(d, deploy, "#/flows")
    wait_for(lambda: css(d, 'table.flows tr[data-flow="deploy-check"]'), what="the flows list")
    assert not css(d, ".reload-refused")
    deploy.flow_file.write_text(BROKEN)
    r = deploy.api.post("/v1/flows/reload")
    assert r.status_code == 422, r.text
    [diagnostic] = [x for x in r.json()["diagnostics"] if x["severity"] == "error"]
    listed = deploy.api.get("/v1/flows").json()
    assert listed["refused_reload"]["diagnostics"] == r.json()["diagnostics"]
    assert listed["refused_reload"]["at"] and listed["refused_reload"]["process"]
    # the page polls: the banner comes without a reload of the page, with the file's line:col
    banner = wait_for(lambda: css(d, ".reload-refused"), what="the refused reload's banner")[0]
    where = f"{diagnostic['path']}:{diagnostic['line']}:{diagnostic['col']}"
    assert "nothing changed" in banner.text and where in banner.text and diagnostic["code"] in banner.text
    assert "Nowhere" in banner.text  # the message names the missing target
    row = css(d, 'tr[data-flow="deploy-check"]')[0].text
    assert "valid" in row  # the running revision keeps serving
    docs_shot(d, "console-reload-refused")
    shot(d, "deploy-01-reload-refused")
    deploy.flow_file.write_text(FLOW_V1)
    assert deploy.api.post("/v1/flows/reload").status_code == 200
    wait_for(lambda: not css(d, ".reload-refused"), what="the banner to go once a reload applied")
    assert deploy.api.get("/v1/flows").json()["refused_reload"] is None
    no_console_errors(d)


def test_a_run_page_draws_the_revision_the_run_ran_on(browser, deploy):  # noqa: F811
    d = browser
    deploy.flow_file.write_text(FLOW_V1)
    assert deploy.api.post("/v1/flows/reload").status_code == 200
    old = deploy.completed_run("+12025550111")
    assert old["path"] == ["Start", "Call", "Greet", "Done"]
    deploy.flow_file.write_text(FLOW_V2)
    r = deploy.api.post("/v1/flows/reload")
    assert r.status_code == 200 and r.json()["changed"] == ["deploy-check"], r.text
    new = deploy.completed_run("+12025550122")
    assert new["path"] == ["Start", "Call", "Welcome", "Thanks", "Done"]
    assert old["flow_revision"] != new["flow_revision"]

    open_console(d, deploy, f"#/runs/{old['run_id']}")
    wait_for(lambda: run_status(d) == "completed" and graph_nodes(d), what="the old run's page")
    assert graph_nodes(d) == {"Start", "Call", "Greet", "Done"}  # its own revision, not the current one
    on_path = d.execute_script("return Array.from(document.querySelectorAll('g.node.on-path'), g => g.dataset.name)")
    assert set(on_path) == {"Start", "Call", "Greet", "Done"}
    note = css(d, '.revision-note[data-note="old"]')[0].text
    assert old["flow_revision"][:12] in note and "changed since" in note
    docs_shot(d, "console-old-revision")
    shot(d, "deploy-02-old-revision")

    open_console(d, deploy, f"#/runs/{new['run_id']}")
    wait_for(lambda: run_status(d) == "completed" and "Thanks" in graph_nodes(d), what="the new run's page")
    assert graph_nodes(d) == {"Start", "Call", "Welcome", "Thanks", "Done"}
    assert not css(d, ".revision-note")
    no_console_errors(d)

    # The old revision pruned (as the sweeper does once no process served it for the keep
    # period: here by hand, then a restart so that no process holds it built): the page still
    # renders, with the current graph and a note saying which revision that is.
    deploy.process.stop()
    with sqlite3.connect(deploy.workdir / "runs.db") as db:
        assert db.execute("DELETE FROM flow_revisions WHERE revision = ?", (old["flow_revision"],)).rowcount == 1
    deploy.restart()
    assert deploy.api.get("/v1/flows/deploy-check", params={"revision": old["flow_revision"]}).status_code == 404
    open_console(d, deploy, f"#/runs/{old['run_id']}")
    note = wait_for(lambda: css(d, '.revision-note[data-note="pruned"]'), what="the pruned note")[0].text
    assert old["flow_revision"][:12] in note and new["flow_revision"][:12] in note
    assert graph_nodes(d) == {"Start", "Call", "Welcome", "Thanks", "Done"}
    assert [r.text.split()[1] for r in css(d, "table.steps tbody tr")] == ["Start", "Call", "Greet", "Done"]
    d.get_log("browser")  # the 404 of the pruned revision was expected
    shot(d, "deploy-03-pruned-revision")


def test_runs_are_searched_by_caller_or_callee_number(browser, deploy):  # noqa: F811
    d = browser
    first = deploy.completed_run("+12025550177")
    second = deploy.completed_run("+12025550188")
    open_console(d, deploy, "#/runs")
    wait_for(lambda: css(d, f'tr[data-run="{second["run_id"]}"]'), what="the runs list")
    box = css(d, "#filter-number")[0]
    box.send_keys("1 202 555 0177\n")  # as a user types it: no +, spaces
    wait_for(lambda: "number=" in d.current_url and not css(d, f'tr[data-run="{second["run_id"]}"]'),
             what="the search to apply")
    rows = wait_for(lambda: css(d, "table.runs tbody tr[data-run]"), what="the matching runs")
    assert [r.get_attribute("data-run") for r in rows] == [first["run_id"]]
    assert css(d, "#filter-number")[0].get_attribute("value") == "1 202 555 0177"
    docs_shot(d, "console-search")
    shot(d, "deploy-04-search")
    # the caller id matches too: every run of the flow calls from +12025551234
    box = css(d, "#filter-number")[0]
    box.clear()
    box.send_keys("+12025551234\n")
    wait_for(lambda: {first["run_id"], second["run_id"]} <= {r.get_attribute("data-run")
                                                               for r in css(d, "table.runs tbody tr[data-run]")},
             what="the caller's runs")
    box = css(d, "#filter-number")[0]
    box.clear()
    box.send_keys("+19995550000\n")
    empty = wait_for(lambda: css(d, ".runs-box .notice.empty:not([hidden])"), what="no match")[0]
    assert "+19995550000" in empty.text and not css(d, "table.runs tbody tr[data-run]")
    d.refresh()  # the search lives in the URL
    wait_for(lambda: css(d, "#filter-number") and css(d, "#filter-number")[0].get_attribute("value") == "+19995550000",
             what="the search after a reload", timeout=DEADLINE)
    no_console_errors(d)
