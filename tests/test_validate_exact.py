"""Exact answers of the dataset checks on tiny hand-made cases: problems, volumes, counts, order."""

import gzip
import io
import logging
from pathlib import Path
from typing import ClassVar

import nibabel as nib
import numpy as np
import pytest

from medseg.data import validate
from medseg.data.discover import Case, Dataset
from medseg.data.validate import (
    FOREGROUND_SAMPLES,
    DatasetReport,
    Problem,
    check_dataset,
    inspect_case,
)
from medseg.errors import MedsegError
from medseg.io.nifti import write_nifti

SPACING = np.diag([2.0, 1.0, 0.5, 1.0])  # one voxel is 1 mm3 = 0.001 mL
IMAGE = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
LABEL = np.zeros((2, 3, 4), np.uint8)
LABEL[0, 0, :3] = 1  # three voxels of label 1
LABEL[1, 2, :] = 2  # four voxels of label 2
LABEL[1, 1, 0] = 2  # and a fifth


def _write(path: Path, data: np.ndarray, affine: np.ndarray = SPACING) -> Path:
    return write_nifti(path, data, affine)


def _problems(report) -> list[tuple[str, str, str, str]]:
    return [(p.path.name, p.check, p.message, p.severity) for p in report.problems]


def test_case_statistics_worked_out_by_hand(tmp_path):
    case = Case("a", (_write(tmp_path / "a.nii", IMAGE),), _write(tmp_path / "a_seg.nii", LABEL))
    report = inspect_case(case)
    assert report.problems == []
    stats = report.stats
    assert (stats.id, stats.shape, stats.spacing) == ("a", (2, 3, 4), (2.0, 1.0, 0.5))
    assert stats.label_ml == {1: pytest.approx(0.003), 2: pytest.approx(0.005)}
    assert stats.foreground.dtype == np.float32 and stats.foreground.shape == (8, 1)
    np.testing.assert_array_equal(stats.foreground[:, 0], [0, 1, 2, 16, 20, 21, 22, 23])


def test_a_label_with_a_fourth_axis_of_one_is_a_3d_label(tmp_path):
    case = Case("a", (_write(tmp_path / "a.nii", IMAGE),), _write(tmp_path / "a_seg.nii", LABEL[..., None]))
    report = inspect_case(case)
    assert report.problems == [] and report.stats.label_ml == {1: pytest.approx(0.003), 2: pytest.approx(0.005)}
    two = _write(tmp_path / "b_seg.nii", np.stack([LABEL, LABEL], axis=-1))
    report = inspect_case(Case("b", case.image, two))
    assert _problems(report) == [("b_seg.nii", "unreadable", "label has shape 2 x 3 x 4 x 2; expected 3D", "error")]
    assert report.stats is None


def test_an_empty_label_is_a_warning_and_still_counted(tmp_path):
    case = Case("a", (_write(tmp_path / "a.nii", IMAGE),), _write(tmp_path / "a_seg.nii", np.zeros_like(LABEL)))
    report = inspect_case(case)
    assert _problems(report) == [("a_seg.nii", "empty label", "label has no foreground voxels", "warning")]
    assert report.stats.label_ml == {} and report.stats.foreground.shape == (0, 1)


def test_a_test_case_without_label_has_no_statistics(tmp_path):
    report = inspect_case(Case("a", (_write(tmp_path / "a.nii", IMAGE),)))
    assert report.problems == [] and report.stats is None


def test_foreground_is_sampled_only_beyond_the_limit(tmp_path):
    side = int(np.ceil(FOREGROUND_SAMPLES ** (1 / 3))) + 1
    image = np.arange(side**3, dtype=np.float32).reshape(side, side, side)
    for count, expected in [(FOREGROUND_SAMPLES, FOREGROUND_SAMPLES), (FOREGROUND_SAMPLES + 1, FOREGROUND_SAMPLES)]:
        label = (np.arange(side**3) < count).astype(np.uint8).reshape(side, side, side)
        stats = validate._case_stats(Case("c", ()), image[..., None], label.astype(np.int64), np.eye(4))
        assert stats.foreground.shape == (expected, 1)
        if count == FOREGROUND_SAMPLES:  # all of them, in voxel order
            np.testing.assert_array_equal(stats.foreground[:, 0], image[label > 0])
        else:  # distinct voxels of the foreground
            assert len(np.unique(stats.foreground)) == FOREGROUND_SAMPLES
            assert set(stats.foreground[:, 0].tolist()) <= set(image[label > 0].tolist())


def test_channel_files_are_stacked_in_order(tmp_path):
    files = (_write(tmp_path / "a_0000.nii", IMAGE), _write(tmp_path / "a_0001.nii", IMAGE + 100))
    label = _write(tmp_path / "a_seg.nii", LABEL)
    image, affine, shape = validate._read_image(Case("a", files, label), 2)
    assert image.shape == (2, 3, 4, 2) and shape == (2, 3, 4)
    np.testing.assert_array_equal(image[..., 1], IMAGE + 100)
    np.testing.assert_array_equal(affine, SPACING)
    report = inspect_case(Case("a", files, label), channels=2)
    assert report.problems == [] and report.stats.foreground.shape == (8, 2)
    np.testing.assert_array_equal(report.stats.foreground[0], [0, 100])
    report = inspect_case(Case("a", files, label), channels=3)
    assert _problems(report) == [("a_0000.nii", "unreadable", "has 2 channel files; expected 3", "error")]
    assert inspect_case(Case("a", files, label)).problems == []  # any channel count when none is declared


def test_each_channel_file_must_be_3d_and_on_the_first_ones_grid(tmp_path):
    first = _write(tmp_path / "a_0000.nii", IMAGE)
    four = _write(tmp_path / "a_0001.nii", np.stack([IMAGE, IMAGE], axis=-1))
    report = inspect_case(Case("a", (first, four)), channels=2)
    assert _problems(report) == [("a_0001.nii", "unreadable", "has shape 2 x 3 x 4 x 2; expected a 3D scan", "error")]
    moved = _write(tmp_path / "a_0002.nii", IMAGE, SPACING @ np.diag([1.0, 1.0, 2.0, 1.0]))
    report = inspect_case(Case("a", (first, moved)), channels=2)
    assert _problems(report) == [
        (
            "a_0002.nii",
            "unreadable",
            "channel grid differs from a_0000.nii: spacing [2.0, 1.0, 0.5] vs [2.0, 1.0, 1.0] mm",
            "error",
        )
    ]
    one = _write(tmp_path / "b.nii", np.stack([IMAGE, IMAGE], axis=-1))
    assert validate._read_image(Case("b", (one,)), None)[0].shape == (2, 3, 4, 2)
    assert validate._read_image(Case("b", (one,)), 2)[0].shape == (2, 3, 4, 2)  # one 4D file (MSD)


def test_a_nan_image_stops_the_case(tmp_path):
    data = IMAGE.copy()
    data[1, 1, 1] = np.nan
    case = Case("a", (_write(tmp_path / "a.nii", data),), _write(tmp_path / "a_seg.nii", LABEL))
    report = inspect_case(case)
    assert _problems(report) == [("a.nii", "non-finite", "image contains NaN or infinite values", "error")]
    assert report.stats is None


def test_duplicate_case_ids_and_files_are_named_once(tmp_path):
    a, b, c = (tmp_path / f"{n}.nii" for n in "abc")
    cases = [Case("x", (a,), c), Case("y", (b,), c), Case("x", (b,)), Case("z", (tmp_path / "d.nii",))]
    assert [(p.path.name, p.check, p.message) for p in validate._duplicates(cases)] == [
        ("b.nii", "duplicate", "image file is listed 2 times"),
        ("c.nii", "duplicate", "label file is listed 2 times"),
        ("a.nii", "duplicate", "case id 'x' is used by 2 cases"),
    ]
    assert validate._duplicates(cases[:2] + cases[3:]) == [Problem(c, "duplicate", "label file is listed 2 times")]


def test_summary_counts_errors_and_warnings_per_check():
    path = Path("x.nii")
    problems = [
        Problem(path, "grid", "m"),
        Problem(path, "empty label", "m", "warning"),
        Problem(path, "grid", "m"),
        Problem(path, "empty label", "m", "warning"),
        Problem(path, "empty label", "m"),
    ]
    report = DatasetReport(Dataset(Path("."), "folder", []), problems, [])
    assert report.summary() == [("empty label", 1, 2), ("grid", 2, 0)]
    assert report.errors == [problems[0], problems[2], problems[4]]


class _InProcess:
    """Stands in for the process pool: records its size, maps in this process."""

    sizes: ClassVar[list[int]] = []

    def __init__(self, max_workers):
        self.sizes.append(max_workers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, function, jobs):
        return map(function, jobs)


def test_check_dataset_reads_with_at_most_two_processes_and_reports_progress(tmp_path, monkeypatch):
    monkeypatch.setattr(validate, "ProcessPoolExecutor", _InProcess)
    monkeypatch.setattr(validate.os, "cpu_count", lambda: 16)
    _InProcess.sizes = []
    cases = []
    for name in "abc":
        cases.append(Case(name, (_write(tmp_path / f"{name}.nii", IMAGE),), _write(tmp_path / f"{name}_s.nii", LABEL)))
    dataset = Dataset(tmp_path, "folder", cases[:2], [cases[2]], labels={0: "bg", 1: "one", 2: "two"}, channels=1)
    seen = []
    report = check_dataset(dataset, progress=seen.append)
    assert seen == [1, 2, 3] and report.problems == []
    assert [s.id for s in report.stats] == ["a", "b"]  # the labelled test case is checked, not counted
    report = check_dataset(dataset, labels={0, 1})  # the label set given overrides the declared one
    assert [(p.path.name, p.message) for p in report.problems] == [
        (f"{n}_s.nii", "label values [2] are not in the label set [0, 1]") for n in "abc"
    ]
    monkeypatch.setattr(validate.os, "cpu_count", lambda: None)
    report = check_dataset(dataset, channels=2)
    assert [(p.path.name, p.message) for p in report.problems] == [
        (f"{n}.nii", "has shape 2 x 3 x 4; expected 2 channels in the 4th dimension") for n in "abc"
    ]
    report = check_dataset(Dataset(tmp_path, "folder", cases[:1], orphans=[tmp_path / "o.nii"]), workers=3)
    assert _problems(report) == [("o.nii", "missing pair", "no matching image or label file", "error")]
    assert _InProcess.sizes == [2, 2, 1, 3]


def test_nibabel_logs_nothing_while_a_file_is_opened(tmp_path, caplog):
    raw = _write(tmp_path / "a.nii", IMAGE).read_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    header["pixdim"][0] = 0.0  # nibabel repairs qfac 0 to 1, and says so at INFO level
    (tmp_path / "q.nii").write_bytes(header.binaryblock + raw[len(header.binaryblock) :])
    logger = nib.imageglobals.logger
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        image = validate._open(tmp_path / "q.nii")
        assert logger.level == logging.DEBUG  # the level it had before, given back
    assert caplog.records == [] and image.shape == (2, 3, 4)


def test_a_channel_file_may_have_a_fourth_axis_of_one(tmp_path):
    first = _write(tmp_path / "a_0000.nii", IMAGE)
    second = _write(tmp_path / "a_0001.nii", IMAGE[..., None] + 100)
    image, _, shape = validate._read_image(Case("a", (first, second)), 2)
    assert image.shape == (2, 3, 4, 2) and shape == (2, 3, 4)
    np.testing.assert_array_equal(image[..., 1], IMAGE + 100)


def test_a_label_map_holds_at_most_256_values(tmp_path):
    image = _write(tmp_path / "a.nii", np.zeros((2, 16, 9), np.float32))
    values = np.arange(2 * 16 * 9, dtype=np.int16).reshape(2, 16, 9)
    fits = _write(tmp_path / "fits_seg.nii", np.minimum(values, 255))
    assert inspect_case(Case("a", (image,), fits)).problems == []
    many = _write(tmp_path / "many_seg.nii", np.minimum(values, 256))
    assert _problems(inspect_case(Case("a", (image,), many))) == [
        (
            "many_seg.nii",
            "label values",
            "label map has 257 distinct values [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...] (257 values): "
            "an image rather than labels?",
            "error",
        )
    ]


def test_value_lists_name_ten_values_then_count():
    assert validate._listed(list(range(10))) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
    assert validate._listed(list(range(11))) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...] (11 values)"


def test_a_full_read_checks_the_header_and_the_memory_first(tmp_path, monkeypatch):
    raw = _write(tmp_path / "a.nii", IMAGE).read_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    header["pixdim"][3] = 0.0
    (tmp_path / "flat.nii").write_bytes(header.binaryblock + raw[len(header.binaryblock) :])
    assert _problems(inspect_case(Case("f", (tmp_path / "flat.nii",)))) == [
        ("flat.nii", "unreadable", "voxel spacing [2.0, 1.0, 0.0] in the header is not positive and finite", "error")
    ]
    monkeypatch.setattr(validate, "available_memory", lambda: 95)
    [(name, check, message, _)] = _problems(inspect_case(Case("a", (tmp_path / "a.nii",))))
    assert (name, check) == ("a.nii", "unreadable")
    assert message == "header claims 2 x 3 x 4 voxels (0.0 MB); only 0.0 MB of memory available"
    monkeypatch.setattr(validate, "available_memory", lambda: 96)
    assert inspect_case(Case("a", (tmp_path / "a.nii",))).problems == []


def test_finite_voxels_are_checked_in_floating_point_scans(tmp_path):
    data = IMAGE.copy()
    assert validate.check_finite_voxels(_write(tmp_path / "fine.nii.gz", data)) is None
    data[1, 2, 3] = -np.inf
    with pytest.raises(MedsegError, match=r"inf.nii.gz: contains NaN or infinite voxel values$"):
        validate.check_finite_voxels(_write(tmp_path / "inf.nii.gz", data))
    assert validate.check_finite_voxels(_write(tmp_path / "int.nii.gz", np.zeros((2, 3, 4), np.int16))) is None


def test_a_compressed_scan_over_4_gib_is_checked_by_its_size_modulo_2_to_the_32(tmp_path):
    """gzip records the uncompressed size modulo 2**32; the header alone is read, never the 5 GiB."""
    header = nib.Nifti1Header()
    header.set_data_shape((2048, 2048, 600))
    header.set_data_dtype(np.int16)
    header.set_data_offset(352)
    header.set_zooms((1.0, 1.0, 1.0))
    header.set_qform(np.eye(4), code=1)
    expected = 352 + 2048 * 2048 * 600 * 2
    voxels = np.random.default_rng(0).integers(0, 256, 1 << 18, np.uint8).tobytes()  # the first 256 KiB only
    packed = bytearray(gzip.compress(header.binaryblock + bytes(4) + voxels))
    packed[-4:] = (expected % 2**32).to_bytes(4, "little")
    (tmp_path / "big.nii.gz").write_bytes(bytes(packed))
    assert validate.check_scan_header(tmp_path / "big.nii.gz").shape == (2048, 2048, 600)
    packed[-4:] = ((expected + 1) % 2**32).to_bytes(4, "little")
    (tmp_path / "bad.nii.gz").write_bytes(bytes(packed))
    with pytest.raises(MedsegError, match=rf"truncated or corrupt: {expected} bytes expected"):
        validate.check_scan_header(tmp_path / "bad.nii.gz")
