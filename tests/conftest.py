import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
CALLFLOW = [sys.executable, "-m", "engine.cli"]


def flow_text(body: str, *, flow_id: str = "t") -> str:
    """A flow file: spec and id, then the dedented nodes section."""
    return f"spec: callflow/v1\nid: {flow_id}\nname: test\nnodes:\n" + textwrap.indent(textwrap.dedent(body), "  ")


@pytest.fixture
def make_flow():
    from engine.load.build import check_text

    def make(body: str, **kw):
        flow, diagnostics = check_text(flow_text(body, **kw), "t.yaml")
        assert flow is not None, "\n".join(map(str, diagnostics))
        return flow

    return make


# A real PostgreSQL server per worker, a fresh database per test (tests/postgres.py).
from postgres import pg_server, pg_url  # noqa: E402,F401
