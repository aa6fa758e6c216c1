"""The rows of a campaign, checked before anything starts: one CSV row (header = payload
keys) is one run of the flow. `check_rows` streams: it holds one row at a time plus the set
of destinations seen (duplicates), so 100,000 rows check in bounded memory.

A row is bad (reported with its CSV line; the campaign is refused unless bad rows are to be
skipped) when it has the wrong number of cells, lacks a value the flow requires
(`Flow.missing_payload`), its destination is not a phone number, or its destination came
earlier in the file. A destination on the do-not-call list is not an error: the row is
skipped and reported so. Destinations are E.164-normalised (`normalise_number`) in the
payload too, so `+1 (202) 555-0100` and `+12025550100` are one callee.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from engine.events import payload_problems
from engine.flow import Flow
from engine.scalar_fields import E164

DESTINATION_KEYS = ("to", "destination", "phone", "number")  # the first header among them is the callee
DNC_REASON = "on the do-not-call list"
_SEPARATORS = re.compile(r"[\s().\-/]")


class CampaignInvalid(ValueError):
    """The campaign cannot be made from this input at all (no destination column, say)."""


@dataclass(frozen=True, slots=True)
class CheckedRow:
    """One CSV row after the checks: `problem` (a bad row) or `skipped` (do-not-call) or
    neither (a row to run)."""

    line: int
    payload: dict
    destination: str | None
    problem: str | None = None
    skipped: str | None = None


def normalise_number(raw: str) -> str | None:
    """E.164 from what people write (`+1 202-555-0100`, `0044 20 7946 0958`), else None:
    without a country code there is no telling which country is meant."""
    text = _SEPARATORS.sub("", str(raw or ""))
    if text.startswith("00"):
        text = "+" + text[2:]
    return text if E164.match(text) else None


def number_problem(raw: str) -> str:
    if raw.strip() and raw.strip()[0] != "+" and normalise_number("+" + raw):
        return f"destination {raw!r} has no country code: write it as '+{_SEPARATORS.sub('', raw)}'"
    return f"destination {raw!r} is not a phone number in E.164 form (+12025551234)"


def destination_key(header: list[str]) -> str:
    for key in DESTINATION_KEYS:
        if key in header:
            return key
    raise CampaignInvalid(f"the CSV header needs a destination column ({', '.join(DESTINATION_KEYS)}); "
                          f"it has {', '.join(header) or 'no columns'}")


def read_dnc(lines: Iterable[str]) -> set[str]:
    """A do-not-call list: one number a line (or a CSV whose first cell is the number);
    blank lines, `#` comments and a header line that is no number are ignored."""
    numbers = set()
    for line in lines:
        cell = line.split(",", 1)[0].strip().strip('"')
        if cell and not cell.startswith("#"):
            number = normalise_number(cell)
            if number:
                numbers.add(number)
    return numbers


def csv_records(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """(the CSV line a record starts on, its cells), header first; blank lines skipped."""
    reader = csv.reader(lines)
    end = 0
    for cells in reader:
        start, end = end + 1, reader.line_num
        if cells and any(c.strip() for c in cells):
            yield start, cells


class RowChecker:
    """Checks rows one by one for `flow`, given the header and the do-not-call numbers."""

    def __init__(self, flow: Flow, header: list[str], dnc: set[str] | frozenset = frozenset()):
        self.flow, self.dnc = flow, dnc
        self.header = [h.strip() for h in header]
        problems = payload_problems({h: "" for h in self.header})
        if problems:
            raise CampaignInvalid(f"the CSV header: {problems[0][1]}")
        if len(set(self.header)) != len(self.header):
            raise CampaignInvalid("the CSV header names a column twice")
        self.key = destination_key(self.header)
        self.seen: dict[str, int] = {}  # destination -> the line it first came on

    def check(self, line: int, cells: list[str]) -> CheckedRow:
        if len(cells) != len(self.header):
            return CheckedRow(line, {}, None, f"{len(cells)} cells, the header has {len(self.header)}")
        payload = {k: v.strip() for k, v in zip(self.header, cells) if v.strip()}
        missing = self.flow.missing_payload(payload)
        raw = payload.get(self.key, "")
        destination = normalise_number(raw) if raw else None
        if missing:
            return CheckedRow(line, payload, destination, f"missing {', '.join(missing)} "
                                                          f"(required by {self.flow.trigger})")
        if destination is None:
            return CheckedRow(line, payload, None, number_problem(raw) if raw else f"no {self.key}")
        payload[self.key] = destination
        first = self.seen.get(destination)
        if first is not None:
            return CheckedRow(line, payload, destination, f"destination {destination} already on line {first}")
        self.seen[destination] = line
        if destination in self.dnc:
            return CheckedRow(line, payload, destination, skipped=DNC_REASON)
        return CheckedRow(line, payload, destination)


def check_rows(flow: Flow, records: Iterable[tuple[int, list[str]]],
               dnc: set[str] | frozenset = frozenset()) -> Iterator[CheckedRow]:
    """Every data row of `records` (`csv_records`, `dict_records`: the header first), checked
    (CampaignInvalid if the header is unusable)."""
    records = iter(records)
    first = next(records, None)
    if first is None:
        raise CampaignInvalid("the CSV is empty: it needs a header line of payload keys, then one row per run")
    checker = RowChecker(flow, first[1], dnc)
    for line, cells in records:
        yield checker.check(line, cells)


def dict_records(rows: list) -> Iterator[tuple[int, list[str]]]:
    """JSON rows (objects) as CSV records: the header is the union of their keys in first-seen
    order; row i is "line" i + 2, as if the header were line 1."""
    header: list[str] = []
    for row in rows:
        if not isinstance(row, dict):
            raise CampaignInvalid("rows: a list of objects (payload key -> value)")
        header += [k for k in row if k not in header]
    yield 1, header
    for i, row in enumerate(rows):
        yield i + 2, ["" if row.get(k) is None else str(row.get(k)) for k in header]


@dataclass
class Survey:
    """What the checks found in all rows: the bad ones (the first `MAX_REPORTED` listed,
    every one counted), and how many will run or be skipped as do-not-call."""

    bad: int = 0
    problems: list = None  # [(line, reason)]
    runnable: int = 0
    do_not_call: int = 0

    def refusal(self) -> str:
        first = "; ".join(f"line {line}: {reason}" for line, reason in self.problems[:3])
        more = f" (and {self.bad - 3} more)" if self.bad > 3 else ""
        return (f"{self.bad} bad row{'s' if self.bad != 1 else ''}: {first}{more}; "
                "fix them, or skip them with skip_bad_rows (--skip-bad-rows)")


def survey(rows: Iterable[CheckedRow], limit: int = 1000) -> Survey:
    found = Survey(problems=[])
    for row in rows:
        if row.problem is not None:
            found.bad += 1
            if len(found.problems) < limit:
                found.problems.append((row.line, row.problem))
        elif row.skipped is not None:
            found.do_not_call += 1
        else:
            found.runnable += 1
    return found
