"""Terminal output shared by the commands: consoles and the progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out_console = Console()
err_console = Console(stderr=True)


class BarProgress:
    """Pipeline progress shown as a rich progress bar: queries done/total, ETA, cost so far."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task = None
        self.description = ""
        self.tokens = 0
        self.usd: float | None = None

    def start(self, total: int, description: str) -> None:
        self.description = description
        self.task = self.bar.add_task(self._label(), total=total)

    def advance(self, n: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)

    def cost(self, tokens_in: int, tokens_out: int, usd: float | None) -> None:
        """Add the tokens and USD of answers just received (cumulative over the command)."""
        self.tokens += tokens_in + tokens_out
        if usd is not None:
            self.usd = (self.usd or 0.0) + usd
        if self.task is not None:
            self.bar.update(self.task, description=self._label())

    def _label(self) -> str:
        parts = [self.description]
        if self.tokens:
            parts.append(f"{self.tokens:,} tokens")
        if self.usd is not None:
            parts.append(f"${self.usd:.4f}")
        return " · ".join(parts)


def progress_bar(disable: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=disable,
    )


def print_files(out) -> None:
    """`--verbose`: the files in a result directory, on stderr (stdout may carry JSON)."""
    from pathlib import Path

    names = sorted(p.name for p in Path(out).iterdir() if p.is_file() and p.name[0] != ".")
    err_console.print(f"files in {out}: {', '.join(names)}", highlight=False, soft_wrap=True)
