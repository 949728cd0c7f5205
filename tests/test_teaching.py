"""The pieces of the architecture notebook: slices, networks, the comparison loop, scores and figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medseg.teaching.architectures import ARCHITECTURES, parameter_count
from medseg.teaching.compare import (
    Budget,
    predict,
    results_table,
    run_comparison,
    score,
    tumour_balanced_weights,
)
from medseg.teaching.figures import boundary_closeups, instance_panels
from medseg.teaching.slices import SLICE_GRID, SliceSet, phantom_slices


@pytest.fixture(scope="module")
def slices() -> SliceSet:
    return phantom_slices(3, range(1))


def test_phantom_slices_are_scaled_labelled_liver_slices(slices: SliceSet) -> None:
    n = len(slices)
    assert n > 0
    assert slices.images.shape == (n, 1, SLICE_GRID.matrix, SLICE_GRID.matrix) and slices.images.dtype == np.float32
    assert slices.labels.shape == slices.images.shape and slices.labels.dtype == np.int64
    assert slices.images.min() >= 0 and slices.images.max() <= 1
    assert set(np.unique(slices.labels)) <= {0, 1, 2}
    assert (slices.labels == 1).any(axis=(1, 2, 3)).all()
    assert slices.spacing.shape == (n, 2) and (slices.cases == 0).all()


def test_patients_are_disjoint_and_reproducible(slices: SliceSet) -> None:
    again = phantom_slices(3, range(1))
    np.testing.assert_array_equal(again.images, slices.images)
    other = phantom_slices(3, range(1, 2))
    assert (other.cases == 1).all()


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_networks_keep_the_image_size(name: str, one_thread: None) -> None:
    network = ARCHITECTURES[name](1, 3)
    with torch.no_grad():
        assert network(torch.zeros(2, 1, 64, 96)).shape == (2, 3, 64, 96)
    assert parameter_count(network) > 10_000


def test_tumour_slices_get_half_the_draws() -> None:
    labels = np.zeros((10, 1, 4, 4), dtype=np.int64)
    labels[:2, 0, 0, 0] = 2
    weights = tumour_balanced_weights(labels)
    assert float(weights[:2].sum()) == pytest.approx(float(weights[2:].sum()))


def _disc(radius: float, centre: tuple[int, int] = (16, 16), size: int = 32) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return np.hypot(y - centre[0], x - centre[1]) <= radius


def test_scores_of_a_perfect_and_a_missing_prediction() -> None:
    reference = np.zeros((2, 1, 32, 32), dtype=np.int64)
    reference[:, 0][:, _disc(10)] = 1
    reference[:, 0][:, _disc(3)] = 2
    missed = reference.copy()
    missed[1][missed[1] == 2] = 1  # the second slice loses its tumour
    spacing = np.full((2, 2), 2.0)
    perfect = score(reference, reference, spacing, tolerance_mm=2.0)
    assert (perfect["tumour"].dice, perfect["tumour"].hd95_mm, perfect["tumour"].surface_dice) == (1.0, 0.0, 1.0)
    partial = score(missed, reference, spacing, tolerance_mm=2.0)
    assert partial["tumour"].dice == pytest.approx(0.5)
    assert partial["tumour"].hd95_mm == pytest.approx(math.hypot(64, 64) / 2)  # the missed slice counts its diagonal
    assert partial["tumour"].surface_dice == pytest.approx(0.5)


def test_comparison_trains_scores_and_tabulates(slices: SliceSet, one_thread: None) -> None:
    nets = {name: ARCHITECTURES[name] for name in ("FCN", "U-Net")}
    results = run_comparison(nets, slices, slices, Budget(steps=2, batch_size=2), tolerance_mm=4.0)
    assert [r.name for r in results] == ["FCN", "U-Net"]
    assert all(r.prediction.shape == slices.labels.shape and r.train_seconds > 0 for r in results)
    table = results_table(results).splitlines()
    assert len(table) == 3 and "tumour HD95" in table[0] and table[2].startswith("U-Net")


def test_prediction_is_the_argmax() -> None:
    network = torch.nn.Conv2d(1, 3, kernel_size=1)
    with torch.no_grad():
        network.weight[:] = torch.tensor([0.0, 1.0, -1.0]).view(3, 1, 1, 1)
        network.bias.zero_()
    images = np.array([1.0, -1.0], dtype=np.float32).reshape(2, 1, 1, 1)
    np.testing.assert_array_equal(predict(network, images).ravel(), [1, 2])


def test_figures_have_one_panel_per_network_and_three_for_instances(slices: SliceSet) -> None:
    image, labels = slices.images[0, 0], slices.labels[0, 0]
    figure = boundary_closeups(image, labels, {"a": labels, "b": np.zeros_like(labels)}, centre=(90, 5))
    assert len(figure.axes) == 2
    assert len(instance_panels(image, labels, (labels == 2).astype(int)).axes) == 3


def test_teaching_tumours_are_uniform_and_conspicuous() -> None:
    from medseg.samples.phantom import make_case
    from medseg.teaching.slices import TUMOUR_CONTRAST_HU, _teaching_case

    original, teaching = make_case((0, 3), SLICE_GRID), _teaching_case(0, 3, SLICE_GRID)
    assert teaching.anatomy.tumours and teaching.anatomy.noise_sd == original.anatomy.noise_sd / 2
    liver = teaching.anatomy.hu.liver
    for before, after in zip(original.anatomy.tumours, teaching.anatomy.tumours, strict=True):
        assert np.array_equal(after.layers[0][0].semi_axes, before.layers[0][0].semi_axes) and len(after.layers) == 1
        assert abs(after.layers[0][1] - liver) == TUMOUR_CONTRAST_HU
