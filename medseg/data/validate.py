"""Checks on scans and datasets, each problem reported as one line that names the file.

:func:`check_scan` checks one scan before inference. :func:`check_dataset` reads every case of a
dataset once, checks it, and gathers the statistics the fingerprint is made of.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.data.discover import Case, Dataset
from medseg.data.header import check_fits, check_header
from medseg.errors import MedsegError
from medseg.io.fast_nifti import load_nifti
from medseg.io.paths import is_nifti
from medseg.memory import available_memory

# Two grids match when spacing and origin agree to within this (mm) and directions to within 1e-4.
GRID_TOLERANCE_MM = 1e-3
DIRECTION_TOLERANCE = 1e-4
FOREGROUND_SAMPLES = 10_000
# A label map with more distinct values than this is an image, whatever its data type.
MAX_LABEL_VALUES = 256
LISTED_VALUES = 10  # values named in one problem line; the rest are counted
# What nibabel loads from a .nii file that is not a volume, in words.
NOT_VOLUMES = {"Cifti2Image": "a CIFTI-2 file (data on brain surfaces and grey-ordinates)"}
READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    MemoryError,
    OverflowError,
    zlib.error,
    nib.filebasedimages.ImageFileError,
    nib.spatialimages.HeaderDataError,
)


@dataclass(frozen=True)
class ScanInfo:
    """What was learnt about a readable scan.

    Args:
        path: the file.
        shape: spatial shape ``(X, Y, Z)``.
        channels: number of channels (the 4th dimension, 1 for a plain 3D scan).
        affine: ``(4, 4)`` voxel-to-RAS affine.
        voxel_bytes: bytes per voxel as medseg's outputs hold the scan: the stored size of unscaled
            integer voxels (2 for a CT's int16), else 4 (float32).
    """

    path: Path
    shape: tuple[int, int, int]
    channels: int
    affine: np.ndarray
    voxel_bytes: int = 4


def held_voxel_bytes(dtype: np.dtype, scaled: bool) -> int:
    """:attr:`ScanInfo.voxel_bytes` of voxels stored as ``dtype``, ``scaled`` by a slope or intercept or not."""
    return dtype.itemsize if np.issubdtype(dtype, np.integer) and not scaled else 4


def _open(path: Path) -> nib.Nifti1Image:
    """``nib.load``, without nibabel's log lines about headers it repairs: medseg reports the problem itself.

    Raises:
        MedsegError: the file is a NIfTI container of something that is not a volume (CIFTI-2).
    """
    logger = nib.imageglobals.logger
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        image = nib.load(path)
    finally:
        logger.setLevel(level)
    if not isinstance(image, nib.Nifti1Image):  # nibabel's NIfTI-2 images are Nifti1Image subclasses
        kind = NOT_VOLUMES.get(type(image).__name__, f"a {type(image).__name__} file")
        raise MedsegError(f"is {kind}, not a volume scan", path)
    return image


def _load(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Read a NIfTI header and all of its voxels, or fail with one line."""
    if not path.exists():
        raise MedsegError("file not found", path)
    if not path.is_file():
        raise MedsegError("not a file", path)
    if not is_nifti(path):
        raise MedsegError("not a NIfTI file (expected .nii or .nii.gz)", path)
    try:
        image = _open(path)
        check_header(image, path)
        check_fits(image, path, available_memory())
        return image, np.asanyarray(image.dataobj)
    except READ_ERRORS as error:
        raise MedsegError(f"cannot read NIfTI ({error})", path) from None


def _channels_of(data: np.ndarray | tuple[int, ...], path: Path, expected: int | None) -> int:
    """Channel count of a 3D or 4D (channel-last) array or shape; raise if it is not what is expected."""
    shape = tuple(data.shape if isinstance(data, np.ndarray) else data)
    dims = " x ".join(map(str, shape))
    if len(shape) not in (3, 4):
        raise MedsegError(f"has {len(shape)} dimensions ({dims}); expected a 3D scan", path)
    found = 1 if len(shape) == 3 else shape[3]
    if expected is not None and found != expected:
        wanted = "a 3D scan" if expected == 1 else f"{expected} channels in the 4th dimension"
        raise MedsegError(f"has shape {dims}; expected {wanted}", path)
    return found


def check_scan(path: str | Path, *, channels: int = 1) -> ScanInfo:
    """Read a NIfTI scan completely and check that a bundle can use it.

    Args:
        path: the scan.
        channels: channels the bundle expects; 1 means a 3D scan (a 4th axis of length 1 is allowed).

    Raises:
        MedsegError: missing or unreadable file, truncated data, wrong number of dimensions or
            channels, or non-finite voxel values.
    """
    path = Path(path)
    image, data = _load(path)
    found = _channels_of(data, path, channels)
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise MedsegError("contains NaN or infinite voxel values", path)
    shape = tuple(int(s) for s in data.shape[:3])
    return ScanInfo(path, shape, found, image.affine, held_voxel_bytes(data.dtype, scaled=False))  # type: ignore[arg-type]


def _gzip_size(path: Path) -> int:
    """The uncompressed size (mod 2**32) a gzip file's trailer records."""
    with path.open("rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return int.from_bytes(handle.read(4), "little")


def check_scan_header(path: str | Path, *, channels: int = 1) -> ScanInfo:
    """Check a NIfTI scan without decompressing its voxels: header, dimensions, channels, length.

    A truncated ``.nii`` is shorter than its header says; a truncated ``.nii.gz`` has a gzip
    trailer whose recorded size does not match the header's. Corruption inside the compressed
    data is found later, when the voxels are read.

    Raises:
        MedsegError: missing, unreadable or truncated file, wrong dimensions or channels, or a bad
            grid or intensity scaling (:func:`medseg.data.header.check_header`).
    """
    path = Path(path)
    if not path.is_file():
        raise MedsegError("file not found" if not path.exists() else "not a file", path)
    if not is_nifti(path):
        raise MedsegError("not a NIfTI file (expected .nii or .nii.gz)", path)
    try:
        image = _open(path)
        header = image.header
        offset = image.dataobj.offset  # type: ignore[attr-defined]  # a file's voxels: an ArrayProxy, which has one
        expected = int(offset) + int(np.prod(image.shape)) * header.get_data_dtype().itemsize
    except READ_ERRORS as error:
        raise MedsegError(f"cannot read NIfTI ({error})", path) from None
    found = _channels_of(tuple(image.shape), path, channels)
    check_header(image, path)
    if path.name.endswith(".gz"):
        recorded = _gzip_size(path)
        if recorded != expected % 2**32:
            raise MedsegError(f"cannot read NIfTI (truncated or corrupt: {expected} bytes expected)", path)
    elif path.stat().st_size < expected:
        raise MedsegError(f"cannot read NIfTI (truncated: {path.stat().st_size} of {expected} bytes)", path)
    proxy = image.dataobj  # nibabel moves the header's scaling onto the proxy of the voxels
    scaled = getattr(proxy, "slope", 1) != 1 or getattr(proxy, "inter", 0) != 0
    held = held_voxel_bytes(header.get_data_dtype(), scaled=scaled)
    shape = tuple(int(s) for s in image.shape[:3])
    return ScanInfo(path, shape, found, image.affine, held)  # type: ignore[arg-type]


def check_finite_voxels(path: Path) -> None:
    """Read a floating-point scan's voxels and refuse NaN or infinite values (integer scans hold none).

    Raises:
        MedsegError: non-finite voxels, or compressed data that cannot be read.
    """
    if not np.issubdtype(_open(path).get_data_dtype(), np.floating):
        return
    try:
        data = load_nifti(path).dataobj
    except READ_ERRORS as error:
        raise MedsegError(f"cannot read NIfTI ({error})", path) from None
    if not np.isfinite(data).all():
        raise MedsegError("contains NaN or infinite voxel values", path)


def grid_of(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(spacing (3,), direction (3, 3), origin (3,))`` of a voxel-to-world affine."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    return spacing, affine[:3, :3] / spacing, affine[:3, 3]


def grid_difference(shape_a: tuple, affine_a: np.ndarray, shape_b: tuple, affine_b: np.ndarray) -> str | None:
    """How two voxel grids differ (shape, spacing, origin or direction), or None if they match."""
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        return f"shape {tuple(shape_a[:3])} vs {tuple(shape_b[:3])}"
    spacing_a, direction_a, origin_a = grid_of(affine_a)
    spacing_b, direction_b, origin_b = grid_of(affine_b)
    if not np.allclose(spacing_a, spacing_b, atol=GRID_TOLERANCE_MM, rtol=0):
        return f"spacing {np.round(spacing_a, 4).tolist()} vs {np.round(spacing_b, 4).tolist()} mm"
    if not np.allclose(origin_a, origin_b, atol=GRID_TOLERANCE_MM, rtol=0):
        return f"origin {np.round(origin_a, 3).tolist()} vs {np.round(origin_b, 3).tolist()} mm"
    if not np.allclose(direction_a, direction_b, atol=DIRECTION_TOLERANCE, rtol=0):
        return "direction cosines differ"
    return None


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset.

    Args:
        path: the file it concerns.
        check: short name of the check (``grid``, ``label values``, ...).
        message: what is wrong.
        severity: ``"error"`` (training refuses the dataset) or ``"warning"``.
    """

    path: Path
    check: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


@dataclass
class CaseStats:
    """What one readable case contributes to the dataset fingerprint.

    Args:
        id: the case id.
        shape: spatial shape ``(X, Y, Z)``.
        spacing: voxel size (mm).
        label_ml: volume (mL) of each label value present, background excluded.
        foreground: ``(N, C)`` image values sampled inside the labelled foreground.
    """

    id: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    label_ml: dict[int, float]
    foreground: np.ndarray


@dataclass
class CaseReport:
    """The result of checking one case: its problems, and its statistics if it was readable."""

    case: Case
    problems: list[Problem] = field(default_factory=list)
    stats: CaseStats | None = None


def _read_image(case: Case, channels: int | None) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Image voxels ``(X, Y, Z, C)``, affine and spatial shape; channels from one file or several."""
    arrays: list[np.ndarray] = []
    affine: np.ndarray | None = None
    shape: tuple[int, ...] = ()
    for path in case.image:
        image, data = _load(path)
        _channels_of(data, path, 1 if len(case.image) > 1 else channels)
        if affine is not None and (difference := grid_difference(shape, affine, data.shape, image.affine)):
            raise MedsegError(f"channel grid differs from {case.image[0].name}: {difference}", path)
        affine, shape = image.affine, data.shape[:3]
        arrays.append(data.reshape(*data.shape[:3], -1))
    if len(case.image) > 1 and channels is not None and len(case.image) != channels:
        raise MedsegError(f"has {len(case.image)} channel files; expected {channels}", case.image[0])
    assert affine is not None  # a case has at least one image file (discovery makes none without)
    return np.concatenate(arrays, axis=3), affine, shape


def _listed(values: Sequence[int]) -> str:
    """Values as ``[a, b, c]``, cut after :data:`LISTED_VALUES` with the count: one line whatever the list."""
    shown = ", ".join(map(str, values[:LISTED_VALUES]))
    return f"[{shown}]" if len(values) <= LISTED_VALUES else f"[{shown}, ...] ({len(values)} values)"


def _label_problems(label: np.ndarray, path: Path, allowed: set[int] | None) -> list[Problem]:
    """A label map holds a few non-negative whole numbers (those of the label set, when there is one)."""
    problems = []
    if np.issubdtype(label.dtype, np.floating):
        if not np.isfinite(label).all():
            return [Problem(path, "non-finite", "label contains NaN or infinite values")]
        if not np.array_equal(label, np.round(label)):
            return [Problem(path, "label values", "label values are not integers")]
    values = sorted(int(v) for v in np.unique(label))
    if len(values) > MAX_LABEL_VALUES:
        message = f"label map has {len(values)} distinct values {_listed(values)}: an image rather than labels?"
        return [Problem(path, "label values", message)]
    if negative := [v for v in values if v < 0]:
        message = f"label values must be non-negative whole numbers; found {_listed(negative)}"
        return [Problem(path, "label values", message)]
    if allowed is not None and (unknown := sorted(set(values) - allowed)):
        message = f"label values {_listed(unknown)} are not in the label set {_listed(sorted(allowed))}"
        problems.append(Problem(path, "label values", message))
    if set(values) <= {0}:
        problems.append(Problem(path, "empty label", "label has no foreground voxels", "warning"))
    return problems


def inspect_case(case: Case, labels: set[int] | None = None, channels: int | None = None) -> CaseReport:
    """Check one case and gather its statistics.

    Args:
        case: the case; its label may be missing (``None``) for a test case.
        labels: allowed label values (background included), or None to accept any integer.
        channels: expected number of image channels, or None to accept any.
    """
    report = CaseReport(case)
    try:
        image, affine, shape = _read_image(case, channels)
    except MedsegError as error:
        report.problems.append(Problem(error.path or case.image[0], "unreadable", error.problem))
        return report
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        report.problems.append(Problem(case.image[0], "non-finite", "image contains NaN or infinite values"))
        return report
    if case.label is None:
        return report
    try:
        label_image, label = _load(case.label)
        if label.ndim == 4 and label.shape[3] == 1:
            label = label[..., 0]
        if label.ndim != 3:
            raise MedsegError(f"label has shape {' x '.join(map(str, label.shape))}; expected 3D", case.label)
    except MedsegError as error:
        report.problems.append(Problem(case.label, "unreadable", error.problem))
        return report
    if difference := grid_difference(shape, affine, label.shape, label_image.affine):
        message = f"label grid differs from the image's: {difference}"
        report.problems.append(Problem(case.label, "grid", message))
        return report
    report.problems += _label_problems(label, case.label, labels)
    if any(p.severity == "error" for p in report.problems):
        return report
    report.stats = _case_stats(case, image, np.asarray(label, np.int64), affine)
    return report


def _case_stats(case: Case, image: np.ndarray, label: np.ndarray, affine: np.ndarray) -> CaseStats:
    spacing = tuple(float(s) for s in grid_of(affine)[0])
    voxel_ml = float(np.prod(spacing)) / 1000
    values, counts = np.unique(label, return_counts=True)
    foreground = image[label > 0]
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    if len(foreground) > FOREGROUND_SAMPLES:
        foreground = foreground[rng.choice(len(foreground), FOREGROUND_SAMPLES, replace=False)]
    return CaseStats(
        case.id,
        tuple(int(s) for s in label.shape),  # type: ignore[arg-type]
        spacing,  # type: ignore[arg-type]
        {int(v): float(c) * voxel_ml for v, c in zip(values, counts, strict=True) if v != 0},
        foreground.astype(np.float32),
    )


def _duplicates(cases: Sequence[Case]) -> list[Problem]:
    problems = []
    images = [path for case in cases for path in case.image]
    labels = [case.label for case in cases if case.label is not None]
    for kind, paths in (("image", images), ("label", labels)):
        for path, count in Counter(paths).items():
            if count > 1:
                problems.append(Problem(path, "duplicate", f"{kind} file is listed {count} times"))
    for case_id, count in Counter(c.id for c in cases).items():
        if count > 1:
            first = next(case for case in cases if case.id == case_id)
            message = f"case id {case_id!r} is used by {count} cases"
            problems.append(Problem(first.image[0], "duplicate", message))
    return problems


@dataclass
class DatasetReport:
    """Every problem found in a dataset, and the statistics of its readable labelled cases."""

    dataset: Dataset
    problems: list[Problem]
    stats: list[CaseStats]

    @property
    def errors(self) -> list[Problem]:
        """Problems that stop training."""
        return [p for p in self.problems if p.severity == "error"]

    def summary(self) -> list[tuple[str, int, int]]:
        """``(check, errors, warnings)`` for each check that found something."""
        counts: dict[str, list[int]] = {}
        for problem in self.problems:
            counts.setdefault(problem.check, [0, 0])[problem.severity != "error"] += 1
        return [(check, e, w) for check, (e, w) in sorted(counts.items())]


def _inspect(job: tuple[Case, set[int] | None, int | None]) -> CaseReport:
    return inspect_case(*job)


def check_dataset(
    dataset: Dataset,
    *,
    labels: set[int] | None = None,
    channels: int | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> DatasetReport:
    """Check every case of a dataset (training and test) and gather fingerprint statistics.

    Args:
        dataset: the discovered dataset.
        labels: allowed label values; defaults to the dataset's declared labels.
        channels: expected image channels; defaults to the dataset's declared channel count.
        workers: processes to read with (default: up to 2).
        progress: called with the number of cases checked so far.
    """
    allowed = labels if labels is not None else (set(dataset.labels) if dataset.labels else None)
    expected = channels if channels is not None else dataset.channels
    cases = [*dataset.training, *dataset.test]
    problems = _duplicates(cases)
    problems += [Problem(path, "missing pair", "no matching image or label file") for path in dataset.orphans]
    stats = []
    jobs = [(case, allowed, expected) for case in cases]
    with ProcessPoolExecutor(max_workers=workers or min(2, os.cpu_count() or 1)) as pool:
        for done, report in enumerate(pool.map(_inspect, jobs), start=1):
            problems += report.problems
            if report.stats is not None and report.case in dataset.training:
                stats.append(report.stats)
            if progress is not None:
                progress(done)
    return DatasetReport(dataset, problems, stats)
