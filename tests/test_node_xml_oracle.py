"""Every XML document the node fixtures produce (nodes/testdata) is accepted by the official
SDK's `plivo.xml` classes, built element by element from the document (tests/sdk_oracle.py):
attribute names and value types through the SDK's validated setters, nesting through `add`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sdk_oracle import assert_sdk_accepts

from engine.local.flowtest import run_file

TESTDATA = Path(__file__).resolve().parent.parent / "nodes" / "testdata"
FIXTURES = sorted(TESTDATA.glob("*.test.yaml"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name.split(".")[0])
def test_the_sdk_builds_every_document_the_fixture_serves(fixture):
    run = run_file(fixture)
    documents = [doc for result in run.results for doc in (result.record or {}).get("documents", ())]
    for doc in documents:
        assert_sdk_accepts(doc)


def test_the_oracle_refuses_what_the_sdk_refuses():
    for bad in ('<Response><GetDigits numDigit="1"/></Response>',  # a misspelt attribute
                '<Response><Record maxLength="long"/></Response>',  # a value of the wrong type
                '<Response><Dial><Speak>hi</Speak></Dial></Response>'):  # nesting the SDK refuses
        with pytest.raises(Exception):
            assert_sdk_accepts(bad)
