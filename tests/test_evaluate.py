"""`medseg evaluate`: every labelled case, Dice and HD95 per label with means, nnU-Net channel files."""

import csv
import math

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from typer.testing import CliRunner

from medseg.cli import app
from medseg.evaluation import evaluate

from . import datasets
from .test_train_layouts import channel_variant

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_labelled_case_is_scored_with_dice_and_hd95(tmp_path, tiny_run, small_ct):
    arguments = ["evaluate", "--trust", str(tiny_run.output), "--data", str(small_ct), "-o", str(tmp_path)]
    result = CliRunner().invoke(app, [*arguments, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()  # after the --trust notice
    start = next(index for index, line in enumerate(lines) if line.startswith("case "))
    header, *rows = lines[start : start + 1 + 8 + 3]
    assert header.split() == ["case", "liver", "Dice", "liver", "HD95", "tumour", "Dice", "tumour", "HD95"]
    assert [row.split()[0] for row in rows[-3:]] == ["mean", "mean", "mean"]
    with (tmp_path / "metrics.csv").open() as handle:
        scores = list(csv.DictReader(handle))
    sets = {row["case"]: row["set"] for row in scores}
    assert sorted(sets.values()).count("test") == 2 and list(sets.values()).count("training") == 6
    assert any(math.isfinite(float(row["hd95_mm"])) for row in scores if row["label"] == "liver")


def test_an_nnunet_case_is_segmented_from_all_its_channel_files(tmp_path, ct_bundle, small_ct):
    bundle = channel_variant(ct_bundle, tmp_path / "bundle", 2)
    data = datasets.nnunet(tmp_path / "data", datasets.tiny_cases(small_ct, 2), channels=2)
    parser = ConfigParser()
    parser.read_config(str(bundle.config("inference")))
    weights = tmp_path / "random.pt"
    torch.save(parser.get_parsed_content("network_def").state_dict(), weights)
    results = evaluate(bundle, data, tmp_path / "out", weights=weights, device="cpu")
    assert [(r.case, r.subset) for r in results] == [("case0", "training"), ("case1", "training")]
    stacked = nib.load(tmp_path / "out" / "inputs" / "case0.nii.gz")
    channel = nib.load(data / "imagesTr" / "case0_0001.nii.gz")
    np.testing.assert_array_equal(np.asarray(stacked.dataobj)[..., 1], np.asarray(channel.dataobj))
