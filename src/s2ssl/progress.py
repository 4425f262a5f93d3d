"""Progress reporting. Library functions take a :data:`ProgressFactory`; the CLI passes
:func:`progress_bar` (rich, on stderr), tests and flows use the silent :func:`no_progress`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, int], AbstractContextManager[Advance]]
"""``factory(description, total)`` opens a progress display and yields ``advance(n)``."""


@contextmanager
def no_progress(description: str, total: int) -> Iterator[Advance]:
    """A progress factory that shows nothing."""
    yield lambda n: None


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Advance]:
    """A rich progress bar on stderr: bar, done/total, elapsed and remaining time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
