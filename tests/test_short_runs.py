"""A run shorter than the bundle's validation interval still validates once and leaves a model."""

import csv

import pytest
from typer.testing import CliRunner

from medseg.bundles import top_level_values
from medseg.cli import app
from medseg.training.run import train

from .conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_one_epoch_below_the_interval_leaves_a_model_infer_uses(tmp_path, ct_bundle, small_ct):
    assert top_level_values(ct_bundle, "train", ["val_interval"])["val_interval"] > 1
    run = train(ct_bundle, small_ct, output=tmp_path / "run", epochs=1, device="cpu", overrides=TINY)
    assert run.best_weights.is_file()
    with run.history.open() as handle:
        (row,) = csv.DictReader(handle)
    assert 0 <= float(row["val_mean_dice"]) <= 1
    scan = next((small_ct / "imagesTs").glob("*.nii.gz"))
    arguments = ["infer", "--trust", str(run.output), str(scan), "-o", str(tmp_path / "out"), "--masks-only"]
    result = CliRunner().invoke(app, [*arguments, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("*_seg.nii.gz"))) == 1
