"""Two training processes under torchrun (gloo on the CPU) through `medseg train --nproc 2`'s code path."""

import csv
import json
import subprocess
import sys

import pytest
import torch

from medseg.training.distributed import Launcher
from medseg.training.run import train

from .conftest import TINY
from .test_resume import child_env

EPOCHS = 2


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, ct_bundle, small_ct):
    folder = tmp_path_factory.mktemp("ddp")
    probe = {"_target_": "tests.probes.CaseRecorder", "folder": str(folder / "probe")}
    run = train(
        ct_bundle,
        small_ct,
        output=folder / "run",
        epochs=EPOCHS,
        device="cpu",
        launcher=Launcher(nproc=2),
        overrides={**TINY, "val_interval": 1},
        handlers=[probe],
    )
    return run, folder / "probe"


def test_ranks_train_on_disjoint_shards_of_the_fold(ddp_run):
    run, probe = ddp_run
    train_cases = {f"{case}.nii.gz" for case in json.loads((run.output / "run.json").read_text())["train_cases"]}
    seen = [json.loads((probe / f"cases_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert set(seen[0]) == set(seen[1]) == {str(epoch) for epoch in range(1, EPOCHS + 1)}
    for epoch in seen[0]:
        first, second = set(seen[0][epoch]), set(seen[1][epoch])
        assert first and second and not first & second
        assert first | second == train_cases


def test_the_saved_model_is_rank_zeros_and_every_rank_agrees(ddp_run):
    run, probe = ddp_run
    saved = torch.load(run.output / "models" / "checkpoint_final.pt", weights_only=True)["model"]
    for rank in (0, 1):
        weights = torch.load(probe / f"weights_rank{rank}.pt", weights_only=True)
        assert weights.keys() == saved.keys()
        assert all(torch.equal(weights[key], saved[key]) for key in saved)
    assert run.best_weights.is_file()


def test_only_rank_zero_writes_history_and_logs(ddp_run):
    run, _ = ddp_run
    with run.history.open() as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(1, EPOCHS + 1))
    # the trainer's and the validator's TensorBoardStatsHandler and the image handler, on rank 0 alone
    assert len(list((run.output / "tensorboard").glob("events.out.tfevents.*"))) == 3
    assert json.loads((run.output / "launch.json").read_text())["configs"] == ["train", "multi_gpu_train"]


def _evaluate(bundle, configs, data, output, launcher=()):
    """Run ``configs`` with ``python -m monai.bundle run`` (under ``launcher``); returns metrics.csv as a dict."""
    command = [*launcher, "-m", "monai.bundle", "run", "--config_file", str([str(bundle.config(c)) for c in configs])]
    command += ["--bundle_root", str(bundle.root)]
    settings = {**TINY, "dataset_dir": str(data), "output_dir": str(output), "val_fraction": 0.5}
    for key, value in settings.items():
        command += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    result = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (line.split(",") for line in (output / "metrics.csv").read_text().splitlines())
    return {key: float(value) for key, value in rows}


def test_multi_gpu_evaluate_json_runs_under_plain_torchrun(tmp_path, tiny_run, small_ct):
    """The model zoo's layering, without medseg: train.json + evaluate.json + multi_gpu_evaluate.json.

    Two ranks each evaluate half of the validation cases; the metrics gathered from both must be the
    single process's over all of them (a padded or unsynchronised sampler changes them).
    """
    bundle = tiny_run.bundle
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    ranks = _evaluate(bundle, ["train", "evaluate", "multi_gpu_evaluate"], small_ct, tmp_path / "ddp", torchrun)
    assert len(list((tmp_path / "ddp").glob("*_seg.nii.gz"))) == 3  # each rank wrote its own cases' masks
    single = _evaluate(bundle, ["train", "evaluate"], small_ct, tmp_path / "single", [sys.executable])
    assert single["val_mean_dice"] > 0
    assert ranks.keys() == single.keys()
    for key, value in single.items():
        assert ranks[key] == pytest.approx(value, abs=1e-6), key
