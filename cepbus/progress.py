"""Progress bars for the long commands: `ledger verify`, `ledger export`, `audit report`, the demo's wait.

On a big ledger these print nothing for minutes, which looks like a hang. The bar goes to stderr,
never stdout: those commands print JSON, CSV or a bundle on stdout, which a pipe or a script must get
byte for byte. It shows only when stderr is a terminal and `CEPBUS_PROGRESS` is not `0` (or `false`,
`no`, `off`). Otherwise `progress` yields None and `track` returns the items untouched, so a callee
given None skips its hook altogether and a CI log or a redirect gets nothing; `rich` is imported
only when a bar shows. Tests pass a `rich` Console (e.g. `force_terminal=True` over a StringIO).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["ENV_VAR", "Update", "progress", "progress_enabled", "track"]

#: Set to 0 (false, no, off) to silence every bar, even on a terminal.
ENV_VAR = "CEPBUS_PROGRESS"
_OFF = frozenset({"0", "false", "no", "off"})

#: `update(completed)`: how many of the total are done so far.
Update = Callable[[int], None]

T = TypeVar("T")


def progress_enabled(console: Console | None = None) -> bool:
    """Whether a bar would show: not switched off by `CEPBUS_PROGRESS`, and writing to a terminal
    (`console`'s output when given, else stderr)."""
    if os.environ.get(ENV_VAR, "").strip().lower() in _OFF:
        return False
    if console is not None:
        return console.is_terminal
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # stderr replaced by an object without it, or closed
        return False


@contextmanager
def progress(
    description: str, total: int | None = None, *, console: Console | None = None
) -> Iterator[Update | None]:
    """A bar for the block: yields `update(completed)`, or None when no bar shows (pass it on as the
    callee's optional hook). `total` None: the count is shown without a bar's end. The last frame
    stays on stderr, showing how far the work got."""
    if not progress_enabled(console):
        yield None
        return
    from rich.console import Console as RichConsole
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or RichConsole(stderr=True)
    if not console.is_terminal:  # a tty that rich will not drive (TTY_COMPATIBLE=0...): stay silent
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        redirect_stdout=False,  # what the command prints on stdout stays on stdout
    )
    with bar:
        task = bar.add_task(description, total=total)

        def update(completed: int) -> None:
            bar.update(task, completed=completed)

        yield update


def track(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    *,
    every: int = 100,
    console: Console | None = None,
) -> Iterable[T]:
    """`items`, with a bar counting them (updated every `every` items and at the end); `items`
    itself when no bar shows."""
    if not progress_enabled(console):
        return items
    return _tracked(items, description, total, every, console)


def _tracked(
    items: Iterable[T], description: str, total: int | None, every: int, console: Console | None
) -> Iterator[T]:
    with progress(description, total, console=console) as update:
        done = 0
        for item in items:
            yield item
            done += 1
            if update is not None and done % every == 0:
                update(done)
        if update is not None:
            update(done)
