"""Fuzzed inputs: whatever the bytes, a reader either accepts a sane input or raises one MedsegError naming the file.

Every target runs twice: bounded (a few examples, each under a deadline) in the default run, and
long under ``pytest -m fuzz``, which prints how many inputs each target tried.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medseg.data import validate
from medseg.data.discover import discover
from medseg.data.validate import check_scan, check_scan_header, grid_of
from medseg.errors import MedsegError
from medseg.io import dicom
from medseg.io.dicom import series_to_nifti

from . import hostile
from .test_dicom import OBLIQUE, ct_volume, write_series

# The memory the readers may let a header claim: an input that gets past the checks must not exhaust the machine.
FUZZ_MEMORY = 256 << 20


@pytest.fixture(scope="module", autouse=True)
def _small_memory():
    with pytest.MonkeyPatch.context() as patch:
        for module in (validate, dicom):
            patch.setattr(module, "available_memory", lambda: FUZZ_MEMORY)
        yield


def _refused_or_sane(action: Callable[[], object], *paths: Path) -> object | None:
    """Run ``action``: return its result, or None for a one-line MedsegError that names one of ``paths``."""
    try:
        return action()
    except MedsegError as error:
        assert error.path in paths, error
        assert "\n" not in str(error) and str(error).startswith(str(error.path))
        return None


def _both_budgets(check: Callable, **strategies: st.SearchStrategy) -> tuple[Callable, Callable]:
    """The bounded and the long (``fuzz``-marked) test of one property."""
    return hostile.BOUNDED(given(**strategies)(check)), pytest.mark.fuzz(hostile.LONG(given(**strategies)(check)))


def _nifti(file: tuple[str, bytes]) -> None:
    hostile.TRIED["NIfTI"] += 1
    suffix, content = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"scan{suffix}"
        path.write_bytes(content)
        header = _refused_or_sane(lambda: check_scan_header(path), path)
        full = _refused_or_sane(lambda: check_scan(path), path)
    for info in (header, full):
        if info is not None:  # accepted: a 3D grid with positive spacing and orthonormal directions
            spacing, direction, _ = grid_of(info.affine)
            assert len(info.shape) == 3 and (spacing > 0).all()
            np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-3)


test_nifti_is_accepted_sane_or_refused, test_nifti_long = _both_budgets(_nifti, file=hostile.nifti_files())


@pytest.fixture(scope="module")
def dicom_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_series(tmp_path_factory.mktemp("dicom") / "series", ct_volume(OBLIQUE))


def _dicom(dicom_series: Path, slice_index: int, how: tuple) -> None:
    hostile.TRIED["DICOM series"] += 1
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "series"
        shutil.copytree(dicom_series, folder)
        target = sorted(folder.iterdir())[slice_index]
        target.write_bytes(hostile.damage(target.read_bytes(), how))
        _refused_or_sane(lambda: series_to_nifti(folder, Path(scratch) / "out.nii.gz"), folder)


test_dicom_is_read_or_refused, test_dicom_long = _both_budgets(
    _dicom, slice_index=st.integers(0, 11), how=hostile.DAMAGE
)


def _assert_inside(dataset, root: Path) -> None:
    for case in [*dataset.training, *dataset.test]:
        for path in [*case.image, *([case.label] if case.label else [])]:
            assert path.resolve().is_relative_to(root.resolve()), path


def _dataset_json(content: bytes) -> None:
    hostile.TRIED["dataset.json"] += 1
    with tempfile.TemporaryDirectory() as scratch:
        root = hostile.hostile_dataset_folder(Path(scratch) / "data", Path(scratch) / "outside")
        (root / "dataset.json").write_bytes(content)
        if (dataset := _refused_or_sane(lambda: discover(root), root / "dataset.json", root)) is not None:
            _assert_inside(dataset, root)


test_dataset_json_is_read_or_refused, test_dataset_json_long = _both_budgets(
    _dataset_json, content=hostile.dataset_descriptions()
)


def _csv(content: bytes) -> None:
    hostile.TRIED["CSV"] += 1
    with tempfile.TemporaryDirectory() as scratch:
        root = hostile.hostile_dataset_folder(Path(scratch) / "data", Path(scratch) / "outside")
        table = root / "cases.csv"
        table.write_bytes(content)
        if (dataset := _refused_or_sane(lambda: discover(table), table, root)) is not None:
            _assert_inside(dataset, root)


test_csv_is_read_or_refused, test_csv_long = _both_budgets(_csv, content=hostile.csv_tables())
