"""Every command's help: plain value names (no Python types) and two or three real examples at the end."""

import os
import re
import subprocess
import sys

import pytest
import typer

from medseg.cli import app


def _commands(command, path=()):
    """The command paths of every leaf command (``("sample-data", "ct")``, ``("infer",)``...)."""
    children = getattr(command, "commands", None)
    if not children:
        return [path]
    return [leaf for name, child in children.items() for leaf in _commands(child, (*path, name))]


COMMANDS = _commands(typer.main.get_command(app))


def help_page(*command):
    environment = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "medseg", *command, "--help"], capture_output=True, text=True, env=environment
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_ends_with_examples_and_shows_no_python_types(command):
    page = help_page(*command)
    assert not re.search(r"<(bool|str|int|float|path|list\[\w+\])>", page, re.IGNORECASE), page
    lines = [line.strip() for line in page.splitlines() if line.strip()]
    examples = lines[lines.index("Examples:") + 1 :]
    assert 2 <= len(examples) <= 3
    assert all(re.match(rf"^(\w+=\S+ )?medseg {' '.join(command)}( |$)", line) for line in examples), examples


def test_train_data_lists_every_layout():
    page = " ".join(help_page("train").replace("│", " ").split())  # the lines of the options box, joined
    for layout in ("MSD", "nnU-Net v2", "one file per channel", "images/ + labels/", "case_seg.nii.gz", "CSV"):
        assert layout in page
