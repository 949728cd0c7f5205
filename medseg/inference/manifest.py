"""``OUTDIR/manifest.jsonl``: what a ``medseg infer`` run did to each scan, so that a re-run resumes.

The manifest is append-only JSON lines, each flushed and fsync'ed as it is written: a run killed at
any moment leaves every earlier line whole, and at worst a torn last line, which reading skips.
Each line records one scan's state at one moment::

    {"input": "/data/a.nii.gz", "name": "a", "fingerprint": "1234:1700000000000000000",
     "run": "<hash of the settings>", "state": "done", "outputs": ["a_seg.nii.gz", ...],
     "error": null, "seconds": 3.2, "time": "2026-01-01T00:00:00+00:00"}

``state`` is ``pending`` (queued by a run), ``done`` or ``failed``. The last line of an input is its
state. A re-run skips an input whose last line is ``done`` with the same fingerprint (the input's
size and modification time) and the same settings (bundle, weights, options), and whose mask is
there; it retries ``failed`` ones only when asked (``--retry-failed``); it segments everything else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.jsonl"
STATES = ("pending", "done", "failed")


def fingerprint(path: Path) -> str:
    """``size:mtime_ns`` of a file; of a folder (a DICOM series), the file count, total size and latest mtime.

    A path that cannot be read is ``missing``: it fails, and is tried again once it is there.
    """
    try:
        return _fingerprint(path)
    except OSError:
        return "missing"


def _fingerprint(path: Path) -> str:
    if not path.is_dir():
        stat = path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    stats = [entry.stat() for entry in path.rglob("*") if entry.is_file()]
    latest = max((stat.st_mtime_ns for stat in stats), default=0)
    return f"{len(stats)}:{sum(stat.st_size for stat in stats)}:{latest}"


@dataclass(frozen=True)
class Entry:
    """One line of the manifest: a scan's state (see the module's docstring)."""

    input: str
    name: str
    fingerprint: str
    run: str
    state: str
    outputs: tuple[str, ...] = ()
    error: str | None = None
    seconds: float | None = None
    time: str = ""

    def as_json(self) -> str:
        """The entry as one JSON line (no newline)."""
        record = {**self.__dict__, "outputs": list(self.outputs)}
        return json.dumps(record, ensure_ascii=False)


def _entry(line: str) -> Entry | None:
    """The entry a line holds, or None for a torn or foreign line."""
    try:
        record = json.loads(line)
        record["outputs"] = tuple(record.get("outputs") or ())
        entry = Entry(**record)
    except (ValueError, TypeError):
        return None
    return entry if entry.state in STATES else None


class Manifest:
    """The manifest of one output folder: read once, appended to as scans finish.

    Only the process that runs the pipeline writes it (under Ray, the driver), one line at a time.
    """

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / MANIFEST
        self.history: list[Entry] = []
        if self.path.is_file():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self.history = [entry for entry in map(_entry, text.splitlines()) if entry is not None]
        self.latest: dict[str, Entry] = {entry.input: entry for entry in self.history}

    def append(self, entries: Iterable[Entry]) -> None:
        """Append ``entries`` and fsync them before returning."""
        lines = "".join(entry.as_json() + "\n" for entry in entries)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as file:
            if file.tell() and not self._ends_in_newline():  # a torn last line stays a line of its own
                file.write("\n")
            file.write(lines)
            file.flush()
            os.fsync(file.fileno())
        for entry in map(_entry, lines.splitlines()):
            assert entry is not None
            self.history.append(entry)
            self.latest[entry.input] = entry

    def _ends_in_newline(self) -> bool:
        with open(self.path, "rb") as file:
            file.seek(-1, os.SEEK_END)
            return file.read(1) == b"\n"

    def is_finished(self, source: str, print_: str, run: str, outputs_dir: Path, retry_failed: bool) -> bool:
        """Whether a re-run leaves ``source`` alone: done with these inputs and settings, or failed and not retried."""
        entry = self.latest.get(source)
        if entry is None or entry.fingerprint != print_ or entry.run != run:
            return False
        if entry.state == "failed":
            return not retry_failed
        return entry.state == "done" and all((outputs_dir / name).is_file() for name in entry.outputs)


def now() -> str:
    """The time now, for an entry: ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_key(settings: Mapping[str, Any], weights: Sequence[str]) -> str:
    """A short hash of what makes a mask what it is: the config overrides and options, and the weights files."""
    import hashlib

    files = [(path, fingerprint(Path(path))) for path in weights]
    text = json.dumps({"settings": settings, "weights": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
