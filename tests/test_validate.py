"""`callflow validate`: the corpus of broken flows, the command line, positions, speed."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.load.build import check_text
from engine.load.discover import validate_paths

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
FLOWS = ROOT / "flows"
CASES = sorted(CORPUS.glob("*.yaml"))


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- the corpus: each broken flow, the exact diagnostics it must produce -----------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_corpus(case: Path):
    expected = case.with_suffix(".expected").read_text()
    _, diagnostics = check_text(case.read_bytes(), case.name)
    got = "".join(f"{d}\n" for d in diagnostics)
    assert got == expected


def test_every_corpus_flow_has_its_expectations():
    assert CASES
    for case in CASES:
        assert case.with_suffix(".expected").exists(), case.name
    for expected in CORPUS.glob("*.expected"):
        assert expected.with_suffix(".yaml").exists(), expected.name


def test_acceptance_case_reports_all_three_with_positions():
    _, diagnostics = check_text((CORPUS / "acceptance.yaml").read_bytes(), "acceptance.yaml")
    got = [(d.line, d.col, d.code) for d in diagnostics]
    assert got == [(12, 11, "unquoted-number"), (14, 5, "duplicate-key"), (20, 11, "unknown-node")]


def test_run_refuses_the_acceptance_case_with_exit_2_without_running():
    result = CliRunner().invoke(main, ["run", str(CORPUS / "acceptance.yaml"), "-p", "to=+12025550100"])
    assert result.exit_code == 2
    assert "run of" not in result.output  # nothing ran: no trace header, no run line
    for where in (":12:11: error unquoted-number", ":14:5: error duplicate-key", ":20:11: error unknown-node"):
        assert where in result.output


# -- the command line --------------------------------------------------------------------------------
def test_validate_text_lists_every_diagnostic_and_exits_1():
    result = run_cli("validate", str(CORPUS / "acceptance.yaml"), str(CORPUS / "branch.yaml"))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1] == "2 file(s) checked: 9 error(s), 0 warning(s)"
    assert all(re.match(r"^.+:\d+:\d+: (error|warning) [a-z-]+ ", line) for line in lines[:-1])


def test_validate_bundled_flows_clean_even_when_strict():
    result = run_cli("validate", "--strict", str(FLOWS))
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("0 error(s), 0 warning(s)")


def test_warnings_fail_only_with_strict(tmp_path):
    flow = tmp_path / "warn.yaml"
    flow.write_text("spec: callflow/v1\nid: warn\nnodes:\n  Start: {type: trigger}\n  Lost: {type: hangup}\n")
    assert run_cli("validate", str(flow)).exit_code == 0
    result = run_cli("validate", "--strict", str(flow))
    assert result.exit_code == 1
    assert f"{flow}:5:3: warning unreachable-node" in result.output


def test_json_format():
    result = run_cli("validate", "--format", "json", str(CORPUS / "acceptance.yaml"))
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["files"] == 1 and data["errors"] == 3 and data["warnings"] == 0
    first = data["diagnostics"][0]
    assert first == {"path": str(CORPUS / "acceptance.yaml"), "line": 12, "col": 11, "severity": "error",
                     "code": "unquoted-number",
                     "message": '+12025551234 is read by YAML as the number 12025551234: quote it, as "+12025551234"'}
    assert [d["code"] for d in data["diagnostics"]] == ["unquoted-number", "duplicate-key", "unknown-node"]


def test_github_format_is_workflow_commands():
    result = run_cli("validate", "--format", "github", str(CORPUS / "loops.yaml"), str(CORPUS / "acceptance.yaml"))
    lines = result.output.strip().splitlines()
    path = str(CORPUS / "acceptance.yaml")
    assert lines[0].startswith(f"::error file={path},line=12,col=11,title=unquoted-number::unquoted-number ")
    assert any(line.startswith("::warning file=") and "title=loop-without-wait" in line for line in lines)
    assert all(line.startswith("::") for line in lines[:-1])


def test_github_format_escapes_properties_and_data():
    from engine.diagnostics import Diagnostic
    from engine.load.report import format_diagnostics

    d = Diagnostic("a,b:c.yaml", 1, 2, "error", "x", "50% done\nnext")
    out = format_diagnostics([d], "github", 1).splitlines()[0]
    assert out == "::error file=a%2Cb%3Ac.yaml,line=1,col=2,title=x::x 50%25 done%0Anext"


def test_folders_skip_test_cases_scenarios_and_hidden_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    good = "spec: callflow/v1\nid: {id}\nnodes:\n  Start: {{type: trigger}}\n"
    (tmp_path / "a.yaml").write_text(good.format(id="a"))
    (tmp_path / "sub" / "b.yml").write_text(good.format(id="b"))
    (tmp_path / "a.test.yaml").write_text("not: a flow\n")
    (tmp_path / "a.scenario.yaml").write_text("default: busy\n")
    (tmp_path / ".pre-commit-config.yaml").write_text("repos: []\n")
    (tmp_path / ".hidden" / "c.yaml").write_text("junk: [\n")
    (tmp_path / "notes.txt").write_text("junk: [\n")
    diagnostics, checked = validate_paths([tmp_path])
    assert checked == 2 and diagnostics == []


def test_duplicate_flow_ids_point_at_the_id_value(tmp_path):
    text = "# a comment\nspec: callflow/v1\nid:   same\nnodes:\n  Start: {type: trigger}\n"
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text.replace("Start: {type: trigger}", "Start: {type: nope}"))
    result = run_cli("validate", str(tmp_path))
    assert result.exit_code == 1
    assert f"{tmp_path / 'b.yaml'}:3:7: error duplicate-flow-id flow id 'same' is also used by " \
           f"{tmp_path / 'a.yaml'}" in result.output


def test_validate_and_serve_load_a_folder_alike(tmp_path):
    """One loader: the same diagnostics from `callflow validate` and `callflow serve`, each
    reuse of an id at its id value, and the first file keeping the id."""
    from engine.load.discover import load_folder

    flow = "spec: callflow/v1\nid: same\nnodes:\n  Start: {type: trigger}\n"
    for name in ("a.yaml", "b.yaml", "c.yaml"):
        (tmp_path / name).write_text(flow)
    diagnostics, checked = validate_paths([tmp_path])
    flows, served = load_folder(tmp_path)
    assert served == diagnostics and checked == 3
    assert [str(d) for d in diagnostics] == [
        f"{tmp_path / name}:2:5: error duplicate-flow-id flow id 'same' is also used by {tmp_path / 'a.yaml'}"
        for name in ("b.yaml", "c.yaml")]
    assert flows["same"].path == str(tmp_path / "a.yaml") and list(flows) == ["same"]


def test_missing_path_is_a_diagnostic():
    result = run_cli("validate", "no/such/place.yaml")
    assert result.exit_code == 1
    assert "no/such/place.yaml:1:1: error unreadable no such file or folder" in result.output


def test_file_too_large_is_refused_without_parsing(tmp_path):
    from engine.load.document import MAX_FLOW_BYTES

    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_FLOW_BYTES + "\n")
    result = run_cli("validate", str(big))
    assert result.exit_code == 1
    assert ":1:1: error file-too-large" in result.output


def test_absurd_nesting_is_a_diagnostic():
    deep = "[" * 900 + "]" * 900  # deeper than 1,000 levels, libyaml itself stops (yaml-syntax)
    text = ("spec: callflow/v1\nid: deep\nnodes:\n  Start: {type: trigger, next: R}\n"
            f"  R: {{type: http_request, url: 'https://x.example', json: {deep}}}\n")
    flow, diagnostics = check_text(text, "deep.yaml")
    assert flow is None
    assert [d.code for d in diagnostics] == ["too-deep"]


# -- template positions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value, col_of_ref", [
    ('"{{ Nope.x }}"', 14),  # double-quoted
    ("'{{ Nope.x }}'", 14),  # single-quoted
    ("{{ Nope.x }}", 0),  # plain scalars cannot start with {{ (YAML mapping): skipped
    ('"\\t{{ Nope.x }}"', 16),  # an escape is two characters in the file, one in the value
    ("'it''s {{ Nope.x }}'", 20),  # '' is one quote
    ("Hello {{ Nope.x }}", 19),  # plain
])
def test_template_positions_follow_the_quoting(value, col_of_ref):
    if not col_of_ref:
        return
    text = f"spec: callflow/v1\nid: t\nnodes:\n  Start: {{type: trigger, next: S}}\n  S:\n    type: set_variables\n" \
           f"    values:\n      v: {value}\n"
    _, diagnostics = check_text(text, "t.yaml")
    d = [d for d in diagnostics if d.code == "unknown-variable"]
    assert [(d.line, d.col) for d in d] == [(8, col_of_ref)], diagnostics


def test_template_positions_in_block_and_folded_scalars():
    text = """spec: callflow/v1
id: t
nodes:
  Start: {type: trigger, next: S}
  S:
    type: set_variables
    values:
      a: |
        one
          {{ Nope.a }}
      b: >-
        two
        three {{ Nope.b }}
      c: "first
        {{ Nope.c }}"
      d: plain
        {{ Nope.d }}
"""
    _, diagnostics = check_text(text, "t.yaml")
    assert [(d.line, d.col) for d in diagnostics] == [(10, 14), (13, 18), (15, 12), (17, 12)]


# -- speed ---------------------------------------------------------------------------------------------------
def test_a_thousand_node_flow_validates_quickly():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from validate_bench import generate
    finally:
        sys.path.pop(0)
    text = generate(1000)
    start = time.process_time()
    flow, diagnostics = check_text(text, "big.yaml")
    elapsed = time.process_time() - start
    assert flow is not None and diagnostics == []
    assert elapsed < 3.0  # about 0.25 s on the reference machine; generous for loaded CI


# -- the CI examples run what they say ----------------------------------------------------------
def _example_commands() -> list[list[str]]:
    import shlex

    import yaml

    examples = ROOT / "examples"
    commands = []
    workflow = yaml.safe_load((examples / "github-actions.yml").read_text())
    for step in workflow["jobs"]["flows"]["steps"]:
        if step.get("run", "").startswith("callflow "):
            commands.append(shlex.split(step["run"]))
    for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text()):
        assert {"id", "name", "entry", "language"} <= set(hook)
        commands.append(shlex.split(hook["entry"]) + hook.get("args", []))
    config = yaml.safe_load((examples / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert {h["id"] for repo in config["repos"] for h in repo["hooks"]} <= hooks
    return commands


def test_ci_examples_run_their_commands_on_the_bundled_flows(monkeypatch):
    monkeypatch.chdir(ROOT)
    commands = _example_commands()
    assert {tuple(c[:3]) for c in commands} >= {("callflow", "validate", "--format"), ("callflow", "test", "flows/")}
    assert any("github" in c for c in commands)
    for command in commands:
        result = CliRunner().invoke(main, command[1:], catch_exceptions=False)
        assert result.exit_code == 0, (command, result.output)


def test_pre_commit_hooks_sit_at_the_repository_root_and_print_plain_lines_in_a_terminal(tmp_path, monkeypatch):
    """pre-commit finds a hook repository's hooks only in its root .pre-commit-hooks.yaml; in a
    terminal the validate hook prints path:line:col lines, GitHub annotations only in Actions."""
    import shlex

    import yaml

    assert not (ROOT / "examples" / ".pre-commit-hooks.yaml").exists()
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    entry = shlex.split(hooks["callflow-validate"]["entry"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: callflow/v1\nid: bad\nnodes:\n  Start: {type: trigger, next: Nowhere}\n")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    terminal = CliRunner().invoke(main, entry[1:] + [str(bad)])
    assert terminal.exit_code == 1 and "::error" not in terminal.output
    assert f"{bad}:4:" in terminal.output and "error unknown-node" in terminal.output
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    actions = CliRunner().invoke(main, entry[1:] + [str(bad)])
    assert actions.exit_code == 1 and actions.output.startswith(f"::error file={bad},line=4,")
