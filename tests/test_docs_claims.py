"""What the docs say about runs and templates stays true (issue 14's docs points)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_no_doc_points_to_a_contract_section_that_is_not_in_the_repository():
    for path in [ROOT / "README.md", *DOCS.glob("*.md")]:
        if path.name != "design.md":
            assert "contract section" not in path.read_text(), path.name


def test_the_run_record_doc_names_every_field_of_the_record():
    text = (DOCS / "runs.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)`", text, re.M)) | {"updated_at"}
    record = json.loads(CliRunner().invoke(main, ["run", str(ROOT / "flows" / "outbound-sip-headers.yaml"), "-p",
                                                  "to=+12025550100", "-p", "customer=c1", "--json"]).output)
    record.pop("sandbox")
    assert set(record) <= documented
    assert set(record["steps"][0]) == {"node", "type", "outcome", "started_at", "ended_at", "error"}
    assert "**`api_id`**" in text


def test_the_date_filter_uses_the_process_time_zone_as_flows_md_says():
    code = ("from engine.templating import templates; "
            "print(templates.compile('{{ 1700000000 | date: \"%H:%M\" }} "
            "{{ \"2024-05-01T09:30:00+02:00\" | date: \"%H:%M %z\" }}').render({}))")
    def render(tz):
        env = {**os.environ, "TZ": tz}
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=60).stdout.split()
    assert render("UTC") == ["22:13", "09:30", "+0200"]
    assert render("Asia/Tokyo") == ["07:13", "09:30", "+0200"]
    assert "`TZ`" in (DOCS / "flows.md").read_text()


def test_the_design_module_map_names_every_engine_module():
    """docs/design.md's module map is where a reader finds a module: a new one must be in it."""
    design = (ROOT / "docs" / "design.md").read_text()
    modules = [p for p in (ROOT / "engine").rglob("*.py") if p.name != "__init__.py" and "__pycache__" not in p.parts]
    missing = sorted(str(p.relative_to(ROOT)) for p in modules if not re.search(rf"\b{re.escape(p.name)}\b", design))
    assert not missing, f"modules not in docs/design.md's module map: {missing}"
