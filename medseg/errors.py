"""The one exception type medseg raises for problems a user can fix."""

from __future__ import annotations

from pathlib import Path


class MedsegError(Exception):
    """A user-facing error: one line that names the file (when there is one) and the problem.

    The CLI prints ``str(error)`` and exits with status 1; it never shows a traceback for this type.

    Args:
        problem: what is wrong, in words a user can act on; line breaks become spaces.
        path: the file or folder the problem is about, if any.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = " ".join(problem.split())  # one line, whatever a library's message looked like
        self.path = None if path is None else Path(path)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path is not None else self.problem


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain, or the first MedsegError in it.

    MONAI wraps the errors of the transforms, writers and config expressions it runs in its own.
    """
    while error.__cause__ is not None and not isinstance(error, MedsegError):
        error = error.__cause__
    return error


def interrupted(error: BaseException) -> bool:
    """True when a Ctrl-C (KeyboardInterrupt) lies somewhere in ``error``'s chain.

    ``pydoc.locate``, which MONAI uses to find a config's ``_target_``, turns anything raised while it
    imports a module, a Ctrl-C included, into an ``ErrorDuringImport`` that keeps the original in its
    ``value`` attribute rather than in the exception chain.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        wrapped = getattr(current, "value", None)
        pending += [current.__cause__, current.__context__, wrapped if isinstance(wrapped, BaseException) else None]
    return False
