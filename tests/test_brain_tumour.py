"""The synthetic brain tumour MRI: determinism, MSD Task01 layout, BraTS labels, anatomy and contrasts."""

import json
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from typer.testing import CliRunner

from medseg.cli import app
from medseg.data.discover import discover
from medseg.data.validate import check_dataset
from medseg.samples.brain_tumour import SEQUENCES, make_case, random_tumour, render
from medseg.samples.mni import load_template, resample
from medseg.samples.mri_variants import head_motion

from .conftest import BRATS_SEED, BRATS_SPACING

FLAIR, T1W, T1GD, T2W = range(4)
BRATS_LABELS = {"0": "background", "1": "necrotic tumour core", "2": "peritumoral oedema", "4": "enhancing tumour"}


@pytest.fixture(scope="module")
def scan():
    """Training case 0 of ``small_brats``: stored RAS, a necrotic core inside an enhancing rim."""
    return make_case((BRATS_SEED, 0), spacing_mm=BRATS_SPACING)


def test_same_seed_same_voxels_other_seed_other_tumour(scan):
    again = make_case((BRATS_SEED, 0), spacing_mm=BRATS_SPACING)
    np.testing.assert_array_equal(again.image, scan.image)
    np.testing.assert_array_equal(again.label, scan.label)
    np.testing.assert_array_equal(again.affine, scan.affine)
    other = make_case((BRATS_SEED + 1, 0), spacing_mm=BRATS_SPACING)
    assert not np.array_equal(other.label, scan.label)


def test_dataset_files_are_the_cases_of_seed_and_index(small_brats, scan):
    image = nib.load(small_brats / "imagesTr" / "brats_000.nii.gz")
    label = nib.load(small_brats / "labelsTr" / "brats_000.nii.gz")
    np.testing.assert_array_equal(np.asarray(image.dataobj), scan.image)
    np.testing.assert_array_equal(np.asarray(label.dataobj), scan.label)
    np.testing.assert_allclose(image.affine, scan.affine, atol=1e-5)


def test_msd_task01_layout(small_brats):
    description = json.loads((small_brats / "dataset.json").read_text())
    assert description["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    assert description["labels"] == BRATS_LABELS
    assert description["tensorImageSize"] == "4D"
    assert len(description["training"]) == description["numTraining"] == 5
    assert description["test"] == ["./imagesTs/brats_005.nii.gz"] and description["numTest"] == 1
    pairs = [(e["image"], e["label"]) for e in description["training"]]
    pairs += [(path, path.replace("imagesTs", "labelsTs")) for path in description["test"]]
    for image_path, label_path in pairs:
        image, label = nib.load(small_brats / image_path), nib.load(small_brats / label_path)
        assert image.ndim == 4 and image.shape == (*label.shape, 4)
        assert image.get_data_dtype() == np.int16 and label.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(image.affine, label.affine)
        assert image.header["qform_code"] == image.header["sform_code"] == 1
        assert set(np.unique(np.asarray(label.dataobj))) <= {0, 1, 2, 4}


def test_discovered_with_four_channels_and_checked_clean(small_brats):
    dataset = discover(small_brats)
    assert dataset.layout == "msd" and dataset.channels == 4
    assert dataset.labels == {int(value): name for value, name in BRATS_LABELS.items()}
    assert len(dataset.training) == 5 and len(dataset.labelled_test) == 1
    report = check_dataset(dataset, workers=1)
    assert report.problems == []
    assert len(report.stats) == 5 and all(s.foreground.shape[1] == 4 for s in report.stats)


def test_stored_ras_and_lps_with_the_tumour_where_the_affine_says(small_brats):
    """SimpleITK (LPS world) finds the tumour core at the tumour's recorded RAS centre, in either storage."""
    records = json.loads((small_brats / "cases.json").read_text())
    assert {r["orientation"] for r in records} == {"RAS", "LPS"}
    for record in records:
        image = nib.load(small_brats / record["image"])
        signs = np.sign(np.diag(image.affine)[:3]).tolist()
        assert signs == ([1, 1, 1] if record["orientation"] == "RAS" else [-1, -1, 1])
        label = sitk.ReadImage(str(small_brats / record["label"]))
        x, y, z = record["tumour_centre_ras_mm"]
        index = label.TransformPhysicalPointToIndex((-x, -y, z))
        assert label[index] in (1, 4), record["label"]


def test_lps_storage_is_the_ras_volume_flipped(scan):
    template = load_template()
    as_ras = render(template, replace(scan.variant, orientation="RAS"), scan.tumour, np.random.default_rng(1))
    as_lps = render(template, replace(scan.variant, orientation="LPS"), scan.tumour, np.random.default_rng(1))
    (image_ras, label_ras, affine_ras), (image_lps, label_lps, affine_lps) = as_ras, as_lps
    np.testing.assert_array_equal(image_lps, image_ras[::-1, ::-1])
    np.testing.assert_array_equal(label_lps, label_ras[::-1, ::-1])
    last = np.array([label_ras.shape[0] - 1, label_ras.shape[1] - 1, 0, 1])
    np.testing.assert_allclose(affine_lps @ [0, 0, 0, 1], affine_ras @ last, atol=1e-6)


def test_every_kind_of_tumour_is_drawn():
    rng = np.random.default_rng(0)
    kinds = {random_tumour(rng, np.eye(4)).kind for _ in range(40)}
    assert kinds == {"necrotic rim", "solid enhancing", "non-enhancing"}


def test_whole_tumour_volumes_are_glioma_sized(small_brats):
    records = json.loads((small_brats / "cases.json").read_text())
    volumes = [r["volume_ml"]["whole tumour"] for r in records]
    assert all(5 < v < 120 for v in volumes), volumes
    for r in records:
        counted = r["volume_ml"]["necrosis"] + r["volume_ml"]["oedema"] + r["volume_ml"]["enhancing"]
        assert r["volume_ml"]["whole tumour"] == pytest.approx(counted, abs=0.05)


def _shell(mask):
    return ndimage.binary_dilation(mask) & ~mask


def test_necrosis_inside_the_rim_and_oedema_around_the_core(scan):
    assert scan.tumour.kind == "necrotic rim"
    label = scan.label
    necrosis, enhancing, oedema = label == 1, label == 4, label == 2
    core = necrosis | enhancing
    assert necrosis.any() and enhancing.any() and oedema.any()
    assert np.mean(enhancing[_shell(necrosis)]) > 0.8  # the necrotic centre is wrapped by the enhancing rim
    assert np.mean(oedema[_shell(core)]) > 0.7  # the core is wrapped by oedema
    assert oedema.sum() > core.sum()


def test_without_enhancement_or_necrosis(scan):
    template, rng = load_template(), np.random.default_rng(2)
    _, label, _ = render(template, scan.variant, replace(scan.tumour, enhancing=False), rng)
    assert set(np.unique(label)) == {0, 1, 2}  # the enhancing tumour (ET) is empty
    _, label, _ = render(template, scan.variant, replace(scan.tumour, necrosis=None), rng)
    assert set(np.unique(label)) == {0, 2, 4}


def _mean(image, mask):
    assert mask.sum() >= 20
    return image[mask].astype(float).mean(axis=0)


def _tissues(scan):
    """CSF, grey- and white-matter fractions on the scan's grid."""
    template = load_template()
    motion = head_motion(template, scan.variant.rotation_deg)
    return (
        resample(volume, template.affine, scan.affine, scan.label.shape, moved_by=motion)
        for volume in (template.csf, template.grey, template.white)
    )


def test_relative_intensities_of_tissues_and_tumour():
    """At the default 2 mm: normal tissue within 3 cm of the tumour against the tumour's compartments."""
    scan = make_case((BRATS_SEED, 0), spacing_mm=2.0)
    assert scan.tumour.kind == "necrotic rim"
    csf, grey, white = _tissues(scan)
    image, label = scan.image, scan.label
    tumour = label > 0
    near = ndimage.binary_dilation(tumour, iterations=15) & ~ndimage.binary_dilation(tumour, iterations=2)
    wm, gm, fluid = (_mean(image, near & (tissue > 0.8)) for tissue in (white, grey, csf))
    necrosis, oedema, enhancing = (_mean(image, label == value) for value in (1, 2, 4))
    assert wm[T1W] > gm[T1W] > fluid[T1W] and oedema[T1W] < 0.9 * wm[T1W]
    assert fluid[T2W] > gm[T2W] > wm[T2W] and oedema[T2W] > 1.5 * wm[T2W]
    assert gm[FLAIR] > wm[FLAIR] > fluid[FLAIR] and oedema[FLAIR] > 1.5 * wm[FLAIR]
    assert enhancing[T1GD] > 1.3 * wm[T1GD] and enhancing[T1GD] > 2 * necrosis[T1GD]
    assert enhancing[T1W] < wm[T1W]  # before contrast the rim does not stand out
    assert necrosis[T2W] > wm[T2W] and necrosis[T1W] < gm[T1W]
    assert image.shape[-1] == len(SEQUENCES) == 4


def test_skull_stripped_zero_outside_the_brain(scan):
    csf, grey, white = _tissues(scan)
    brain = csf + grey + white
    assert not scan.image[brain < 0.3].any()
    assert (scan.image[brain > 0.7] > 0).all()


def test_cli_writes_the_dataset(tmp_path):
    result = CliRunner().invoke(
        app, ["sample-data", "brats", str(tmp_path / "b"), "--cases", "1", "--test-cases", "0", "--spacing", "8"]
    )
    assert result.exit_code == 0, result.output
    description = json.loads((tmp_path / "b" / "dataset.json").read_text())
    assert description["numTraining"] == 1 and description["numTest"] == 0
    assert nib.load(tmp_path / "b" / "imagesTr" / "brats_000.nii.gz").shape[-1] == 4
