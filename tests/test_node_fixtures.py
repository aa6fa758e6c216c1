"""A fixture per node type: `nodes/testdata/<type>.test.yaml` (the flow-test format, see
docs/testing.md) runs a small flow beside it, `nodes/testdata/<type>.yaml`, and its cases
together take every outcome the node type declares, plus `error` where the type can fail.

The flows there are real flows: `callflow validate` finds nothing to say about them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.local.flowtest import run_file
from engine.node import NodeType
from engine.registry import node_types

TESTDATA = Path(__file__).resolve().parent.parent / "nodes" / "testdata"
TYPES = sorted(node_types())


def fixture(type_name: str) -> Path:
    return TESTDATA / f"{type_name}.test.yaml"


def can_fail(node_type: NodeType) -> bool:
    """Can a node of this type take its `error:` edge? Every node that runs resolves its
    config, and a templated field may render to a value the field refuses (or print an
    undefined one): the node fails. The trigger never runs (the run starts there)."""
    return not node_type.is_trigger and any(f.templated for f in node_type.fields.values())


def test_every_registered_node_type_has_a_fixture():
    missing = [t for t in TYPES if not fixture(t).is_file() or not (TESTDATA / f"{t}.yaml").is_file()]
    assert not missing, f"no nodes/testdata/<type>.test.yaml and <type>.yaml for: {', '.join(missing)}"


def test_every_fixture_is_for_a_registered_node_type():
    orphans = sorted(p.name for p in TESTDATA.glob("*.test.yaml") if p.name[: -len(".test.yaml")] not in TYPES)
    assert not orphans


@pytest.mark.parametrize("type_name", TYPES)
def test_fixture_passes_and_takes_every_outcome(type_name):
    run = run_file(fixture(type_name))
    assert not run.diagnostics, "\n".join(map(str, run.diagnostics))
    failed = [f"{r.label}: {'; '.join(r.problems)}" for r in run.results if not r.passed]
    assert not failed, "\n".join(failed)
    node_type = node_types()[type_name]
    specs = [spec for spec in run.flow.nodes.values() if spec.node_type is node_type]
    assert specs, f"the fixture flow {run.flow.id} has no {type_name} node"
    declared = set().union(*(node_type.node_outcomes(spec.config) for spec in specs))
    if can_fail(node_type):
        declared.add("error")
    taken = {step["outcome"] for r in run.results for step in r.record["steps"] if step["type"] == type_name}
    assert declared <= taken, f"no case takes {type_name} outcome(s) {', '.join(sorted(declared - taken))}"


def test_the_fixtures_pass_under_callflow_test_and_validate_clean():
    tested = CliRunner().invoke(main, ["test", str(TESTDATA)])
    assert tested.exit_code == 0, tested.output
    assert tested.output.splitlines()[-1].endswith(" passed, 0 failed")
    validated = CliRunner().invoke(main, ["validate", "--strict", str(TESTDATA)])
    assert validated.exit_code == 0, validated.output
    assert f"{len(TYPES)} file(s) checked: 0 error(s), 0 warning(s)" in validated.output
