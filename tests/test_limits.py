"""The rules behind the hostile edges, one by one: HTTP limit settings, payload limits,
cursors, records that read back, sqlite3 errors as StoreUnavailable."""

from __future__ import annotations

import asyncio
import json

import pytest

from engine.errors import StoreUnavailable
from engine.events import (
    MAX_KEY_LENGTH,
    MAX_PAYLOAD_KEYS,
    MAX_VALUE_LENGTH,
    payload_problems,
)
from engine.service.limits import HttpLimits, limits_from_env
from engine.service.readback import readable_json, valid_cursor


def test_limits_default_and_from_env():
    assert limits_from_env({}) == HttpLimits()
    limits = limits_from_env({"CALLFLOW_HTTP_HEADER_TIMEOUT": "2.5", "CALLFLOW_HTTP_MAX_HEADERS": "20"})
    assert limits.header_timeout == 2.5 and limits.max_headers == 20
    assert 16 <= HttpLimits().max_connections <= 1000


@pytest.mark.parametrize("name,value", [("CALLFLOW_HTTP_MAX_HEADERS", "abc"), ("CALLFLOW_HTTP_MAX_HEADERS", "0"),
                                        ("CALLFLOW_HTTP_BODY_TIMEOUT", "-1"), ("CALLFLOW_HTTP_KEEPALIVE", "nan"),
                                        ("CALLFLOW_HTTP_HEADER_TIMEOUT", "inf"), ("CALLFLOW_HTTP_MAX_IN_FLIGHT", "1.5")])
def test_bad_limit_settings_name_the_setting(name, value):
    with pytest.raises(ValueError, match=name):
        limits_from_env({name: value})


def test_payload_limits():
    assert payload_problems({"k" * MAX_KEY_LENGTH: "v" * MAX_VALUE_LENGTH, "n": 2**63 - 1, "m": -2**63, "f": 1.5}) == []
    assert payload_problems({str(i): i for i in range(MAX_PAYLOAD_KEYS)}) == []
    bad = {"inf": float("inf"), "nan": float("nan"), "big": 2**63, "nul": "a\x00", "sur": "\udc80",
           "long": "v" * (MAX_VALUE_LENGTH + 1), "k" * (MAX_KEY_LENGTH + 1): 1, "\ud800": 1, "x\x00": 1}
    problems = dict(payload_problems(bad))
    assert set(problems) == set(bad)
    assert "finite" in problems["inf"] and "finite" in problems["nan"] and "64 bits" in problems["big"]
    assert "NUL" in problems["nul"] and "surrogate" in problems["sur"] and "longer" in problems["long"]
    assert all(message.isascii() and len(message) < 200 for message in problems.values())
    [(key, message)] = payload_problems({str(i): i for i in range(MAX_PAYLOAD_KEYS + 5)})
    assert key == str(MAX_PAYLOAD_KEYS) and "too many" in message
    assert payload_problems({"ok": True, "none": None}) == []


@pytest.mark.parametrize("cursor,ok", [("1", True), ("9223372036854775807", True), ("9223372036854775808", False),
                                       ("0", False), ("01", False), ("-1", False), ("1e3", False), ("٣", False),
                                       ("9" * 5000, False), ("", False)])
def test_cursors(cursor, ok):
    assert valid_cursor(cursor) is ok


def test_a_record_holding_what_json_cannot_carry_still_reads():
    body = json.loads(readable_json({"a": float("inf"), "b": [float("-inf"), "x\ud800y"], "c": 1}).body)
    assert body == {"a": "Infinity", "b": ["-Infinity", "x\ufffdy"], "c": 1}


def test_sqlite_errors_are_store_unavailable(tmp_path):
    from engine.service.sqlite_store import SQLiteStore
    from engine.state import RunState

    async def main():
        store = SQLiteStore(str(tmp_path / "x.db"))
        try:
            await store._call(store._db.db.execute, "INSERT INTO nowhere VALUES (1)")  # any sqlite3 error
        except StoreUnavailable as e:
            assert "unavailable" in str(e)
        else:
            raise AssertionError("no StoreUnavailable")
        await store.create_run(RunState(run_id="r1", flow_id="f", created_at=1.0, updated_at=1.0))
        assert (await store.load("r1")) is not None  # the store goes on after the error
        await store.close()
    asyncio.run(main())
