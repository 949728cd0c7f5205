import gzip
import io
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from medseg.data.discover import discover
from medseg.data.validate import GRID_TOLERANCE_MM, check_dataset, check_scan, check_scan_header, grid_difference
from medseg.errors import MedsegError
from medseg.io.nifti import write_nifti
from medseg.training.run import train

from . import datasets
from .shapes import grid_affine


@pytest.fixture()
def msd(tmp_path, small_ct):
    return datasets.msd(tmp_path / "msd", datasets.tiny_cases(small_ct, 3))


def problems_of(root, **kwargs):
    report = check_dataset(discover(root), workers=1, **kwargs)
    return [(p.path.name, p.check, p.message, p.severity) for p in report.problems]


def rewrite(path, transform_data=lambda d: d, transform_affine=lambda a: a, dtype=None):
    image = nib.load(path)
    data = transform_data(np.asarray(image.dataobj))
    write_nifti(path, data.astype(dtype or data.dtype), transform_affine(image.affine))


def test_clean_dataset_has_no_problems(small_ct):
    report = check_dataset(discover(small_ct), workers=1)
    assert report.problems == [] and len(report.stats) == 6


def test_corrupt_image(msd):
    (msd / "imagesTr" / "case1.nii.gz").write_bytes(b"\x1f\x8b garbage")
    [(name, check, message, severity)] = problems_of(msd)
    assert (name, check, severity) == ("case1.nii.gz", "unreadable", "error")
    assert "cannot read NIfTI" in message


def test_missing_label_file(msd):
    (msd / "labelsTr" / "case2.nii.gz").unlink()
    assert problems_of(msd) == [("case2.nii.gz", "unreadable", "file not found", "error")]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: a @ np.diag([1.0, 1.0, 1.5, 1.0]), "spacing"),
        (lambda a: a + _shift(2.0), "origin"),
        (lambda a: a + _shift(0.01), "origin"),  # ten times the tolerance, stored in float32
        (lambda a: a @ np.diag([1.0, 1.0, 1.001, 1.0]), "spacing"),  # 0.009 mm on 9.4 mm voxels
        (lambda a: a @ np.diag([-1.0, 1.0, 1.0, 1.0]), "direction"),
    ],
)
def test_label_on_another_grid(msd, change, expected):
    rewrite(msd / "labelsTr" / "case0.nii.gz", transform_affine=change)
    [(name, check, message, _)] = problems_of(msd)
    assert (name, check) == ("case0.nii.gz", "grid")
    assert message.startswith("label grid differs from the image's: " + expected)


def _shift(mm):
    moved = np.zeros((4, 4))
    moved[0, 3] = mm
    return moved


GRID = grid_affine((0.8, 0.8, 2.5), (40, 30, 20), (0.0, 0.0, 0.0), degrees=(3.0, 0.0, -5.0))
GRID[:3, 3] = (12.0, -7.0, 30.0)  # an oblique grid whose first voxel is at a known place


def _turned(affine, radians):
    """The grid turned about its first voxel, in the axial plane."""
    c, s = np.cos(radians), np.sin(radians)
    turned = affine.copy()
    turned[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ affine[:3, :3]
    return turned


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: a + _shift(2 * GRID_TOLERANCE_MM), "origin [12.002, -7.0, 30.0] vs [12.0, -7.0, 30.0] mm"),
        (lambda a: a + _shift(GRID_TOLERANCE_MM / 2), None),
        (lambda a: a @ np.diag([1.0, 1.0, 1.001, 1.0]), "spacing [0.8, 0.8, 2.5025] vs [0.8, 0.8, 2.5] mm"),
        (lambda a: a @ np.diag([1.0, 1.0, 1.0001, 1.0]), None),  # 0.00025 mm
        (lambda a: _turned(a, 2e-4), "direction cosines differ"),
        (lambda a: _turned(a, 2e-5), None),
    ],
)
def test_grid_difference_tolerates_a_thousandth_of_a_millimetre_and_no_more(change, expected):
    """Spacing and origin must agree to 0.001 mm, direction cosines to 1e-4."""
    assert grid_difference((40, 30, 20), change(GRID), (40, 30, 20), GRID) == expected
    assert grid_difference((40, 30, 20), GRID, (40, 30, 21), GRID) == "shape (40, 30, 20) vs (40, 30, 21)"


@pytest.mark.parametrize(
    ("value", "allowed"),
    [(3, {0, 1, 2, 4}), (-1, {0, 1, 2}), (1, {0, 2})],
    ids=["in-a-gap", "below", "between"],
)
def test_label_values_missing_from_the_label_set_anywhere_in_it(msd, value, allowed):
    """BraTS labels are 0, 1, 2, 4: a 3 is as wrong as a 7, and so is a value below the set."""
    rewrite(msd / "labelsTr" / "case1.nii.gz", transform_data=lambda d: np.where(d == 1, value, d.astype(np.int16)))
    found = [p for p in problems_of(msd, labels=allowed) if p[0] == "case1.nii.gz"]
    message = f"label values [{value}] are not in the label set {sorted(allowed)}"
    if value < 0:  # a negative value is no label in any set, and is reported as such
        message = f"label values must be non-negative whole numbers; found [{value}]"
    assert found == [("case1.nii.gz", "label values", message, "error")]


def test_label_with_another_shape(msd):
    rewrite(msd / "labelsTr" / "case0.nii.gz", transform_data=lambda d: d[:-1])
    [(_, check, message, _)] = problems_of(msd)
    assert check == "grid" and "shape" in message


def test_non_integer_labels(msd):
    rewrite(msd / "labelsTr" / "case1.nii.gz", transform_data=lambda d: d.astype(np.float32) * 0.5)
    assert problems_of(msd) == [("case1.nii.gz", "label values", "label values are not integers", "error")]


def test_labels_outside_the_label_set(msd):
    rewrite(msd / "labelsTr" / "case1.nii.gz", transform_data=lambda d: np.where(d == 2, 7, d))
    [(name, check, message, _)] = problems_of(msd)
    assert (name, check) == ("case1.nii.gz", "label values")
    assert "[7] are not in the label set [0, 1, 2]" in message


def test_nan_in_image(msd):
    def poison(data):
        data = data.astype(np.float32)
        data[3, 3, 3] = np.nan
        return data

    rewrite(msd / "imagesTr" / "case0.nii.gz", transform_data=poison)
    assert problems_of(msd) == [("case0.nii.gz", "non-finite", "image contains NaN or infinite values", "error")]


def test_four_d_image_in_a_3d_dataset(msd):
    rewrite(msd / "imagesTr" / "case2.nii.gz", transform_data=lambda d: np.stack([d, d], axis=-1))
    [(name, check, message, _)] = problems_of(msd)
    assert (name, check) == ("case2.nii.gz", "unreadable")
    assert "expected a 3D scan" in message


def test_3d_images_where_four_channels_are_declared(msd):
    description = json.loads((msd / "dataset.json").read_text())
    description["modality"] = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    (msd / "dataset.json").write_text(json.dumps(description))
    found = problems_of(msd)
    assert len(found) == 3 and all("expected 4 channels in the 4th dimension" in p[2] for p in found)


def test_duplicates_and_empty_labels(msd):
    description = json.loads((msd / "dataset.json").read_text())
    description["training"].append(dict(description["training"][0]))
    (msd / "dataset.json").write_text(json.dumps(description))
    rewrite(msd / "labelsTr" / "case1.nii.gz", transform_data=lambda d: np.zeros_like(d))
    found = problems_of(msd)
    assert ("case0.nii.gz", "duplicate", "image file is listed 2 times", "error") in found
    assert ("case1.nii.gz", "empty label", "label has no foreground voxels", "warning") in found


def test_unpaired_files(tmp_path, small_ct):
    root = datasets.folder_pairs(tmp_path, datasets.tiny_cases(small_ct, 2))
    (root / "case1_seg.nii.gz").unlink()
    assert problems_of(root) == [("case1.nii.gz", "missing pair", "no matching image or label file", "error")]


def test_check_dataset_command_exits_1_and_names_the_file(msd):
    (msd / "imagesTr" / "case1.nii.gz").write_bytes(b"broken")
    result = subprocess.run([sys.executable, "-m", "medseg", "check-dataset", str(msd)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"error: {msd / 'imagesTr' / 'case1.nii.gz'}: cannot read NIfTI" in result.stdout
    assert "unreadable" in result.stdout and "total" in result.stdout


def test_check_dataset_command_prints_the_fingerprint(small_ct, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medseg", "check-dataset", str(small_ct), "--fingerprint", str(tmp_path / "fp.json")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "target spacing" in result.stdout and "liver" in result.stdout
    assert json.loads((tmp_path / "fp.json").read_text())["cases"] == 6


def test_training_refuses_a_dataset_with_errors(msd, ct_bundle, tmp_path):
    rewrite(msd / "labelsTr" / "case1.nii.gz", transform_data=lambda d: np.where(d == 2, 9, d))
    said = []
    with pytest.raises(MedsegError, match="1 error"):
        train(ct_bundle, msd, output=tmp_path / "run", device="cpu", say=said.append)
    assert said == [f"error: {msd / 'labelsTr' / 'case1.nii.gz'}: label values [9] are not in the label set [0, 1, 2]"]
    assert not (tmp_path / "run").exists()


def test_an_image_given_as_its_own_label_map_is_refused_in_one_line(tmp_path, small_ct):
    """No label set declared: a label map still holds a few non-negative whole numbers."""
    cases = [
        (case_id, image, image.astype(np.int16), affine)
        for case_id, image, _, affine in datasets.tiny_cases(small_ct, 2)
    ]
    root = datasets.folder_pairs(tmp_path / "pairs", cases)
    problems = problems_of(root)
    assert [(name, check, severity) for name, check, _, severity in problems] == [
        (f"case{index}_seg.nii.gz", "label values", "error") for index in range(2)
    ]
    for _, _, message, _ in problems:
        assert "distinct values [-" in message and ", ...] (" in message and "an image rather than labels?" in message
    result = subprocess.run(
        [sys.executable, "-m", "medseg", "check-dataset", str(root)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) < 30, result.stdout[:2000]


def test_negative_values_and_long_value_lists_are_one_short_line(msd):
    rewrite(msd / "labelsTr" / "case1.nii.gz", transform_data=lambda d: np.where(d == 2, -3, d.astype(np.int16)))
    assert problems_of(msd) == [
        ("case1.nii.gz", "label values", "label values must be non-negative whole numbers; found [-3]", "error")
    ]
    rewrite(
        msd / "labelsTr" / "case1.nii.gz",
        transform_data=lambda d: np.arange(d.size).reshape(d.shape) % 40,
        dtype=np.int16,
    )
    [(_, _, message, _)] = problems_of(msd)
    assert (
        message == "label values [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, ...] (37 values) are not in the label set [0, 1, 2]"
    )


def _scan(path, data, affine=None):
    return write_nifti(path, data, np.diag([0.8, 0.8, 2.5, 1.0]) if affine is None else affine)


@pytest.mark.parametrize("check", [check_scan, check_scan_header], ids=["full", "header"])
def test_scan_checks_refuse_what_is_not_a_nifti_file(tmp_path, check):
    (tmp_path / "folder.nii.gz").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    for name, problem in [("gone.nii.gz", "file not found"), ("folder.nii.gz", "not a file")]:
        with pytest.raises(MedsegError, match=f"^{tmp_path / name}: {problem}$"):
            check(tmp_path / name)
    with pytest.raises(MedsegError, match=r"not a NIfTI file \(expected .nii or .nii.gz\)$"):
        check(tmp_path / "notes.txt")


@pytest.mark.parametrize("check", [check_scan, check_scan_header], ids=["full", "header"])
def test_scan_checks_count_channels(tmp_path, check):
    scan = _scan(tmp_path / "mr.nii.gz", np.zeros((6, 5, 4, 3), np.float32))
    info = check(scan, channels=3)
    assert (info.shape, info.channels) == ((6, 5, 4), 3)
    np.testing.assert_allclose(info.affine, np.diag([0.8, 0.8, 2.5, 1.0]), rtol=1e-7)  # float32 in the header
    with pytest.raises(MedsegError, match=r"has shape 6 x 5 x 4 x 3; expected a 3D scan"):
        check(scan)
    assert check(_scan(tmp_path / "ct.nii.gz", np.zeros((6, 5, 4), np.int16))).channels == 1


def test_scan_header_check_finds_truncation_without_reading_voxels(tmp_path):
    whole = _scan(tmp_path / "whole.nii", np.ones((8, 7, 6), np.float32))
    assert check_scan_header(whole).shape == (8, 7, 6)  # exactly the length its header says
    (tmp_path / "short.nii").write_bytes(whole.read_bytes()[:-1])
    expected = len(whole.read_bytes())
    with pytest.raises(MedsegError, match=rf"cannot read NIfTI \(truncated: {expected - 1} of {expected} bytes\)"):
        check_scan_header(tmp_path / "short.nii")
    packed = _scan(tmp_path / "packed.nii.gz", np.ones((8, 7, 6), np.float32))
    assert check_scan_header(packed).shape == (8, 7, 6)
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(gzip.decompress(packed.read_bytes())[:-100]))
    with pytest.raises(MedsegError, match=rf"truncated or corrupt: {expected} bytes expected"):
        check_scan_header(tmp_path / "cut.nii.gz")


def test_scan_header_check_reads_the_grid(tmp_path):
    raw = _scan(tmp_path / "scan.nii", np.zeros((4, 4, 4), np.int16)).read_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    header["pixdim"][3] = 0.0  # a third voxel side of zero length
    (tmp_path / "flat.nii").write_bytes(header.binaryblock + raw[len(header.binaryblock) :])
    with pytest.raises(
        MedsegError, match=r"flat.nii: voxel spacing \[0.8\d*, 0.8\d*, 0.0\] in the header is not positive"
    ):
        check_scan_header(tmp_path / "flat.nii")


def test_scan_check_refuses_non_finite_floats_only(tmp_path):
    data = np.zeros((4, 4, 4), np.float32)
    data[1, 2, 3] = np.inf
    with pytest.raises(MedsegError, match="contains NaN or infinite voxel values"):
        check_scan(_scan(tmp_path / "inf.nii.gz", data))
    assert check_scan(_scan(tmp_path / "int.nii.gz", np.full((4, 4, 4), 7, np.int16))).shape == (4, 4, 4)
