"""File naming: scan names (NIfTI stems, DICOM series folders) and where each output of a scan goes."""

from __future__ import annotations

from pathlib import Path

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: Path) -> bool:
    """True when the file name ends in ``.nii`` or ``.nii.gz``."""
    return path.name.endswith(NIFTI_SUFFIXES)


def nifti_stem(path: Path) -> str:
    """The file name without ``.nii`` or ``.nii.gz``."""
    for suffix in sorted(NIFTI_SUFFIXES, key=len, reverse=True):
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def scan_name(path: Path) -> str:
    """The name a scan's outputs take: a DICOM series folder's own name, or a NIfTI file's stem."""
    return path.resolve().name if path.is_dir() else nifti_stem(path)


def mask_path(output_dir: str | Path, source: str | Path) -> Path:
    """Where the mask of ``source`` goes: ``OUTDIR/<name>_seg.nii.gz``."""
    return Path(output_dir) / f"{nifti_stem(Path(source))}_seg.nii.gz"
