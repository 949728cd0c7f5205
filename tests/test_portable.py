"""The bundle runs through plain `python -m monai.bundle`, and medseg infer gives the same masks."""

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from medseg.inference.options import InferenceOptions
from medseg.inference.predict import segment

from .conftest import TINY


def monai_bundle_run(bundle, configs, **overrides):
    paths = [str(bundle.config(name)) for name in configs]
    config_file = paths[0] if len(paths) == 1 else str(paths)
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file]
    command += ["--bundle_root", str(bundle.root)]
    for key, value in {**TINY, **overrides}.items():
        command += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_train_json_runs_unchanged(tmp_path, ct_bundle, small_ct):
    monai_bundle_run(
        ct_bundle,
        ["train"],
        dataset_dir=str(small_ct),
        ckpt_dir=str(tmp_path),
        output_dir=str(tmp_path),
        **{"train#trainer#max_epochs": 1, "val_interval": 1},
    )
    assert (tmp_path / "model.pt").is_file()


def test_evaluate_json_merges_on_train_json(tmp_path, small_ct, tiny_run):
    monai_bundle_run(
        tiny_run.bundle,
        ["train", "evaluate"],
        dataset_dir=str(small_ct),
        ckpt_dir=str(tiny_run.bundle.root / "models"),
        output_dir=str(tmp_path),
    )
    metrics = dict(line.split(",") for line in (tmp_path / "metrics.csv").read_text().splitlines())
    assert {"val_mean_dice", "val_liver_dice", "val_tumour_dice"} <= set(metrics)
    assert float(metrics["val_liver_dice"]) > 0.3


@pytest.fixture(scope="module")
def portable_masks(tmp_path_factory, small_ct, tiny_run):
    output = tmp_path_factory.mktemp("portable")
    monai_bundle_run(tiny_run.bundle, ["inference"], dataset_dir=str(small_ct), output_dir=str(output))
    return sorted(output.glob("*_seg.nii.gz"))


def test_medseg_infer_stock_equals_the_portable_path(tmp_path, small_ct, tiny_run, portable_masks):
    scans = sorted((small_ct / "imagesTs").glob("*.nii.gz"))
    assert [p.name.replace("_seg", "") for p in portable_masks] == [s.name for s in scans]
    ours = segment(tiny_run.bundle, scans, tmp_path, device="cpu", options=InferenceOptions(stock=True))
    for mine, theirs in zip(ours, portable_masks, strict=True):
        assert mine.name == theirs.name
        mask, reference = nib.load(mine), nib.load(theirs)
        np.testing.assert_array_equal(np.asarray(mask.dataobj), np.asarray(reference.dataobj))
        np.testing.assert_allclose(mask.affine, reference.affine, atol=1e-4)
