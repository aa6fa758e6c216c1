"""Flow parameters and secrets on the command line: `params:`, `{{ params.name }}`,
`--params FILE`, CALLFLOW_PARAM_<NAME>; a secret's value reaches the request and no output."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from processes import REPO, clean_env, reply

from engine.load.build import check_text
from engine.params import Redactor

SECRET = "s3cr3t-VALUE-42"
FLOW = """\
spec: callflow/v1
id: lookup
params:
  base_url: {default: "http://127.0.0.1:9"}
  api_key: {secret: true, description: "the CRM's key"}
nodes:
  Start:
    type: trigger
    next: {http: Fetch}
  Fetch:
    type: http_request
    url: "{{ params.base_url }}/customers"
    headers: {Authorization: "Bearer {{ params.api_key }}"}
    params: {key: "{{ params.api_key }}"}
    next: {success: Done, failed: Done}
  Done:
    type: set_variables
    values: {k: "{{ params.api_key }}x", echoed: "{{ Fetch.body.seen }}"}
"""


def callflow(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          env=clean_env(**(env or {})), cwd=cwd or REPO, timeout=60)


class Capture(BaseHTTPRequestHandler):
    """Answers every GET with JSON echoing the Authorization header it got (as some APIs do)."""

    seen: list[dict] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Capture.seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        reply(self, 200, json.dumps({"seen": self.headers.get("Authorization")}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Capture.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def files(tmp_path, api):
    (tmp_path / "lookup.yaml").write_text(FLOW)
    (tmp_path / "staging.yaml").write_text(f"base_url: {api}\nlookup:\n  api_key: {SECRET}\n")
    return tmp_path


def test_the_secret_is_sent_and_appears_in_no_output_of_run(files):
    outputs = []
    for extra in ([], ["-v"], ["--json"]):
        r = callflow("run", str(files / "lookup.yaml"), "--http", "live", "--params", str(files / "staging.yaml"),
                     *extra)
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout + r.stderr)
    assert Capture.seen and all(s["authorization"] == f"Bearer {SECRET}" for s in Capture.seen)
    assert all(s["path"] == f"/customers?key={SECRET}" for s in Capture.seen)  # the real request carries it
    for out in outputs:
        assert SECRET not in out
    record = json.loads(outputs[2])
    assert record["requests"][0]["url"].endswith("/customers?key=***")
    assert record["variables"]["Done"] == {"k": "***x", "echoed": "Bearer ***"}


def test_an_environment_variable_wins_over_the_file(files):
    r = callflow("run", str(files / "lookup.yaml"), "--http", "live", "--params", str(files / "staging.yaml"),
                 "--json", env={"CALLFLOW_PARAM_API_KEY": "from-the-environment"})
    assert r.returncode == 0, r.stderr
    assert Capture.seen[-1]["authorization"] == "Bearer from-the-environment"
    assert "from-the-environment" not in r.stdout


def test_validate_reports_undeclared_and_missing_params_with_positions(tmp_path):
    (tmp_path / "lookup.yaml").write_text(FLOW.replace("{{ params.api_key }}x", "{{ params.apikey }}x"))
    r = callflow("validate", str(tmp_path / "lookup.yaml"))
    assert r.returncode == 1
    assert "lookup.yaml:18:21: error undeclared-param params.apikey" in r.stdout
    assert "did you mean 'api_key'?" in r.stdout
    (tmp_path / "lookup.yaml").write_text(FLOW)
    (tmp_path / "prod.yaml").write_text("base_url: https://crm.example.com\n")
    r = callflow("validate", str(tmp_path / "lookup.yaml"), "--params", str(tmp_path / "prod.yaml"))
    assert r.returncode == 1 and "lookup.yaml:5:3: error missing-param param 'api_key'" in r.stdout
    assert "CALLFLOW_PARAM_API_KEY" in r.stdout
    r = callflow("validate", str(tmp_path / "lookup.yaml"), "--params", str(tmp_path / "prod.yaml"),
                 env={"CALLFLOW_PARAM_API_KEY": "k"})
    assert r.returncode == 0, r.stdout
    assert callflow("validate", str(tmp_path / "lookup.yaml")).returncode == 0  # without --params: not checked


def test_a_bad_parameters_file_is_one_error_line(tmp_path):
    (tmp_path / "lookup.yaml").write_text(FLOW)
    (tmp_path / "bad.yaml").write_text("api_key: [1, 2]\n")
    r = callflow("run", str(tmp_path / "lookup.yaml"), "--params", str(tmp_path / "bad.yaml"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'bad.yaml'}: api_key: a param value is text, a number or true/false"]
    r = callflow("run", str(tmp_path / "lookup.yaml"), "--params", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "cannot read the parameters file" in r.stderr and "Traceback" not in r.stderr


def test_flow_test_snapshots_never_hold_the_secret(tmp_path):
    (tmp_path / "lookup.yaml").write_text(FLOW)
    (tmp_path / "lookup.test.yaml").write_text(
        "flow: lookup.yaml\ncases:\n  found:\n    http:\n      Fetch: {status: 200, json: {seen: ok}}\n")
    (tmp_path / "p.yaml").write_text(f"api_key: {SECRET}\n")
    r = callflow("test", str(tmp_path), "--update", "--params", str(tmp_path / "p.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr
    again = callflow("test", str(tmp_path), "--params", str(tmp_path / "p.yaml"))
    assert again.returncode == 0 and "1 passed" in again.stdout
    snapshot = (tmp_path / "lookup.test.yaml").read_text()
    assert "key=***" in snapshot and SECRET not in snapshot + r.stdout + again.stdout


def test_params_are_checked_as_declared():
    bad = FLOW.replace("api_key: {secret: true, description: \"the CRM's key\"}",
                       "api_key: {secret: yes please, dflt: 1}\n  2x: {}")
    flow, diagnostics = check_text(bad, "f.yaml")
    found = {(d.code, d.line) for d in diagnostics}
    assert flow is None and {("wrong-type", 5), ("unknown-key", 5), ("invalid-name", 6)} <= found
    named = FLOW.replace("  Done:\n    type: set_variables", "  params:\n    type: set_variables") \
        .replace("success: Done, failed: Done", "success: params, failed: params")
    assert any("'params' is reserved" in d.message for d in check_text(named, "f.yaml")[1])


def test_the_redactor_masks_inside_nested_values_longest_first():
    r = Redactor(["abc", "abcdef", ""])
    assert r.redact({"a": ["xabcdefx", ("abc",)], "n": 3, "abc": None}) == {"a": ["x***x", ("***",)], "n": 3,
                                                                             "***": None}
    assert not Redactor([None, ""]) and Redactor([]).redact("abc") == "abc"
