"""`medseg train` options: --seed, --tracking mlflow, --progress, and caching on the training device."""

import importlib.util

import pytest
import torch

from medseg.bundles import top_level_values
from medseg.data.caching import on_device
from medseg.errors import MedsegError
from medseg.training.run import train

from .conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def final_weights(run):
    return torch.load(run.output / "models" / "checkpoint_final.pt", weights_only=True)["model"]


def one_epoch(bundle, data, output, **options):
    overrides = {**TINY, "val_interval": 1, **options.pop("overrides", {})}
    return train(bundle, data, output=output, epochs=1, device="cpu", overrides=overrides, **options)


def test_the_same_seed_gives_the_same_weights(tmp_path, ct_bundle, small_ct):
    first, second, other = (
        one_epoch(ct_bundle, small_ct, tmp_path / name, seed=seed) for name, seed in (("a", 5), ("b", 5), ("c", 6))
    )
    a, b, c = final_weights(first), final_weights(second), final_weights(other)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)
    assert top_level_values(first.bundle, "train", ["seed"]) == {"seed": 5}


def test_caching_on_the_device_runs_the_bundle(tmp_path, ct_bundle, small_ct):
    """The GPU cache's overrides (ToDeviced, ThreadDataLoader), here on the CPU where they can run."""
    base = top_level_values(ct_bundle, "train", ["base_transforms"])["base_transforms"]
    run = one_epoch(ct_bundle, small_ct, tmp_path / "run", overrides=on_device(base))
    assert run.best_weights.is_file()
    assert top_level_values(run.bundle, "train", ["base_transforms"])["base_transforms"][-1]["_target_"] == "ToDeviced"


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="needs the mlflow extra")
def test_mlflow_tracking_in_the_run_folder(tmp_path, ct_bundle, small_ct):
    import mlflow

    run = one_epoch(ct_bundle, small_ct, tmp_path / "run", tracking="mlflow", progress=True)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run.output.resolve() / 'mlflow' / 'mlruns.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == ct_bundle.name]
    (tracked,) = client.search_runs([experiment.experiment_id])
    assert {"train_loss", "val_mean_dice"} <= set(tracked.data.metrics)
    assert (run.output / "tensorboard").is_dir()


def test_mlflow_missing_is_one_clear_error(tmp_path, ct_bundle, small_ct, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MedsegError, match=r"pip install 'medseg\[mlflow\]'"):
        one_epoch(ct_bundle, small_ct, tmp_path / "run", tracking="mlflow")


def test_early_stopping_ends_a_run_whose_metric_stops_improving(tmp_path, ct_bundle, small_ct):
    """No Dice gain can exceed a min_delta of 1, so the second validation is already one without improvement."""
    settings = {**TINY, "val_interval": 1, "early_stop_patience": 1, "validate#early_stop#min_delta": 1.0}
    run = train(ct_bundle, small_ct, output=tmp_path / "run", epochs=5, device="cpu", overrides=settings)
    with run.history.open() as handle:
        assert [row.split(",")[0] for row in handle.read().splitlines()[1:]] == ["1", "2"]


@pytest.mark.parametrize(("option", "value"), [("tracking", "wandb"), ("cache", "gpu"), ("presets", "mine")])
def test_a_bad_option_stops_before_the_run_folder_is_made(tmp_path, ct_bundle, small_ct, option, value):
    with pytest.raises(MedsegError, match=f"`{option}"):
        train(ct_bundle, small_ct, output=tmp_path / "run", device="cpu", **{option: value})
    assert not (tmp_path / "run" / "configs").exists()
