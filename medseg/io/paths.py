"""File naming: scan names (NIfTI stems, DICOM series folders) and where each output of a scan goes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medseg.errors import MedsegError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MASK_SUFFIX = "_seg.nii.gz"
STATS_SUFFIX = "_stats.json"
# Run-level files in OUTDIR, written at the end of ``medseg infer``.
STATS_TABLE = "stats.csv"
REPORT_PAGE = "report.html"
SLICER_SCRIPT = "open_in_slicer.py"


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


@dataclass(frozen=True)
class ScanInput:
    """A scan as given and as segmented.

    Args:
        source: the input as given: a NIfTI file, a DICOM folder or a multi-frame DICOM file.
        path: the NIfTI the bundle reads (``source``, or its conversion).
        modality: the modality the file records (``CT``, ``MR``, ``PT``: DICOM), or None (NIfTI records none).
    """

    source: Path
    path: Path
    modality: str | None = None


@dataclass(frozen=True)
class CaseFiles:
    """Where the outputs of one scan named ``name`` go in ``output_dir``."""

    output_dir: Path
    name: str

    @classmethod
    def of_mask(cls, mask: Path) -> CaseFiles:
        """The case whose mask is ``mask`` (``<name>_seg.nii.gz``)."""
        return cls(mask.parent, mask.name.removesuffix(MASK_SUFFIX))

    @property
    def mask(self) -> Path:
        """``<name>_seg.nii.gz``: the uint8 label map on the scan's grid."""
        return self.output_dir / f"{self.name}{MASK_SUFFIX}"

    @property
    def segmentation(self) -> Path:
        """``<name>.seg.nrrd``: the Slicer segmentation."""
        return self.output_dir / f"{self.name}.seg.nrrd"

    @property
    def dicom_seg(self) -> Path:
        """``<name>_seg.dcm``: the DICOM SEG, for a scan that was a DICOM series."""
        return self.output_dir / f"{self.name}_seg.dcm"

    @property
    def stats(self) -> Path:
        """``<name>_stats.json``: volumes, lesions and burden."""
        return self.output_dir / f"{self.name}{STATS_SUFFIX}"

    @property
    def overlay(self) -> Path:
        """``<name>_overlay.png``: three slices with the mask outlined."""
        return self.output_dir / f"{self.name}_overlay.png"

    @property
    def viewer(self) -> Path:
        """``<name>_viewer.json``: the scan and mask, made small, for the report's slice viewer."""
        return self.output_dir / f"{self.name}_viewer.json"


def cases_in(output_dir: Path) -> list[CaseFiles]:
    """Every case in ``output_dir`` that has both its mask and its statistics, by name: this run's and earlier runs'."""
    names = sorted(stats.name.removesuffix(STATS_SUFFIX) for stats in output_dir.glob(f"*{STATS_SUFFIX}"))
    return [case for case in (CaseFiles(output_dir, name) for name in names) if case.mask.is_file()]


def mask_path(output_dir: str | Path, source: str | Path) -> Path:
    """Where the mask of ``source`` goes: ``OUTDIR/<name>_seg.nii.gz``."""
    return CaseFiles(Path(output_dir), nifti_stem(Path(source))).mask


def color_table_path(output_dir: str | Path, bundle_name: str) -> Path:
    """Where a bundle's Slicer colour table goes: ``OUTDIR/<bundle>_colors.ctbl``."""
    return Path(output_dir) / f"{bundle_name}_colors.ctbl"


def check_output_folder(path: str | Path) -> None:
    """Refuse an output folder that is a file, or lies inside one, before any work starts.

    Raises:
        MedsegError: naming the file in the way.
    """
    path = Path(path)
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise MedsegError("is a file, not a folder; name a folder for the output", existing)
