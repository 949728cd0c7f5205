"""The scans of a ``medseg infer`` run: files, DICOM series folders, folders of either, and list files.

An input of ``medseg infer`` is one of:

- a NIfTI file (``.nii``, ``.nii.gz``) or an enhanced multi-frame DICOM file: one scan;
- a folder that holds NIfTI files: each of them, by name (sub-folders are not searched);
- a folder whose entries are all folders: each of them is a DICOM series folder;
- any other folder (an empty one too): one DICOM series;
- ``--list FILE``: one path per line (blank lines and ``#`` comments skipped), or a CSV file whose
  header has a ``path`` column and optionally a ``case_id`` column, which names the scan's outputs.
  Relative paths are read from the list file's folder.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import MedsegError
from medseg.io.paths import is_nifti, scan_name


@dataclass(frozen=True)
class ScanRequest:
    """One scan to segment: the input as found, and the name its outputs take (``<name>_seg.nii.gz``)."""

    source: Path
    name: str

    @classmethod
    def of(cls, source: Path, name: str | None = None) -> ScanRequest:
        """The request for ``source``, named ``name`` or, by default, after the file or folder."""
        return cls(source, name or scan_name(source))


def _visible(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def folder_scans(folder: Path) -> list[ScanRequest]:
    """The scans a folder stands for: its NIfTI files, its series sub-folders, or itself as one series.

    An empty folder stands for itself: it fails as a scan (no DICOM series in it), and the others go on.
    """
    entries = _visible(folder)
    niftis = [entry for entry in entries if entry.is_file() and is_nifti(entry)]
    if niftis:
        return [ScanRequest.of(path) for path in niftis]
    if entries and all(entry.is_dir() for entry in entries):
        return [ScanRequest.of(path) for path in entries]
    return [ScanRequest.of(folder)]


def _list_rows(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line number, path, case id or None)`` for each entry of a list file."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = next((line for line in lines if line.strip() and not line.startswith("#")), "")
    columns = [column.strip() for column in header.split(",")]
    if "path" not in columns:
        return [(number, line.strip(), None) for number, line in enumerate(lines, 1) if _is_entry(line)]
    reader = csv.DictReader(line for line in lines if not line.startswith("#"))
    rows = []
    for number, row in enumerate(reader, start=2):
        entry = (row.get("path") or "").strip()
        if entry:
            rows.append((number, entry, (row.get("case_id") or "").strip() or None))
    return rows


def _is_entry(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def list_scans(path: Path) -> list[ScanRequest]:
    """The scans a list file names, in its order.

    Raises:
        MedsegError: the list cannot be read, is empty, or names files that do not exist (the first is named).
    """
    try:
        rows = _list_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise MedsegError(f"cannot read the list of scans ({type(error).__name__}: {error})", path) from None
    if not rows:
        raise MedsegError("lists no scans", path)
    requests = [(number, ScanRequest.of(_resolved(entry, path.parent), case)) for number, entry, case in rows]
    missing = [(number, request.source) for number, request in requests if not request.source.exists()]
    if missing:
        number, source = missing[0]
        more = f" ({len(missing)} entries missing)" if len(missing) > 1 else ""
        raise MedsegError(f"line {number}: no such file or folder: {source}{more}", path)
    return [request for _, request in requests]


def _resolved(entry: str, folder: Path) -> Path:
    candidate = Path(entry).expanduser()
    return candidate if candidate.is_absolute() else folder / candidate


def expand_inputs(inputs: Sequence[str | Path | ScanRequest], lists: Iterable[str | Path] = ()) -> list[ScanRequest]:
    """Every scan that ``inputs`` and the list files ``lists`` stand for, in order.

    A path that does not exist is kept as it is: checking it reports it with the other failures. A
    :class:`ScanRequest` (inputs expanded before) stays as it is.

    Raises:
        MedsegError: a list file that is unreadable, empty or names missing files.
    """
    requests = [request for path in map(Path, lists) for request in list_scans(path)]
    for given in inputs:
        path = given.source if isinstance(given, ScanRequest) else Path(given)
        if isinstance(given, ScanRequest):
            requests.append(given)
        else:
            requests += folder_scans(path) if path.is_dir() else [ScanRequest.of(path)]
    return requests
