"""docs/troubleshooting.md lists exactly the messages of the MedsegErrors that medseg raises, as the command
line shows them (the arguments they name written as its flags)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

from medseg.cli import app
from medseg.cli_flags import option_flags, with_flags

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = "…"
# The first cell of a table row: a code span with one or two backticks.
MESSAGE_CELL = re.compile(r"^\| (``? ?)(.+?)\1 \|", re.MULTILINE)


def _templates(node: ast.expr) -> list[str]:
    """The message(s) an argument can produce, with ``…`` for each formatted value; none if not literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)]
    if isinstance(node, ast.IfExp):
        return _templates(node.body) + _templates(node.orelse)
    return []


def _raised_messages() -> set[str]:
    messages = set()
    for path in (ROOT / "medseg").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MedsegError" and node.args:
                messages.update(_templates(node.args[0]))
    return messages


def test_troubleshooting_lists_every_raised_message() -> None:
    page = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    documented = {match.group(2) for match in MESSAGE_CELL.finditer(page)}
    flags = option_flags(typer.main.get_command(app))
    code = {with_flags(message, flags) for message in _raised_messages()}
    assert len(code) > 50, "the message extraction found too little"
    assert not code - documented, f"raised but not in docs/troubleshooting.md: {sorted(code - documented)}"
    assert not documented - code, f"in docs/troubleshooting.md but raised nowhere: {sorted(documented - code)}"
