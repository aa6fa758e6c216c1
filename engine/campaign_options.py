"""A campaign's settings as the API and `callflow campaign run` take them, checked: each
bad value is a ValueError naming it (contract section 8)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.campaign_pace import check_timezone, parse_rate, parse_window
from engine.campaign_rows import normalise_number

DEFAULT_RATE = 2.0  # Plivo's default outbound limit: 2 calls per second
MAX_REPORTED = 1000  # bad rows listed in a refusal (all are counted)


@dataclass(frozen=True)
class CampaignOptions:
    name: str
    rate: float
    max_in_flight: int | None
    window: dict | None  # the spec as given (stored as JSON), checked by `parse_window`
    timezone: str
    skip_bad_rows: bool
    dnc: frozenset[str]


def parse_options(body: dict, default_name: str) -> CampaignOptions:
    """The settings of a `POST /v1/campaigns` body (or the CLI's, in the same shape)."""
    name = body.get("name") or default_name
    if not isinstance(name, str) or len(name) > 200:
        raise ValueError("name: text of at most 200 characters")
    rate = parse_rate(body["rate"]) if body.get("rate") is not None else DEFAULT_RATE
    max_in_flight = body.get("max_in_flight")
    if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int)
                                      or max_in_flight < 1):
        raise ValueError("max_in_flight: a whole number of at least 1 (or leave it out: no bound)")
    window = body.get("window")
    timezone = body.get("timezone")
    if timezone is not None:
        check_timezone(timezone)
    if window is not None:
        tz = parse_window(window, timezone or "UTC").timezone
        timezone = tz
    skip = body.get("skip_bad_rows", False)
    if not isinstance(skip, bool):
        raise ValueError("skip_bad_rows: true or false")
    dnc = body.get("dnc") or []
    if not isinstance(dnc, list) or not all(isinstance(n, str) for n in dnc):
        raise ValueError("dnc: a list of phone numbers")
    numbers = set()
    for raw in dnc:
        number = normalise_number(raw)
        if number is None:
            raise ValueError(f"dnc: {raw!r} is not a phone number in E.164 form (+12025551234)")
        numbers.add(number)
    return CampaignOptions(name, rate, max_in_flight, window, timezone or "UTC", skip, frozenset(numbers))
