"""The ``medseg`` help pages, read as other Unix tools' are: value names in capitals, examples last.

typer shows each parameter's Python type (``<bool>``, ``<list[Path]>``); :func:`tidy_value_names`
gives flags no value name, options click's name of their type (``INTEGER``, ``PATH``, ``TEXT``),
and arguments their own name in capitals (``BUNDLE``, ``INPUTS``). :func:`examples` makes the
epilog of a command's help.
"""

from __future__ import annotations

import re

from typer._click.core import Parameter
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

# click's names for the value types medseg's options take (a list option takes its element's).
VALUE_NAMES = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "Path": "PATH"}


def examples(*command_lines: str) -> str:
    """A help epilog listing example command lines, each a paragraph of its own (typer joins a paragraph's lines)."""
    return "\n\n".join(["Examples:", *(f"  {line}" for line in command_lines)])


def _hide_argument_type(argument: TyperArgument) -> None:
    """Leave the type column of an argument empty: typer shows its Python type there, whatever the metavar."""
    setattr(argument, "display_type_rich", lambda ctx: None)  # noqa: B010 (the method, on this one instance)


def _parameters(command: TyperCommand | TyperGroup) -> list[Parameter]:
    """The command's parameters and its ``--help`` option (which click makes on demand)."""
    help_option = command.get_help_option(command.context_class(command))
    return [*command.params, *([help_option] if help_option is not None else [])]


def tidy_value_names(command: TyperCommand | TyperGroup) -> None:
    """Give every parameter of ``command`` and its subcommands a plain value name, flags none."""
    for subcommand in getattr(command, "commands", {}).values():
        tidy_value_names(subcommand)
    for param in _parameters(command):
        if isinstance(param, TyperOption) and param.metavar is None:
            element = re.sub(r"^list\[(.*)\]$", r"\1", param.bare_type())
            param.metavar = "" if param.is_flag else VALUE_NAMES.get(element, "VALUE")
        elif isinstance(param, TyperArgument):
            param.metavar = param.metavar or (param.name or "value").upper()
            _hide_argument_type(param)
