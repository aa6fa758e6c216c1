"""Deploys while calls are live, on real `callflow serve` processes: each run finishes on the
flow revision it started on through reloads (API and SIGHUP), removals, renames, restarts;
an invalid reload changes nothing; a secret param reaches the request and no output."""

from __future__ import annotations

import hashlib
import re
import signal

import httpx
import pytest
from processes import SERVE_READY, CallflowProcess, clean_env, wait_for
from test_params import SECRET, Capture, api  # noqa: F401 - the fixture

from engine.service.signature import sign_v3_headers

PUBLIC = "https://flows.example.com"
AUTH = ("MATRIGGERAPIACCOUNT1", "trigger-token")
PLIVO = ("MAPROVIDERACCOUNT001", "provider-token")
ENV = dict(CALLFLOW_AUTH_ID=AUTH[0], CALLFLOW_AUTH_TOKEN=AUTH[1], PLIVO_AUTH_ID=PLIVO[0], PLIVO_AUTH_TOKEN=PLIVO[1],
           CALLFLOW_PUBLIC_URL=PUBLIC, CALLFLOW_HTTP_ALLOW_PRIVATE="1")
MENU = """\
spec: callflow/v1
id: menu
nodes:
  Start:
    type: trigger
    next: {call: Ask}
  Ask:
    type: get_input
    prompt: "WORD prompt"
    next: {input: Reply, no_input: Reply}
  Reply:
    type: speak
    text: "WORD reply"
    next: Done
  Done:
    type: hangup
"""


def revision(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Server:
    """`callflow serve` on a folder, with what the tests send it."""

    def __init__(self, tmp_path, *args: str):
        self.tmp = tmp_path
        self.process = CallflowProcess(["serve", str(tmp_path / "flows"), "--port", "0", "--db",
                                        f"sqlite:///{tmp_path}/runs.db", "--log-level", "debug", *args],
                                       clean_env(**ENV), tmp_path / "serve.log", cwd=tmp_path)
        self.url = self.process.wait_line(SERVE_READY).split()[-1]

    def signed(self, path: str, params: dict) -> httpx.Response:
        headers = sign_v3_headers("POST", PUBLIC + path, params, PLIVO[1])
        return httpx.post(self.url + path, data=params, headers=headers, timeout=10)

    def call_in(self, uuid: str) -> tuple[str, str]:
        """An incoming call to `menu`: (its first document, the digits callback's path)."""
        r = self.signed("/callbacks/inbound/menu", {"CallUUID": uuid, "From": "+12025551234", "To": "+12025550100",
                                                    "Direction": "inbound", "CallStatus": "ringing"})
        assert r.status_code == 200, r.text
        return r.text, re.search(r'action="https://flows\.example\.com(/callbacks/[^"]+/digits)"', r.text).group(1)

    def press(self, digits_path: str, uuid: str) -> str:
        return self.signed(digits_path, {"CallUUID": uuid, "Digits": "1"}).text

    def hang_up(self, uuid: str) -> None:
        r = self.signed("/callbacks/inbound/menu/hangup", {"CallUUID": uuid, "CallStatus": "completed",
                                                           "HangupCause": "NORMAL_CLEARING"})
        assert r.status_code == 200

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, auth=AUTH, timeout=10)

    def reload(self) -> httpx.Response:
        return httpx.post(self.url + "/v1/flows/reload", auth=AUTH, timeout=10)

    def finish_on_old_text(self, digits_path: str, uuid: str) -> None:
        """The waiting run hears its own revision's reply, and completes."""
        assert "Old reply" in self.press(digits_path, uuid)
        self.hang_up(uuid)
        assert self.record(digits_path)["status"] == "completed"

    def record(self, digits_path: str) -> dict:
        return self.get(f"/v1/runs/{digits_path.split('/')[2]}").json()

    def log(self) -> str:
        return (self.tmp / "serve.log").read_text(errors="replace")


@pytest.fixture
def served(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "menu.yaml").write_text(MENU.replace("WORD", "Old"))
    servers = []

    def start(*args):
        servers.append(Server(tmp_path, *args))
        return servers[-1]
    yield start
    for s in servers:
        s.process.stop()


def test_a_changed_flow_reloaded_keeps_its_live_run_on_the_old_text(served, tmp_path):
    s = served()
    first, digits = s.call_in("call-old")
    assert "Old prompt" in first
    new_text = MENU.replace("WORD", "New")
    (tmp_path / "flows" / "menu.yaml").write_text(new_text)
    r = s.reload()
    assert r.status_code == 200 and r.json()["changed"] == ["menu"], r.text
    second, new_digits = s.call_in("call-new")
    assert "New prompt" in second
    assert "Old reply" in s.press(digits, "call-old")  # the live call speaks its own revision to its end
    flows = s.get("/v1/flows").json()["flows"]
    assert flows[0]["revision"] == revision(new_text) and flows[0]["runs_on_older_revisions"] == 1
    assert flows[0]["loaded_at"]
    assert "New reply" in s.press(new_digits, "call-new")
    s.hang_up("call-old")
    s.hang_up("call-new")
    old, new = s.record(digits), s.record(new_digits)
    assert old["status"] == new["status"] == "completed"
    assert old["flow_revision"] == revision(MENU.replace("WORD", "Old"))
    assert new["flow_revision"] == revision(new_text)


def test_a_removed_flow_reloaded_by_sighup_still_finishes_its_run(served, tmp_path):
    s = served()
    _, digits = s.call_in("call-1")
    (tmp_path / "flows" / "menu.yaml").unlink()
    s.process.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: s.get("/v1/flows").json()["flows"] == [], what="the reload to remove the flow")
    s.finish_on_old_text(digits, "call-1")
    assert "flows reloaded" in s.log()


def test_the_waited_on_node_renamed_and_reloaded_the_run_finishes(served, tmp_path):
    s = served()
    _, digits = s.call_in("call-1")
    renamed = MENU.replace("WORD", "New").replace("Ask", "Menu")
    (tmp_path / "flows" / "menu.yaml").write_text(renamed)
    assert s.reload().status_code == 200
    s.finish_on_old_text(digits, "call-1")


def test_a_restarted_process_rebuilds_the_old_revision_from_the_store(served, tmp_path):
    s = served()
    _, digits = s.call_in("call-1")
    s.process.stop()
    (tmp_path / "flows" / "menu.yaml").write_text(MENU.replace("WORD", "New").replace("Ask", "Menu"))
    s = served()  # never read the old file: the revision comes from the database
    s.finish_on_old_text(digits, "call-1")


def test_an_invalid_file_reloaded_changes_nothing_and_answers_its_diagnostics(served, tmp_path):
    s = served()
    _, digits = s.call_in("call-1")
    before = s.get("/v1/flows").json()["flows"]
    (tmp_path / "flows" / "menu.yaml").write_text(MENU.replace("WORD", "New").replace("type: speak", "type: speek"))
    r = s.reload()
    assert r.status_code == 422
    body = r.json()
    assert body["applied"] is False and "nothing changed" in body["error"]
    bad = [d for d in body["diagnostics"] if d["severity"] == "error"]
    assert bad and bad[0]["code"] == "unknown-node-type" and (bad[0]["line"], bad[0]["col"]) == (12, 11)
    assert s.get("/v1/flows").json()["flows"] == before
    assert "reload refused" in s.log() and "menu.yaml:12:11" in s.log()
    second, _ = s.call_in("call-2")
    assert "Old prompt" in second  # new runs still start on the running revision
    assert "Old reply" in s.press(digits, "call-1")
    assert httpx.post(s.url + "/v1/flows/reload", timeout=10).status_code == 401


def test_serve_allow_invalid_starts_with_the_valid_flows(served, tmp_path):
    (tmp_path / "flows" / "bad.yaml").write_text("spec: callflow/v1\nid: bad\nnodes:\n  Start: {type: nope}\n")
    s = served("--allow-invalid")
    assert [f["id"] for f in s.get("/v1/flows").json()["flows"]] == ["menu"]
    assert "bad.yaml:4:17: error unknown-node-type" in s.log() and "not served (--allow-invalid)" in s.log()


def test_a_secret_param_reaches_the_request_and_no_byte_of_any_output(served, tmp_path, api):  # noqa: F811
    from test_params import FLOW

    (tmp_path / "flows" / "lookup.yaml").write_text(FLOW)
    (tmp_path / "prod.yaml").write_text(f"base_url: {api}\nlookup: {{api_key: {SECRET}}}\n")
    s = served("--params", str(tmp_path / "prod.yaml"))
    r = httpx.post(f"{s.url}/v1/account/{AUTH[0]}/phlo/lookup/", json={}, auth=AUTH, timeout=10)
    assert r.status_code == 201, r.text
    run_id = r.json()["api_id"]
    record = wait_for(lambda: (rec := s.get(f"/v1/runs/{run_id}").json())["status"] == "completed" and rec,
                      what="the run to complete")
    assert Capture.seen[-1]["authorization"] == f"Bearer {SECRET}"
    assert record["requests"][0]["url"].endswith("?key=***")
    outputs = [s.get(f"/v1/runs/{run_id}").text, s.get("/v1/runs").text, s.get("/v1/flows").text,
               s.get("/v1/flows/lookup").text, s.get("/").text, s.get("/metrics").text]
    s.process.stop()
    stored = [p.read_bytes().decode("latin-1") for p in tmp_path.glob("runs.db*")]
    for out in [*outputs, s.log(), *stored]:
        assert SECRET not in out


def test_the_console_run_page_names_the_revision_and_never_shows_the_secret(served, tmp_path, api):  # noqa: F811
    import test_console_browser as console
    from test_params import FLOW

    if console._why_no_browser():
        pytest.skip(console._why_no_browser())
    (tmp_path / "flows" / "lookup.yaml").write_text(FLOW)
    (tmp_path / "prod.yaml").write_text(f"base_url: {api}\napi_key: {SECRET}\n")
    s = served("--params", str(tmp_path / "prod.yaml"))
    run_id = httpx.post(f"{s.url}/v1/account/{AUTH[0]}/phlo/lookup/", json={}, auth=AUTH, timeout=10).json()["api_id"]
    browser = next(console.browser.__wrapped__(tmp_path_factory=_Factory(tmp_path)))
    try:
        basic = httpx.BasicAuth(*AUTH)._auth_header
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": basic}})
        console.open_console(browser, s, f"#/runs/{run_id}")
        wait_for(lambda: console.run_status(browser) == "completed", what="the run page")
        page = browser.page_source
        assert "Revision" in page and revision(FLOW)[:12] in page
        assert "key=***" in page and SECRET not in page
    finally:
        browser.quit()


class _Factory:
    """What the console tests' browser fixture asks of pytest's tmp_path_factory."""

    def __init__(self, root):
        self.root = root

    def mktemp(self, name):
        path = self.root / name
        path.mkdir()
        return path
