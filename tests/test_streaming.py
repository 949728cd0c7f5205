"""DiscretisingInferer: MONAI's sliding windows then the bundle's discretisation, without the whole logits."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import Activationsd, AsDiscreted, Compose

from medseg.inference import streaming
from medseg.inference.streaming import DiscretisingInferer

DECIDE = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="pred", argmax=True)])


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)  # any network will do: what is tested is how its windows are stitched
    layers = [torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(8, 7, 3, padding=1)]
    return torch.nn.Sequential(*layers).eval()


@pytest.mark.parametrize(
    ("shape", "overlap", "batch"),
    [
        ((45, 38, 29), 0.25, 1),  # last windows pulled back from the edge: cells of several sizes
        ((40, 36, 28), 0.5, 3),  # batches of windows that straddle rows
        ((10, 38, 12), 0.25, 2),  # smaller than the window in two axes: padded, then cropped back
    ],
)
def test_labels_equal_monais_windows_then_the_bundles_steps(net, shape, overlap, batch):
    torch.manual_seed(1)
    volume = torch.randn(2, 1, *shape)
    windows = SlidingWindowInferer((16, 16, 16), sw_batch_size=batch, overlap=overlap, mode="gaussian")
    windows.padding_mode = "replicate"
    with torch.no_grad():
        stock = torch.stack([DECIDE({"pred": logits})["pred"] for logits in windows(volume, net)])
        ours = DiscretisingInferer(windows, DECIDE)(volume, net)
    assert ours.shape == (2, 1, *shape)
    assert torch.equal(ours, stock)  # bit for bit: the same windows, weights and order of sums
    assert len(torch.unique(stock)) > 3


def test_labels_keep_the_inputs_metadata(net):
    affine = torch.diag(torch.tensor([1.5, 1.5, 1.5, 1.0], dtype=torch.float64))
    volume = MetaTensor(torch.randn(1, 1, 20, 20, 20), affine=affine, meta={"filename_or_obj": "scan.nii.gz"})
    with torch.no_grad():
        labels = DiscretisingInferer(SlidingWindowInferer((16, 16, 16)), DECIDE)(volume, net)
    assert isinstance(labels, MetaTensor)
    assert labels.meta["filename_or_obj"] == "scan.nii.gz"
    np.testing.assert_array_equal(labels.affine, affine)


def test_only_a_band_of_cells_is_held_at_once(net, monkeypatch):
    held, peak = {}, [0]
    add = streaming._add

    def counting(totals, cell, part):
        add(totals, cell, part)
        if part.shape[0] == 7:  # the logits' running sums, not the weights'
            held.update(totals=totals)
            peak[0] = max(peak[0], sum(total.numel() for total in totals.values()))

    monkeypatch.setattr(streaming, "_add", counting)
    shape = (96, 40, 40)  # nine windows along the first axis, MONAI's outermost
    with torch.no_grad():
        DiscretisingInferer(SlidingWindowInferer((16, 16, 16), overlap=0.25), DECIDE)(torch.randn(1, 1, *shape), net)
    assert peak[0] <= 7 * 28 * 40 * 40  # one window deep and its overlap, not the 96 of the volume
    assert not held["totals"]  # every cell was discretised and dropped
