"""A run killed part-way continues from its last checkpoint with `medseg train ... --resume`."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medseg.errors import MedsegError
from medseg.training.run import train

from .conftest import TINY

ROOT = Path(__file__).resolve().parent.parent
EPOCHS, KILLED_AT = 4, 3
LEARNING_RATE = 0.002


def child_env():
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), path]))}


def history(run_dir):
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, small_ct):
    folder = tmp_path_factory.mktemp("resume")
    run_dir = folder / "run"
    kill = {"_target_": "tests.probes.KillAt", "epoch": KILLED_AT, "marker": str(folder / "killed")}
    settings = {**TINY, "val_interval": 1}
    script = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from medseg.bundles import find_bundle\n"
        "from medseg.training.run import train\n"
        f"train(find_bundle('ct_liver_tumour_3d'), {str(small_ct)!r}, output={str(run_dir)!r}, epochs={EPOCHS},\n"
        f"      device='cpu', overrides={settings!r},\n"
        f"      handlers=[{kill!r}])\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    before = history(run_dir)
    command = [sys.executable, "-m", "medseg", "train", "ct_liver_tumour_3d", "--data", str(small_ct)]
    command += ["--output", str(run_dir), "--resume", "--no-progress"]
    resumed = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return run_dir, before


def test_the_killed_run_left_its_checkpoint_and_history(killed_and_resumed):
    _, before = killed_and_resumed
    assert [int(row["epoch"]) for row in before] == list(range(1, KILLED_AT))


def test_epochs_continue_without_repeats_and_history_appends(killed_and_resumed):
    run_dir, before = killed_and_resumed
    after = history(run_dir)
    assert [int(row["epoch"]) for row in after] == list(range(1, EPOCHS + 1))
    assert after[: len(before)] == before
    final = torch.load(run_dir / "models" / "checkpoint_final.pt", weights_only=True)
    assert final["trainer"]["iteration"] == EPOCHS * final["trainer"]["epoch_length"]
    assert json.loads((run_dir / "run.json").read_text())["resumed"][0]["epochs_done"] == KILLED_AT - 1


def test_the_schedule_continues_where_it_stopped(killed_and_resumed):
    run_dir, _ = killed_and_resumed
    # warm-up cosine with no warm-up at 4 epochs; each row has the rate after that epoch's step
    expected = [LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * epoch / EPOCHS)) for epoch in range(1, EPOCHS + 1)]
    assert [float(row["lr"]) for row in history(run_dir)] == pytest.approx(expected, abs=1e-9)


def test_checkpoints_hold_random_state_and_best_metric_and_load_weights_only(killed_and_resumed):
    run_dir, _ = killed_and_resumed
    final = torch.load(run_dir / "models" / "checkpoint_final.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "trainer", "rng", "best"} <= set(final)
    best = max(float(row["val_mean_dice"]) for row in history(run_dir))
    assert final["best"]["best_metric"] == pytest.approx(best)


def test_resuming_a_finished_run_or_nothing_is_one_clear_error(killed_and_resumed, tmp_path, ct_bundle, small_ct):
    run_dir, _ = killed_and_resumed
    with pytest.raises(MedsegError, match="finished its 4 epochs"):
        train(ct_bundle, small_ct, output=run_dir, resume=True)
    with pytest.raises(MedsegError, match="continues the 4 epochs"):
        train(ct_bundle, small_ct, output=run_dir, epochs=6, resume=True)
    with pytest.raises(MedsegError, match="no prepared training run"):
        train(ct_bundle, small_ct, output=tmp_path / "none", resume=True)
