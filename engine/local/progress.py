"""The campaign progress bar of `callflow campaign status --watch` and `campaign run`, drawn
by rich (MIT; docs/design.md says why) on stderr, so that stdout stays the results' CSV. Off
a terminal rich prints no animation, only the final state."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


class CampaignProgress:
    """`with CampaignProgress(rows) as bar: bar.show(progress, status)`."""

    def __init__(self, rows: int):
        self.rows = rows
        self.progress = Progress(TextColumn("[bold]{task.fields[status]}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=False)
        self.task = None

    def __enter__(self) -> "CampaignProgress":
        self.progress.__enter__()
        self.task = self.progress.add_task("campaign", total=max(self.rows, 1), status="", detail="")
        return self

    def show(self, p: dict, status: str) -> None:
        pace = f" {p['achieved_rate']:g}/s" if p.get("achieved_rate") else ""
        detail = (f"{p['in_flight']} in flight, {p['completed']} completed, {p['failed']} failed, "
                  f"{p['skipped']} skipped{pace}")
        self.progress.update(self.task, completed=p["started"] + p["skipped"], status=status, detail=detail)

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
