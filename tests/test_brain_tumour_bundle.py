"""The MRI brain tumour bundle: its regions, one training epoch, and masks in the BraTS 2021 labels."""

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

from medseg.bundles import find_bundle, run_workflow
from medseg.inference.options import InferenceOptions
from medseg.inference.predict import segment
from medseg.training.run import train

BRATS = {"spacing": [8.0, 8.0, 8.0], "patch_size": [32, 32, 32], "num_workers": 0}
LABEL_VALUES = {0, 1, 2, 4}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def brats_bundle():
    return find_bundle("mri_brain_tumour_3d")


@pytest.fixture(scope="module")
def brats_run(tmp_path_factory, brats_bundle, small_brats):
    output = tmp_path_factory.mktemp("runs") / "brats"
    overrides = {**BRATS, "val_interval": 1}
    return train(brats_bundle, small_brats, output=output, epochs=1, device="cpu", overrides=overrides)


def test_metadata_matches_the_dataset_and_monai_regions(brats_bundle, small_brats):
    description = json.loads((small_brats / "dataset.json").read_text())
    image = brats_bundle.metadata["network_data_format"]["inputs"]["image"]
    pred = brats_bundle.metadata["network_data_format"]["outputs"]["pred"]
    assert image["channel_def"] == description["modality"] and image["num_channels"] == brats_bundle.input_channels == 4
    assert {str(label.value): label.name for label in brats_bundle.labels} == description["labels"]
    assert all(label.color is not None for label in brats_bundle.labels if label.value)
    assert pred["num_channels"] == len(pred["regions"]) == 3
    values = torch.tensor([0, 1, 2, 4]).reshape(1, 4, 1, 1)
    channels = ConvertToMultiChannelBasedOnBratsClasses()(values)  # MONAI's TC, WT, ET
    for channel, members in zip(channels, pred["regions"].values(), strict=True):
        assert values.flatten()[channel.flatten().bool()].tolist() == members


def test_regions_become_one_brats_label_map(brats_bundle):
    parser = ConfigParser()
    parser.read_config(str(brats_bundle.config("inference")))
    to_labels = parser.get_parsed_content("regions_to_labels")
    # Every combination of the thresholded (TC, WT, ET) channels, one voxel each.
    combos = torch.tensor([[(i >> b) & 1 for i in range(8)] for b in range(3)], dtype=torch.float32)
    labels = to_labels(combos.reshape(3, 8, 1, 1))
    assert labels.shape == (1, 8, 1, 1)
    expected = [4 if et else 1 if tc else 2 if wt else 0 for tc, wt, et in combos.T.tolist()]
    assert labels.flatten().tolist() == expected


def test_one_epoch_trains_and_records_history(brats_run):
    rows = brats_run.history.read_text().splitlines()
    assert len(rows) == 2
    header, values = rows[0].split(","), dict(zip(rows[0].split(","), rows[1].split(","), strict=True))
    assert {"train_loss", "val_mean_dice", "val_tc_dice", "val_wt_dice", "val_et_dice"} <= set(header)
    assert np.isfinite(float(values["train_loss"]))
    assert 0 < brats_run.best_weights.stat().st_size < 20e6


def test_masks_on_the_source_grid_in_brats_labels(tmp_path, brats_run, small_brats):
    scans = [small_brats / "imagesTs" / "brats_005.nii.gz", small_brats / "imagesTr" / "brats_002.nii.gz"]
    masks = segment(brats_run.bundle, scans, tmp_path, device="cpu")
    storage = set()
    for scan, mask_path in zip(scans, masks, strict=True):
        image, mask = nib.load(scan), nib.load(mask_path)
        assert mask.shape == image.shape[:3] and image.shape[3] == 4
        assert mask.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(mask.affine, image.affine)
        assert set(np.unique(np.asarray(mask.dataobj))) <= LABEL_VALUES
        reference = sitk.ReadImage(str(scan.parent.parent / scan.parent.name.replace("images", "labels") / scan.name))
        written = sitk.ReadImage(str(mask_path))
        assert written.GetSize() == reference.GetSize()
        np.testing.assert_allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(written.GetDirection(), reference.GetDirection(), atol=1e-6)
        storage.add(nib.aff2axcodes(image.affine))
    assert storage == {("R", "A", "S"), ("L", "P", "S")}


def test_portable_inference_writes_the_same_masks(tmp_path, brats_run, small_brats):
    """Plain monai.bundle with the config's own SaveImaged writer gives what medseg infer gives."""
    workflow = ConfigWorkflow(
        config_file=str(brats_run.bundle.config("inference")),
        meta_file=str(brats_run.bundle.config("metadata")),
        logging_file=False,
        workflow_type="infer",
        bundle_root=str(brats_run.bundle.root),
        dataset_dir=str(small_brats),
        output_dir=str(tmp_path / "portable"),
        device="$torch.device('cpu')",
    )
    run_workflow(workflow)
    portable = nib.load(tmp_path / "portable" / "brats_005_seg.nii.gz")
    scan = small_brats / "imagesTs" / "brats_005.nii.gz"
    (ours,) = segment(brats_run.bundle, [scan], tmp_path, device="cpu", options=InferenceOptions(stock=True))
    assert portable.get_data_dtype() == np.uint8 and portable.shape == nib.load(ours).shape
    np.testing.assert_array_equal(np.asarray(portable.dataobj), np.asarray(nib.load(ours).dataobj))


def test_evaluate_json_merges_on_train_json(tmp_path, brats_run, small_brats):
    bundle = brats_run.bundle
    workflow = ConfigWorkflow(
        config_file=[str(bundle.config("train")), str(bundle.config("evaluate"))],
        meta_file=str(bundle.config("metadata")),
        logging_file=False,
        workflow_type=None,
        bundle_root=str(bundle.root),
        dataset_dir=str(small_brats),
        ckpt_dir=str(bundle.root / "models"),
        output_dir=str(tmp_path),
        device="$torch.device('cpu')",
    )
    run_workflow(workflow)
    metrics = dict(line.split(",") for line in (tmp_path / "metrics.csv").read_text().splitlines())
    assert {"val_mean_dice", "val_tc_dice", "val_wt_dice", "val_et_dice"} <= set(metrics)
    (mask,) = tmp_path.glob("*_seg.nii.gz")
    assert set(np.unique(np.asarray(nib.load(mask).dataobj))) <= LABEL_VALUES
