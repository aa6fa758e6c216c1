"""`callflow test` for a growing suite: -k, --min-coverage, did-you-mean, JSON Schemas."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_k_runs_only_the_matching_cases():
    result = cli("test", str(FLOWS), "-k", "ivr-order-status/status")
    assert result.exit_code == 0, result.output
    ran = [line.split()[1] for line in result.output.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert ran and all(label.startswith("ivr-order-status/status") for label in ran)
    assert f"{len(ran)} passed, 0 failed" in result.output
    globbed = cli("test", str(FLOWS), "-k", "*/busy", "-k", "inbound-support/gold*")
    labels = [line.split()[1] for line in globbed.output.splitlines() if line.startswith("PASS")]
    assert "outbound-sip-headers/busy" in labels and all(
        label.endswith("/busy") or label.startswith("inbound-support/gold") for label in labels)


def test_k_matching_nothing_fails():
    result = cli("test", str(FLOWS), "-k", "no-such-case")
    assert result.exit_code == 1
    assert "error: no case matches -k no-such-case" in result.output


def test_min_coverage_fails_below_the_threshold():
    partial = cli("test", str(FLOWS / "outbound-sip-headers.yaml"), "-k", "answered", "--min-coverage", "100")
    assert partial.exit_code == 1
    assert "coverage outbound-sip-headers: 40% of 5 routed outcome(s); not taken:" in partial.output
    assert "(below --min-coverage 100)" in partial.output
    assert partial.output.strip().splitlines()[-1] == "1 passed, 0 failed, coverage below 100% in outbound-sip-headers"
    assert cli("test", str(FLOWS / "outbound-sip-headers.yaml"), "-k", "answered", "--min-coverage", "40").exit_code == 0
    assert cli("test", str(FLOWS), "--min-coverage", "100").exit_code == 0


def test_misspelt_keys_get_did_you_mean(tmp_path):
    shutil.copy(FLOWS / "outbound-sip-headers.yaml", tmp_path)
    test = tmp_path / "outbound-sip-headers.test.yaml"
    test.write_text("cases:\n  a:\n    payload: {to: '+12025550100', customer: C1}\n    calee: busy\n"
                    "    expect: {stauts: completed}\n"
                    "  b:\n    payload: {to: '+12025550100', customer: C1}\n    callee: {reslt: busy}\n"
                    "    http: {}\n")
    out = cli("test", str(test)).output
    assert "4:5: error unknown-key unknown key 'calee' (expected " in out and "did you mean 'callee'?" in out
    assert "did you mean 'status'?" in out
    assert "unknown key 'reslt'" in out and "did you mean 'result'?" in out
    scenario = tmp_path / "s.yaml"
    scenario.write_text("defualt: busy\nhttp: {Lookup: {stauts: 200}}\n")
    result = cli("run", str(tmp_path / "outbound-sip-headers.yaml"), "--scenario", str(scenario))
    assert result.exit_code == 2
    assert "did you mean 'default'?" in result.output and "did you mean 'status'?" in result.output


# -- JSON Schemas of test and scenario files ---------------------------------------------------------
def _validator(kind: str):
    import json

    import jsonschema

    committed = ROOT / "docs" / f"{kind}.schema.json"
    assert cli("schema", "--kind", kind).output == committed.read_text(), (
        f"docs/{kind}.schema.json is stale: run `callflow schema --kind {kind} -o docs/{kind}.schema.json`")
    schema = json.loads(committed.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _load(path: Path):
    import yaml

    return yaml.safe_load(path.read_text())


def test_bundled_test_files_validate_against_the_test_schema():
    validator = _validator("test")
    files = sorted(FLOWS.glob("*.test.yaml")) + sorted((ROOT / "nodes" / "testdata").glob("*.test.yaml"))
    assert len(files) > 10
    for path in files:
        assert [e.message for e in validator.iter_errors(_load(path))] == [], path
        depth = "../" * (len(path.relative_to(ROOT).parts) - 1)
        assert path.read_text().startswith(f"# yaml-language-server: $schema={depth}docs/test.schema.json\n")
    mistake = _load(FLOWS / "outbound-sip-headers.test.yaml")
    mistake["cases"]["busy"]["calee"] = mistake["cases"]["busy"].pop("callee")
    mistake["cases"]["answered"]["expect"]["status"] = "done"
    problems = sorted(e.message for e in validator.iter_errors(mistake))
    assert any("'calee' was unexpected" in p for p in problems) and any("'done' is not one of" in p for p in problems)


def test_bundled_scenarios_validate_against_the_scenario_schema():
    validator = _validator("scenario")
    for path in sorted(FLOWS.glob("*.scenario.yaml")):
        assert [e.message for e in validator.iter_errors(_load(path))] == [], path
    wrong = {"default": {"result": "answerd"}, "http": {"Lookup": {"stauts": 200}}}
    assert len(list(validator.iter_errors(wrong))) == 2


def test_schema_keys_are_the_readers_keys():
    from engine.local import scenario, testfile
    from engine.local.file_schemas import flow_test_schema, scenario_schema

    test = flow_test_schema()
    case = test["properties"]["cases"]["additionalProperties"]["properties"]
    assert set(case) == set(testfile.CASE_KEYS)
    assert set(case["expect"]["properties"]) == set(testfile.EXPECT_KEYS)
    assert set(case["call"]["properties"]) == set(testfile.CALL_KEYS)
    assert set(case["message"]["properties"]) == set(testfile.MESSAGE_KEYS)
    assert set(test["properties"]) == set(testfile.TOP_KEYS)
    defs = scenario_schema()["$defs"]
    assert set(defs["behaviour"]["anyOf"][1]["properties"]) == set(scenario._BEHAVIOUR_KEYS)
    assert set(defs["httpMock"]["properties"]) == set(scenario.HTTP_MOCK_KEYS)
