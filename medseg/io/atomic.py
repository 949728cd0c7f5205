"""Write files and folders so that a failure part-way never leaves a partial result behind."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _partial_name(path: Path) -> Path:
    """A hidden sibling of ``path`` that keeps its full extension (``.nii.gz`` stays ``.nii.gz``)."""
    stem, dot, suffixes = path.name.partition(".")
    return path.with_name(f".{stem}.partial-{uuid.uuid4().hex[:8]}{dot}{suffixes}")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Args:
        path: the file to create or replace.

    Yields:
        The temporary path to write to. It is removed if the block raises.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_name(target)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it to ``path`` only if the block succeeds.

    ``path`` must not exist, or be an empty folder (which is replaced).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_name(target)
    partial.mkdir()
    try:
        yield partial
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_file(path) as partial:
        partial.write_text(text, encoding="utf-8")
