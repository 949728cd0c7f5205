"""``SlabSpacingd`` against MONAI's ``Spacingd``: the same voxels and metadata, filled a slab at a time.

The fast path of ``medseg infer`` puts it in place of every ``Spacingd`` of a bundle's preprocessing,
so it must give what ``Spacingd`` gives, voxel for voxel, on the grids scans come in (any storage
order, oblique, finer or coarser than the network's), and ``Invertd`` must undo it as it undoes
``Spacingd``. What it is for is memory: it must never hand MONAI more than a slab of the scan.
"""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd, Spacingd

import medseg.inference.slab_spacing as slab_spacing
from medseg.bundles import find_bundle
from medseg.inference.options import InferenceOptions, inference_overrides
from medseg.inference.slab_spacing import SlabSpacingd

from .shapes import grid_affine

SHAPE = (37, 41, 29)
GRIDS = {  # name: (spacing, options) of the source grid
    "ras": ((0.8, 0.9, 1.3), {}),
    "lps": ((0.7, 0.7, 2.0), {"flip": (-1, -1, 1)}),
    "pil": ((1.1, 0.6, 1.6), {"order": (1, 2, 0), "flip": (1, -1, -1)}),
    "oblique": ((0.9, 1.0, 1.2), {"degrees": (9.0, -6.0, 14.0)}),
}
STYLES = [  # (padding_mode, pixdim): coarser, finer, and Spacingd's -1 (keep that axis's spacing)
    ("border", (1.5, 1.5, 2.5)),
    ("border", (1.1, 1.3, 0.9)),
    ("zeros", (1.2, 0.8, -1)),
]
ULP = 2.5e-7  # two float32 ulps of values near 1: what rounding the slab's coordinates in float64 moves
SLAB = 300  # output voxels at once: many slabs on these small grids


def scan(grid: str, seed: int = 0) -> MetaTensor:
    """A 2-channel ``(2, 37, 41, 29)`` random volume on the named grid."""
    spacing, options = GRIDS[grid]
    values = np.random.default_rng(seed).normal(size=(2, *SHAPE)).astype(np.float32)
    affine = grid_affine(spacing, SHAPE, (3.0, -2.0, 5.0), **options)
    return MetaTensor(torch.from_numpy(values), affine=torch.as_tensor(affine))


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("padding,pixdim", STYLES)
def test_same_voxels_and_metadata_as_spacingd(grid, padding, pixdim):
    arguments = {"keys": "image", "pixdim": pixdim, "mode": "bilinear", "padding_mode": padding}
    stock = Spacingd(**arguments)({"image": scan(grid)})["image"]
    source = scan(grid)
    slabbed = SlabSpacingd(**arguments, slab_voxels=SLAB)({"image": source})["image"]
    assert slabbed.shape == stock.shape
    torch.testing.assert_close(slabbed.as_tensor(), stock.as_tensor(), rtol=0, atol=ULP)
    assert slabbed.dtype == torch.float32
    assert torch.equal(slabbed.affine, stock.affine)
    assert torch.equal(torch.as_tensor(slabbed.pixdim), torch.as_tensor(stock.pixdim))
    ours, theirs = slabbed.applied_operations[-1], stock.applied_operations[-1]
    assert set(ours) == set(theirs)
    assert ours["orig_size"] == theirs["orig_size"]
    assert torch.equal(ours["extra_info"]["src_affine"], theirs["extra_info"]["src_affine"])
    assert not source.pending_operations  # planning lazily left the input as it was


@pytest.mark.parametrize("grid", ["lps", "oblique"])
def test_invertd_undoes_it_as_it_undoes_spacingd(grid):
    results = []
    for step in (Spacingd, SlabSpacingd):
        forward = Compose([step(keys="image", pixdim=(1.5, 1.5, 2.5), mode="bilinear")])
        data = forward({"image": scan(grid)})
        data["pred"] = data["image"].clone()
        back = Invertd(keys="pred", transform=forward, orig_keys="image", nearest_interp=False)(data)["pred"]
        results.append(back)
    assert results[1].shape == (2, *SHAPE)
    torch.testing.assert_close(results[1].as_tensor(), results[0].as_tensor(), rtol=0, atol=2 * ULP)
    assert torch.equal(results[0].affine, results[1].affine)


def test_monai_never_sees_more_than_a_slab(monkeypatch):
    pieces = []
    resample = slab_spacing.spatial_resample

    def counted(piece, *args):
        pieces.append(tuple(piece.shape))
        return resample(piece, *args)

    monkeypatch.setattr(slab_spacing, "spatial_resample", counted)
    source = scan("lps")  # 2.0 mm slices resampled to 2.5 mm: 23 output slices from 29
    out = SlabSpacingd(keys="image", pixdim=(1.5, 1.5, 2.5), slab_voxels=1000)({"image": source})["image"]
    slices = 1000 // (out.shape[1] * out.shape[2])
    assert slices == 2
    assert len(pieces) == -(-out.shape[3] // slices)
    # a slab's source reach (2.5 / 2.0 mm per slice), its end points, and one slice of margin each side
    assert max(piece[3] for piece in pieces) <= int(np.ceil(slices * 1.25)) + 3
    assert {piece[1:3] for piece in pieces} == {tuple(source.shape[1:3])}


def test_nearest_neighbour_is_left_to_spacingd(monkeypatch):
    monkeypatch.setattr(slab_spacing, "spatial_resample", None)  # a slab would call it, and fail
    arguments = {"keys": "image", "pixdim": (1.1, 1.3, 0.9), "mode": "nearest"}
    stock = Spacingd(**arguments)({"image": scan("oblique")})["image"]
    whole = SlabSpacingd(**arguments, slab_voxels=SLAB)({"image": scan("oblique")})["image"]
    assert torch.equal(whole.as_tensor(), stock.as_tensor())


def test_what_fits_one_slab_and_lazy_calls_are_spacingds():
    stock = Spacingd(keys="image", pixdim=(1.5, 1.5, 2.5))({"image": scan("ras")})["image"]
    whole = SlabSpacingd(keys="image", pixdim=(1.5, 1.5, 2.5))({"image": scan("ras")})["image"]
    assert torch.equal(whole.as_tensor(), stock.as_tensor())
    planned = SlabSpacingd(keys="image", pixdim=(1.5, 1.5, 2.5), lazy=True)({"image": scan("ras")})["image"]
    assert planned.shape == (2, *SHAPE)  # nothing moved yet: MONAI's pending operation holds the plan
    assert planned.peek_pending_shape() == tuple(stock.shape[1:])


def test_unchanged_grid_is_handed_back_as_spacingd_does():
    source = scan("ras")
    same = SlabSpacingd(keys="image", pixdim=GRIDS["ras"][0], slab_voxels=SLAB)({"image": source})["image"]
    assert torch.equal(same.as_tensor(), source.as_tensor())


def test_the_fast_path_resamples_in_slabs_and_the_stock_path_does_not():
    bundle = find_bundle("ct_liver_tumour_3d")
    fast = inference_overrides(bundle, InferenceOptions())
    stock = inference_overrides(bundle, InferenceOptions(stock=True))
    slabbed = [key for key, value in fast.items() if value == "medseg.inference.slab_spacing.SlabSpacingd"]
    assert slabbed == [f"{path}#_target_" for path, _ in bundle.parsed("inference").components("Spacingd")]
    assert len(slabbed) == 1
    assert not any(value == "medseg.inference.slab_spacing.SlabSpacingd" for value in stock.values())
