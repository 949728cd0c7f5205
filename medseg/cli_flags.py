"""Library messages name Python arguments; the command line shows its flags in their place.

medseg's library speaks to the caller of its Python API: an error says ``` `ignore_modality=True` runs
it anyway```, an argument in backticks, as the caller wrote it or would write it. The command line
takes the same names as options (``--ignore-modality``), so :func:`with_flags` rewrites each such
argument into the flag that sets it, with the names read from the command's own options: nothing
to keep in step by hand.

Examples:
    >>> flags = {"ignore_modality": ("--ignore-modality", ""), "window": ("--window", "")}
    >>> with_flags("is MR scan (`ignore_modality=True` runs it anyway)", flags)
    'is MR scan (--ignore-modality runs it anyway)'
    >>> with_flags("`window='large'` needs the fast path", flags)
    '--window large needs the fast path'
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from typer.core import TyperGroup, TyperOption

ARGUMENT = re.compile(r"`([a-z][a-z0-9_]*)(?:=([^`]*))?`")  # `name` or `name=value`, as messages write them
# Library names that no option of the command line carries: the option that sets the same thing.
RENAMED = {"coarse": "fast"}

Flags = Mapping[str, tuple[str, str]]  # argument name -> (flag, its negative form or "")


def option_flags(command: TyperGroup) -> dict[str, tuple[str, str]]:
    """Each option's Python name and its long flag (and ``--no-`` form) over ``command`` and its subcommands."""
    flags: dict[str, tuple[str, str]] = {}
    for subcommand in command.commands.values():
        if isinstance(subcommand, TyperGroup):
            flags |= option_flags(subcommand)
        for param in subcommand.params:
            if isinstance(param, TyperOption) and param.name:
                negative = next(iter(param.secondary_opts), "")
                flags[param.name] = (next(opt for opt in param.opts if opt.startswith("--")), negative)
    return flags


def _as_flag(match: re.Match[str], flags: Flags) -> str:
    name, value = match.group(1), match.group(2)
    flag, negative = flags.get(RENAMED.get(name, name), ("", ""))
    if not flag:
        return match.group(0)  # not an option of the command line: left as the library wrote it
    if value is None or value == "True":
        return flag
    if value == "False":
        return negative or match.group(0)
    return f"{flag} {value.strip(chr(39) + chr(34))}"


def with_flags(message: str, flags: Flags) -> str:
    """``message`` with each argument in backticks written as the command-line flag that sets it."""
    return ARGUMENT.sub(lambda match: _as_flag(match, flags), message)
