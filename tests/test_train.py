import csv
import json

import torch


def _history(run):
    with run.history.open() as handle:
        return list(csv.DictReader(handle))


def test_training_lowers_loss_and_raises_dice(tiny_run):
    rows = _history(tiny_run)
    assert len(rows) == 10
    losses = [float(r["train_loss"]) for r in rows]
    dice = [float(r["val_mean_dice"]) for r in rows]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert max(dice[-3:]) > dice[0] + 0.1


def test_best_weights_are_a_plain_state_dict(tiny_run):
    state = torch.load(tiny_run.best_weights, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_split_is_recorded_and_disjoint(tiny_run):
    run = json.loads((tiny_run.output / "run.json").read_text())
    splits = json.loads((tiny_run.output / "splits.json").read_text())
    assert run["train_cases"] == splits[0]["train"] and run["validation_cases"] == splits[0]["val"]
    assert not set(run["train_cases"]) & set(run["validation_cases"])
    assert len(run["train_cases"]) + len(run["validation_cases"]) == 6


def test_run_folder_is_a_bundle_with_the_runs_settings(tiny_run):
    config = json.loads(tiny_run.bundle.config("inference").read_text())
    assert config["spacing"] == [6.0, 6.0, 6.0]
    fingerprint = json.loads((tiny_run.output / "fingerprint.json").read_text())
    low, high = config["intensity"]["clip"]
    hu = fingerprint["foreground"][0]
    assert (low, high) == (round(hu["p00_5"], 1), round(hu["p99_5"], 1))
    assert 0 < low < 100 < high < 250  # liver and tumour HU, not the bundle's default window
    assert tiny_run.best_weights == tiny_run.bundle.root / "models" / "model.pt"
