"""``open_in_slicer.py``: a 3D Slicer Python snippet that loads each scan with its segmentation.

Paste it into Slicer's Python console, or start Slicer with ``Slicer --python-script open_in_slicer.py``.
A scan given as a DICOM series folder is loaded from its first slice; Slicer's volume reader reads the whole
series from it. The segmentation is the ``.seg.nrrd`` (names, colours, terminology) where there is one,
otherwise the ``_seg.nii.gz`` mask.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import MedsegError
from medseg.io.atomic import write_text
from medseg.io.paths import MASK_SUFFIX, NIFTI_SUFFIXES, SLICER_SCRIPT, CaseFiles
from medseg.io.stats import read_case_stats


@dataclass(frozen=True)
class SlicerCase:
    """One scan and the segmentation to show on it.

    Args:
        scan: a NIfTI file or a DICOM series folder.
        segmentation: a ``.seg.nrrd`` or ``_seg.nii.gz`` file.
    """

    scan: Path
    segmentation: Path


def _volume_file(scan: Path) -> Path:
    """The file Slicer loads a scan from: the file itself, or a DICOM folder's first slice (or multi-frame file)."""
    if not scan.is_dir():
        return scan
    from medseg.io.dicom import find_image

    return Path(find_image(scan).files[0])


def _literal(path: Path) -> str:
    """A Python string literal of the absolute path (JSON's escapes are Python's too)."""
    return json.dumps(str(path.resolve()), ensure_ascii=False)


def slicer_snippet(cases: Sequence[SlicerCase]) -> str:
    """Slicer Python code that loads every case: ``slicer.util.loadVolume`` then ``loadSegmentation``."""
    lines = [
        "# Made by medseg: load each scan and its segmentation into 3D Slicer (paste into the Python console).",
        "import slicer",
        "",
        "cases = [",
        *(f"    ({_literal(_volume_file(c.scan))}, {_literal(c.segmentation)})," for c in cases),
        "]",
        "for scan, segmentation in cases:",
        "    volume = slicer.util.loadVolume(scan)",
        "    slicer.util.loadSegmentation(segmentation)",
        "    slicer.util.setSliceViewerLayers(background=volume, fit=True)",
    ]
    return "\n".join(lines) + "\n"


def write_slicer_script(output_dir: str | Path, cases: Sequence[SlicerCase]) -> Path:
    """Write :func:`slicer_snippet` to ``OUTDIR/open_in_slicer.py`` atomically."""
    path = Path(output_dir) / SLICER_SCRIPT
    write_text(path, slicer_snippet(cases))
    return path


def _scan_in(folder: Path, name: str) -> Path | None:
    candidates = [folder / f"{name}{suffix}" for suffix in NIFTI_SUFFIXES] + [folder / name]
    return next((path for path in candidates if path.exists()), None)


def _scan_of(files: CaseFiles, scan_dir: Path | None) -> Path:
    if scan_dir is not None:
        found = _scan_in(scan_dir, files.name)
        if found is None:
            raise MedsegError(f"no scan named {files.name} (.nii, .nii.gz or a DICOM folder) in {scan_dir}", files.mask)
        return found
    if not files.stats.is_file():
        raise MedsegError(f"no {files.stats.name} records its scan; pass `scan_dir`", files.mask)
    scan = Path(read_case_stats(files.stats)["scan"])
    if not scan.exists():
        raise MedsegError(f"its scan {scan} is gone; pass `scan_dir`", files.mask)
    return scan


def find_cases(output_dir: str | Path, scan_dir: str | Path | None = None) -> list[SlicerCase]:
    """Every case in ``OUTDIR`` (each ``<name>_seg.nii.gz``) with its scan.

    Args:
        output_dir: a ``medseg infer`` output folder.
        scan_dir: where to look for ``<name>.nii.gz``, ``<name>.nii`` or a DICOM folder ``<name>``;
            None: take the scan recorded in ``<name>_stats.json``.

    Raises:
        MedsegError: no masks in the folder, or a case whose scan cannot be found.
    """
    output = Path(output_dir)
    masks = sorted(output.glob(f"*{MASK_SUFFIX}"))
    if not masks:
        raise MedsegError(f"no *{MASK_SUFFIX} masks here", output)
    cases = []
    for mask in masks:
        files = CaseFiles.of_mask(mask)
        segmentation = files.segmentation if files.segmentation.is_file() else mask
        cases.append(SlicerCase(_scan_of(files, None if scan_dir is None else Path(scan_dir)), segmentation))
    return cases
