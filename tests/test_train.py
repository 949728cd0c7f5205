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
    split = json.loads((tiny_run.output / "split.json").read_text())
    assert len(split["train"]) == 5 and len(split["validation"]) == 1
    assert not set(split["train"]) & set(split["validation"])
