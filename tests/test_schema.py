"""`callflow schema`: the JSON Schema of flow files, generated from the node types' fields."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.load.schema import flow_schema, schema_text
from engine.load.yaml_reader import load_text
from engine.registry import node_types

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "flow.schema.json"
FLOW_FILES = sorted(p for p in (ROOT / "flows").glob("*.yaml")
                    if not p.name.endswith((".test.yaml", ".scenario.yaml")))
VALIDATOR = jsonschema.Draft202012Validator(flow_schema())


def errors(data) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data))


def test_committed_schema_is_the_generated_one():
    assert COMMITTED.read_text() == schema_text(), (
        "docs/flow.schema.json is stale: run `callflow schema -o docs/flow.schema.json`")


def test_cli_prints_it():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert result.output == schema_text()
    assert json.loads(result.output)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_cli_writes_it(tmp_path):
    out = tmp_path / "s.json"
    assert CliRunner().invoke(main, ["schema", "-o", str(out)]).exit_code == 0
    assert out.read_text() == schema_text()


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(flow_schema())


@pytest.mark.parametrize("path", FLOW_FILES, ids=[p.stem for p in FLOW_FILES])
def test_bundled_flows_validate_against_the_schema(path):
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../docs/flow.schema.json\n")
    assert errors(load_text(text, str(path)).data) == []


def test_every_node_type_and_config_field_is_in_the_schema():
    defs = flow_schema()["$defs"]
    for name, node_type in node_types().items():
        props = defs[f"node_{name}"]["properties"]
        assert set(node_type.fields) <= set(props), name
        assert props["type"] == {"const": name, "description": node_type.summary}
        required = {k for k, f in node_type.fields.items() if f.required} | {"type"}
        assert set(defs[f"node_{name}"]["required"]) == required
    assert set(defs["node"]["properties"]["type"]["enum"]) == set(node_types())


FLOW = {"spec": "callflow/v1", "id": "x", "nodes": {
    "Start": {"type": "trigger", "required": ["to"], "next": "Call"},
    "Call": {"type": "call_out", "from": "+12025551234", "to": "{{ Start.http.params.to }}",
             "ring_timeout": 30, "next": {"answered": "Say", "busy": None}},
    "Say": {"type": "speak", "text": "hi", "next": "Done"},
    "Route": {"type": "branch", "value": "{{ Say }}", "conditions": [{"name": "a", "op": "equals", "value": "1"}],
              "next": {"a": "Done", "no_match": "Done"}},
    "Done": {"type": "hangup"},
}}


def test_a_valid_flow_passes_and_mistakes_are_caught():
    assert errors(FLOW) == []
    bad = json.loads(json.dumps(FLOW))
    bad["nodes"]["Say"]["txt"] = "typo"
    bad["nodes"]["Call"]["next"]["anwsered"] = "Say"
    bad["nodes"]["Call"]["ring_timeout"] = 600
    bad["nodes"]["Call"]["from"] = "12025551234"
    bad["nodes"]["Done"]["next"] = "Say"
    bad["nodes"]["say-hello"] = {"type": "speak", "text": "x"}
    bad["nodes"]["Route"]["conditions"][0]["op"] = "same_as"
    bad["nodes"]["Odd"] = {"type": "speek"}
    bad["spec"] = "callflow/v2"
    found = "\n".join(errors(bad))
    for where in ("nodes/Say", "nodes/Call/next", "nodes/Call/ring_timeout", "nodes/Call/from", "nodes/Done",
                  "nodes/Route/conditions/0/op", "nodes/Odd/type", "spec"):
        assert f"\n{where}:" in "\n" + found, (where, found)
    assert "say-hello" in found


def test_templates_are_accepted_where_values_are_typed():
    flow = json.loads(json.dumps(FLOW))
    flow["nodes"]["Call"]["ring_timeout"] = "{{ Start.http.params.ring }}"
    flow["nodes"]["Call"]["machine_detection"] = "{{ Start.http.params.amd }}"
    assert errors(flow) == []
