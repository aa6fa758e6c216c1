"""engine/service/console.py in process: the web console's routes, auth, assets and JSON.

The console in a real browser against a real `callflow serve`: tests/test_console_browser.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import tomllib
from types import SimpleNamespace

import httpx
import pytest
from conftest import FLOWS, ROOT

from engine.graph_export import graph_model
from engine.graph_svg import to_svg
from engine.load.build import check_text, load_flow
from engine.registry import node_types
from engine.service.app import create_app
from engine.service.console import ASSETS, MEDIA_TYPES, flow_detail, trigger_fields
from engine.service.provider import ProviderConfig
from engine.service.runs import Service
from engine.service.settings import Settings
from engine.service.sqlite_store import SQLiteStore

AUTH_ID = "MACONSOLEINPROCESSAA"
AUTH_TOKEN = "console-token"
FLOW = "outbound-sip-headers"
NASTY = """\
spec: callflow/v1
id: nasty
name: '<script>alert(1)</script> & "co"'
nodes:
  Start:
    type: trigger
    payload:
      from: "+12025551234"
      note: "<img src=x onerror=alert(1)>"
      retries: 3
      to: "+12025550100"
    required: [to, customer]
    next: Done
  Done:
    type: hangup
"""


def basic(user=AUTH_ID, password=AUTH_TOKEN) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class NoProvider:
    async def perform(self, request, handing=None):  # pragma: no cover - these tests start no call
        raise AssertionError("no request expected")

    async def aclose(self):
        pass


def run(tmp_path, check, extra: dict | None = None):
    """Run `check(client)` against the app on httpx's ASGI transport (`extra`: more flows)."""

    async def main():
        nasty, diags = check_text(NASTY, "nasty.yaml")
        assert nasty is not None, diags
        flows = {FLOW: load_flow(FLOWS / f"{FLOW}.yaml"), "nasty": nasty, **(extra or {})}
        store = SQLiteStore(str(tmp_path / "runs.db"))
        settings = Settings(auth_id=AUTH_ID, auth_token=AUTH_TOKEN, public_url="https://flows.example.com",
                            provider=ProviderConfig("MAPROVIDERACCOUNT001", "t", "https://api.example.com"))
        app = create_app(Service(flows, store, NoProvider(), settings))
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client:
                return await check(client)
        finally:
            await store.close()

    return asyncio.run(main())


CONSOLE_URLS = ["/", "/console/app.js", "/console/style.css", "/console/index.html", f"/v1/flows/{FLOW}",
                f"/v1/flows/{FLOW}/", f"/v1/flows/{FLOW}/graph.svg", "/console/nope.js", "/v1/flows/nope"]


@pytest.mark.parametrize("headers", [{}, basic(password="wrong"), basic(user="MAWRONGACCOUNTXXXXXX"),
                                     {"Authorization": "Bearer x"}, {"Authorization": "Basic !!!"}])
def test_every_console_route_needs_the_api_auth(tmp_path, headers):
    async def check(client):
        for url in CONSOLE_URLS:
            r = await client.get(url, headers=headers)
            assert r.status_code == 401, url
            assert r.headers["www-authenticate"] == 'Basic realm="callflow"'  # the browser's prompt
            assert "error" in r.json()
            assert "<" not in r.text  # no console file leaks before auth

    run(tmp_path, check)


def test_index_and_assets_are_served_with_a_strict_policy(tmp_path):
    async def check(client):
        r = await client.get("/", headers=basic())
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        # everything index.html loads is one of our files, served with its type
        refs = re.findall(r'(?:src|href)="(/[^"]*)"', r.text)
        assert {"/console/app.js", "/console/style.css"} <= set(refs)
        for ref in refs:
            a = await client.get(ref, headers=basic())
            assert a.status_code == 200, ref
            assert a.headers["content-type"].split(";")[0] == MEDIA_TYPES["." + ref.rsplit(".", 1)[1]].split(";")[0]
            assert a.content == (ASSETS / ref.rsplit("/", 1)[1]).read_bytes()
            assert "content-security-policy" in a.headers
        assert "http://" not in r.text and "https://" not in r.text  # nothing from a CDN

    run(tmp_path, check)


@pytest.mark.parametrize("url", ["/console/nope.js", "/console/..%2Fconsole.py", "/console/%2e%2e%2fserver.py",
                                 "/console/../console.py", "/console/", "/console/.%2Fapp.js", "/console/app.js%00"])
def test_only_the_console_files_are_served(tmp_path, url):
    async def check(client):
        r = await client.get(url, headers=basic())
        assert r.status_code == 404
        assert "import" not in r.text

    run(tmp_path, check)


def test_flow_detail(tmp_path):
    async def check(client):
        r = await client.get(f"/v1/flows/{FLOW}", headers=basic())
        assert r.status_code == 200
        d = r.json()
        assert d["id"] == FLOW and d["valid"] is True and d["trigger"] == "Start"
        assert d["fields"] == [
            {"name": "from", "default": "+12025551234", "required": False, "editable": True},
            {"name": "to", "default": None, "required": True, "editable": True},
            {"name": "customer", "default": None, "required": True, "editable": True},
        ]
        assert d["run_url"] == f"/v1/account/{AUTH_ID}/phlo/{FLOW}/"
        assert d["graph_url"] == f"/v1/flows/{FLOW}/graph.svg?revision={d['revision']}" and d["current"] is True
        nodes = {n["name"]: n for n in d["nodes"]}
        assert list(nodes) == ["Start", "Call", "Greet", "Done"]
        assert nodes["Call"]["next"]["answered"] == "Greet" and nodes["Call"]["next"]["busy"] == "Done"
        assert nodes["Greet"]["in_call"] is True and nodes["Start"]["start"] is True
        flow = load_flow(FLOWS / f"{FLOW}.yaml")
        assert [(e["source"], e["target"], tuple(e["outcomes"]), e["error"]) for e in d["edges"]] == \
               [(e.source, e.target, e.outcomes, e.error) for e in graph_model(flow)[1]]
        assert (await client.get(f"/v1/flows/{FLOW}/", headers=basic())).json()["id"] == FLOW
        missing = await client.get("/v1/flows/nope", headers=basic())
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        # the list stays as it was
        listed = (await client.get("/v1/flows", headers=basic())).json()["flows"]
        assert [f["id"] for f in listed] == ["nasty", FLOW]

    run(tmp_path, check)


def test_flow_detail_has_each_nodes_settings_as_written_outcomes_and_place(tmp_path):
    async def check(client):
        d = (await client.get(f"/v1/flows/{FLOW}", headers=basic())).json()
        nodes = {n["name"]: n for n in d["nodes"]}
        call = nodes["Call"]
        assert call["config"] == {"from": "{{ Start.http.params.from }}", "to": "{{ Start.http.params.to }}",
                                  "sip_headers": {"customer": "{{ Start.http.params.customer }}"}}
        assert (call["line"], call["col"]) == (17, 3)
        assert call["outcomes"] == [{"outcome": "answered", "target": "Greet"}] + [
            {"outcome": o, "target": "Done"} for o in ("no_answer", "busy", "failed")] + [
            {"outcome": "machine", "target": None}]  # not routed: the path ends there
        assert nodes["Done"]["outcomes"] == [] and nodes["Start"]["config"]["required"] == ["to", "customer"]
        assert {"outcome": "call", "target": None} in nodes["Start"]["outcomes"]
        assert d["incoming"] is None  # outbound-sip-headers takes no incoming calls
        nasty = (await client.get("/v1/flows/nasty", headers=basic())).json()
        assert nasty["nodes"][0]["config"]["payload"]["note"] == "<img src=x onerror=alert(1)>"  # data, as is

    run(tmp_path, check)


def test_an_incoming_call_flow_names_its_url_and_no_sandbox_route_without_sandbox(tmp_path):
    async def check(client):
        d = (await client.get("/v1/flows/inbound-support", headers=basic())).json()
        assert d["incoming"] == {"url": "https://flows.example.com/callbacks/inbound/inbound-support",
                                 "sandbox_url": None}
        r = await client.post("/sandbox/inbound", json={"url": d["incoming"]["url"], "from": "+12025550123"},
                              headers=basic())
        assert r.status_code == 404 and "--sandbox" in r.json()["error"]

    run(tmp_path, check, extra={"inbound-support": load_flow(FLOWS / "inbound-support.yaml")})


def test_an_sms_flow_names_its_message_url_and_no_sandbox_route_without_sandbox(tmp_path):
    async def check(client):
        d = (await client.get("/v1/flows/sms-auto-reply", headers=basic())).json()
        assert d["incoming_message"] == {"url": "https://flows.example.com/callbacks/inbound-message/sms-auto-reply",
                                         "sandbox_url": None}
        assert d["incoming"] is None  # it takes no calls
        r = await client.post("/sandbox/inbound-message", json={"url": d["incoming_message"]["url"],
                                                                 "from": "+12025550123"}, headers=basic())
        assert r.status_code == 404 and "--sandbox" in r.json()["error"]

    run(tmp_path, check, extra={"sms-auto-reply": load_flow(FLOWS / "sms-auto-reply.yaml")})


def test_graph_svg_is_graph_export_output(tmp_path):
    async def check(client):
        r = await client.get(f"/v1/flows/{FLOW}/graph.svg", headers=basic())
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("image/svg+xml")
        assert r.text == to_svg(load_flow(FLOWS / f"{FLOW}.yaml"))
        again = await client.get(f"/v1/flows/{FLOW}/graph.svg", headers=basic())  # cached: same bytes
        assert again.content == r.content
        assert (await client.get("/v1/flows/nope/graph.svg", headers=basic())).status_code == 404
        nasty = await client.get("/v1/flows/nasty/graph.svg", headers=basic())
        assert "<script>" not in nasty.text and "&lt;script&gt;" in nasty.text

    run(tmp_path, check)


def test_a_stored_revision_is_served_by_its_id_after_its_flow_was_removed(tmp_path):
    """?revision= on the flow and graph endpoints: the current one, an older one from the store
    (even once the flow is no longer served), 404 for one not stored, 400 for what is not one."""
    async def check(client):
        service = client._transport.app.state.service
        entry = service.flows[FLOW]
        revision = entry.flow.revision
        await service.store.save_revision(FLOW, revision, entry.flow.source)
        r = await client.get(f"/v1/flows/{FLOW}", params={"revision": revision}, headers=basic())
        assert r.status_code == 200 and r.json()["current"] is True and r.json()["revision"] == revision
        service.flows = {fid: e for fid, e in service.flows.items() if fid != FLOW}  # a reload removed it
        service.revisions = type(service.revisions)()  # and this process never built it
        assert (await client.get(f"/v1/flows/{FLOW}", headers=basic())).status_code == 404
        r = await client.get(f"/v1/flows/{FLOW}", params={"revision": revision}, headers=basic())
        assert r.status_code == 200 and r.json()["current"] is False
        assert [n["name"] for n in r.json()["nodes"]] == [n["name"] for n in flow_detail(entry.flow, AUTH_ID, "")["nodes"]]
        svg = await client.get(r.json()["graph_url"], headers=basic())
        assert svg.status_code == 200 and svg.text == to_svg(entry.flow)
        for bad, status in (("f" * 64, 404), ("nope", 400), (revision.upper(), 400)):
            r = await client.get(f"/v1/flows/{FLOW}/graph.svg", params={"revision": bad}, headers=basic())
            assert r.status_code == status, (bad, r.text)
        r = await client.get("/v1/flows/nasty", params={"revision": revision}, headers=basic())
        assert r.status_code == 404  # a revision of another flow

    run(tmp_path, check)


def test_a_revision_asked_for_under_another_flow_is_a_404_that_logs_no_error(tmp_path, caplog):
    """A console user naming one flow's revision under another flow's page gets a 404; the
    service does not log it as a stored revision that no longer builds (an operator's alarm),
    and does not build it again at each request."""
    async def check(client):
        service = client._transport.app.state.service
        entry = service.flows[FLOW]
        await service.store.save_revision(FLOW, entry.flow.revision, entry.flow.source)
        service.revisions = type(service.revisions)()  # this process never built it
        with caplog.at_level(logging.WARNING, logger="callflow.server"):
            for _ in range(2):
                r = await client.get("/v1/flows/nasty", params={"revision": entry.flow.revision}, headers=basic())
                assert r.status_code == 404
        assert [rec.message for rec in caplog.records if rec.levelno >= logging.WARNING] == []
        assert service.revisions.get(entry.flow.revision).flow.id == FLOW  # built once, kept

    run(tmp_path, check)


def test_trigger_fields_types_and_structured_defaults():
    flow, _ = check_text(NASTY, "nasty.yaml")
    assert trigger_fields(flow) == [
        {"name": "from", "default": "+12025551234", "required": False, "editable": True},
        {"name": "note", "default": "<img src=x onerror=alert(1)>", "required": False, "editable": True},
        {"name": "retries", "default": 3, "required": False, "editable": True},
        {"name": "to", "default": "+12025550100", "required": True, "editable": True},
        {"name": "customer", "default": None, "required": True, "editable": True},
    ]


def test_a_structured_default_is_not_editable():
    """The validator allows text, numbers and booleans only; if it ever allows more, the form
    shows such a value without sending it (the run API takes scalars only)."""
    spec = SimpleNamespace(config={"payload": {"headers": {"a": "1"}}, "required": ["headers"]},
                           node_type=node_types()["trigger"])
    assert trigger_fields(SimpleNamespace(trigger_spec=spec)) == [
        {"name": "headers", "default": {"a": "1"}, "required": True, "editable": False}]


def test_console_script_never_parses_untrusted_strings_as_html():
    """The scripts build the page with createElement/textContent; keep it that way."""
    scripts = sorted(ASSETS.glob("*.js"))
    assert {p.name for p in scripts} == {"app.js", "campaigns.js", "graph_view.js", "panels.js"}
    for path in scripts:
        source = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                     "createContextualFragment", "srcdoc"):
            assert sink not in source, (path.name, sink)
    assert 'parseFromString(svgText, "image/svg+xml")' in (ASSETS / "app.js").read_text()  # XML, not HTML


def test_console_files_are_packaged():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "engine.service.console_assets" in config["packages"]
    assert "console_assets/*" in config["package-data"]["engine.service"]
    files = [p for p in ASSETS.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"index.html", "app.js", "style.css"}
    for p in files:
        assert p.suffix in MEDIA_TYPES, f"{p.name}: the console would not serve it"


def test_readme_shows_the_console_and_a_current_mermaid_drawing():
    from engine.graph_export import to_mermaid

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```mermaid\n(.*?)```", readme, re.S)
    assert block, "README.md has no mermaid block"
    assert block.group(1) == to_mermaid(load_flow(FLOWS / f"{FLOW}.yaml"))  # regenerate with `callflow graph`
    assert "](docs/console.png)" in readme and (ROOT / "docs" / "console.png").is_file()
