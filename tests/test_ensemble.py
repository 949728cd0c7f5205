"""`medseg infer --weights a.pt b.pt`: an ensemble that averages its members' probabilities."""

import pickle

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.inferers import SimpleInferer
from typer.testing import CliRunner

from medseg.cli import app
from medseg.inference.ensemble import EnsembleInferer
from medseg.inference.options import InferenceOptions, inference_overrides
from medseg.inference.predict import segment


def member(path, seed):
    torch.manual_seed(seed)
    network = torch.nn.Conv3d(2, 3, kernel_size=3, padding=1)
    torch.save(network.state_dict(), path)
    return network


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_the_ensemble_output_activates_to_the_mean_probability(tmp_path, activation):
    networks = [member(tmp_path / f"{seed}.pt", seed) for seed in (1, 2)]
    inputs = torch.randn(1, 2, 8, 8, 8)
    activate = (lambda x: torch.softmax(x, 1)) if activation == "softmax" else torch.sigmoid
    with torch.no_grad():
        expected = sum(activate(network(inputs)) for network in networks) / 2
        ensemble = EnsembleInferer(SimpleInferer(), [tmp_path / "1.pt", tmp_path / "2.pt"], activation=activation)
        output = ensemble(inputs, torch.nn.Conv3d(2, 3, kernel_size=3, padding=1))
    torch.testing.assert_close(activate(output), expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(activate(output), activate(networks[0](inputs)).detach(), atol=1e-3)


def read(path):
    return np.asarray(nib.load(path).dataobj)


@pytest.mark.parametrize("stock", [False, True], ids=["fast", "stock"])
def test_an_ensemble_of_one_model_twice_gives_its_masks(tmp_path, tiny_run, small_ct, stock):
    scan = sorted((small_ct / "imagesTs").glob("*.nii.gz"))[0]
    options = InferenceOptions(stock=stock)
    (single,) = segment(tiny_run.bundle, [scan], tmp_path / "single", device="cpu", options=options)
    weights = [tiny_run.best_weights, tiny_run.output / "models" / "checkpoint_final.pt"]
    (mixed,) = segment(tiny_run.bundle, [scan], tmp_path / "mixed", weights=weights, device="cpu", options=options)
    (twice,) = segment(
        tiny_run.bundle, [scan], tmp_path / "twice", weights=[tiny_run.best_weights] * 2, device="cpu", options=options
    )
    np.testing.assert_array_equal(read(twice), read(single))
    assert read(mixed).shape == read(single).shape and read(mixed).any()


def test_cli_takes_the_weights_files_after_the_option(tmp_path, tiny_run, small_ct):
    scan = sorted((small_ct / "imagesTs").glob("*.nii.gz"))[0]
    final = tiny_run.output / "models" / "checkpoint_final.pt"
    arguments = [
        "infer",
        "--trust",
        str(tiny_run.bundle.root),
        "--weights",
        str(tiny_run.best_weights),
        str(final),
        str(scan),
    ]
    result = CliRunner().invoke(app, [*arguments, "-o", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert [path.name for path in tmp_path.glob("*_seg.nii.gz")] == [scan.name.replace(".nii.gz", "_seg.nii.gz")]


@pytest.mark.parametrize("stock", [False, True], ids=["fast", "stock"])
def test_a_mixed_ensemble_loads_every_member_into_the_bundles_inferer(tmp_path, ct_bundle, random_weights, stock):
    """The config that ``--weights a.pt b.pt`` builds holds both members, in order, each as its file has it."""
    from monai.bundle import ConfigParser

    first = torch.load(random_weights, weights_only=True)
    second = {key: value + 1 if value.is_floating_point() else value for key, value in first.items()}
    torch.save(second, tmp_path / "second.pt")
    options = InferenceOptions(stock=stock, ensemble=(str(random_weights), str(tmp_path / "second.pt")))
    parser = ConfigParser()
    parser.read_config(str(ct_bundle.config("inference")))
    parser.update({"inferer": inference_overrides(ct_bundle, options)["inferer"]})
    inferer = parser.get_parsed_content("inferer")
    assert isinstance(inferer, EnsembleInferer) and inferer.activation == "softmax"
    assert len(inferer.members) == 2
    for member_state, expected in zip(inferer.members, (first, second), strict=True):
        assert member_state.keys() == expected.keys()
        assert all(torch.equal(member_state[key], expected[key]) for key in expected)


class Payload:
    """Stands for code a pickled checkpoint could carry."""


def test_the_ensemble_refuses_weights_that_need_pickle(tmp_path):
    torch.save({"model": {"weight": torch.zeros(1)}, "extra": Payload()}, tmp_path / "pickled.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        EnsembleInferer(SimpleInferer(), [tmp_path / "pickled.pt"])
