"""What ``medseg infer`` shows while it works: a spinner on the terminal naming the current step.

Only a terminal gets it: where stderr is a file or a pipe, the run's stderr keeps to its one-line
``error:`` and ``warning:`` messages, which scripts read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


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
