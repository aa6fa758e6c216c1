"""Fixtures of the hostile suite: one `callflow serve --sandbox` per test module, with short
HTTP deadlines so that the probes finish in seconds (the defaults are documented in
docs/operations.md; the mechanism is the same)."""

from __future__ import annotations

import shutil

import pytest

from hostile.harness import FLOW, FLOWS, Serve


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    (d / "flows").mkdir()
    shutil.copy(FLOWS / f"{FLOW}.yaml", d / "flows")
    return d


@pytest.fixture(scope="module")
def serve(workdir):
    s = Serve.start(workdir, CALLFLOW_HTTP_HEADER_TIMEOUT="2", CALLFLOW_HTTP_BODY_TIMEOUT="2",
                    CALLFLOW_HTTP_KEEPALIVE="1")
    yield s
    s.stop()
