"""What ``medseg infer`` shows while it works, on stderr.

One scan: on a terminal, a spinner naming the current step. Several scans: one progress bar for the
run (scans finished of all, done, failed, skipped as done before, the rate and the time left). A
failed scan gets its ``error:`` line as it fails, whatever the display. Where stderr is a file or a
pipe and there is one scan, stderr keeps to its one-line ``error:`` and ``warning:`` messages,
which scripts read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from medseg.errors import MedsegError
from medseg.stderr import write_line


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: scans in all, done by this run, failed, skipped (done before); the last failure."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    error: MedsegError | None = None

    @property
    def finished(self) -> int:
        """Scans the run has nothing more to do for."""
        return self.done + self.failed + self.skipped


@contextmanager
def step_spinner(enabled: bool, first_line: str) -> Iterator[Callable[[str], None]]:
    """Print ``first_line`` and show a spinner with the step it is given, on stderr, when ``enabled``.

    Yields:
        The function to call with each step's words (it does nothing when not ``enabled``).
    """
    if not enabled:
        yield lambda words: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    console.print(first_line, highlight=False)
    with console.status("starting", spinner="dots") as status:
        yield lambda words: status.update(words)


@contextmanager
def run_display(
    total: int, first_line: str, render: Callable[[str], str] = str
) -> Iterator[tuple[Callable[[str], None], Callable[[RunProgress], None]]]:
    """The display of a run of ``total`` scans (see the module's docstring).

    Args:
        total: scans in the run.
        first_line: what the run does (bundle, device, path), shown first on a terminal.
        render: turns a failure's line into what is shown (the command line names its flags there).

    Yields:
        The function to call with each step's words, and the one to call with the run's counts.
    """
    terminal = sys.stderr.isatty()
    if total < 2:

        def failure_line(counts: RunProgress) -> None:
            if counts.error is not None:
                write_line(render(f"error: {counts.error}"))

        with step_spinner(terminal, first_line) as step:
            yield step, failure_line
        return
    from tqdm import tqdm

    if terminal:
        print(first_line, file=sys.stderr)
    erase = "\r\x1b[2K" if terminal else "\r"  # a pipe or file gets no terminal codes
    with tqdm(total=total, desc="segmenting", unit="scan", file=sys.stderr, dynamic_ncols=True) as bar:

        def show(counts: RunProgress) -> None:
            if counts.error is not None:  # on a line of its own, the bar redrawn below it
                write_line(f"{erase}{render(f'error: {counts.error}')}")
            skipped = f", {counts.skipped} done before" if counts.skipped else ""
            bar.set_postfix_str(f"{counts.done} done, {counts.failed} failed{skipped}", refresh=False)
            bar.update(counts.finished - bar.n)

        yield (lambda words: None), show
