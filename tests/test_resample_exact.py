"""Resampling back to the scan's grid, against references that share none of its code.

:func:`~medseg.inference.resample.to_source_grid` interpolates only where it must (inside the box of
network foreground grown by one voxel, in cells whose corners disagree). SimpleITK's linear
resampling interpolates every channel at every source voxel; the labels must be the same, voxel for
voxel, in axis-aligned and oblique grids, for argmax and for thresholded regions. A one-voxel case
is worked out by hand.
"""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.transforms import AsDiscreted
from scipy import ndimage

from medseg.inference.resample import all_finite, foreground_box, to_source_grid
from medseg.io.nifti import lps_affine

from .shapes import grid_affine
from .test_fast_inference import _regions_to_labels

NETWORK_SHAPE = (24, 20, 16)
NETWORK = grid_affine((2.0, 2.0, 3.0), NETWORK_SHAPE, (0.0, 0.0, 0.0))
SOURCES = {  # name: (shape, spacing, centre, options): finer voxels, other storage orders, an oblique grid
    "lps": ((50, 44, 40), (0.9, 0.9, 1.3), (0.5, -0.3, 0.7), {"flip": (-1, -1, 1)}),
    "pil": ((36, 60, 30), (1.1, 0.7, 1.6), (-0.4, 0.9, 0.2), {"order": (1, 2, 0), "flip": (1, -1, -1)}),
    "oblique": ((54, 42, 34), (0.8, 1.0, 1.4), (0.3, 0.1, -0.6), {"degrees": (8.0, -5.0, 12.0)}),
}


def source_grid(name):
    """``(affine, shape)`` of a source scan's grid."""
    shape, spacing, centre, options = SOURCES[name]
    return grid_affine(spacing, shape, centre, **options), shape


def sitk_image(affine, shape, array=None):
    """A SimpleITK image on the grid of a voxel-to-RAS ``affine`` (ITK works in LPS), holding ``array`` (x, y, z)."""
    lps = lps_affine(affine)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    voxels = np.zeros(shape[::-1]) if array is None else np.ascontiguousarray(array.transpose(2, 1, 0))
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def sitk_resampled(probabilities, source_affine, source_shape):
    """``(C, X, Y, Z)``: each channel resampled linearly onto the source grid by SimpleITK (0 outside)."""
    target = sitk_image(source_affine, source_shape)
    channels = []
    for channel in probabilities.double().numpy():
        moving = sitk_image(NETWORK, NETWORK_SHAPE, channel)
        resampled = sitk.Resample(moving, target, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat64)
        channels.append(sitk.GetArrayFromImage(resampled).transpose(2, 1, 0))
    return torch.from_numpy(np.stack(channels))


def network_output(seed, kind):
    """Smooth random probabilities with foreground only away from the grid's edge (where SimpleITK and
    zero padding treat the half voxel beyond the last centre differently)."""
    rng = np.random.default_rng(seed)
    logits = ndimage.gaussian_filter(rng.normal(size=(3, *NETWORK_SHAPE)), (0, 1.5, 1.5, 1.5)) * 18
    edge = np.ones(NETWORK_SHAPE, bool)
    edge[3:-3, 3:-3, 3:-3] = False
    if kind == "softmax":
        logits[0][edge] += 40
        return torch.softmax(torch.from_numpy(logits), 0).float()
    logits[:, edge] -= 40
    return torch.sigmoid(torch.from_numpy(logits)).float()


def undecided(probabilities, kind):
    """Voxels where float32 rounding may tip the decision: the top two classes, or a probability and its
    threshold, within 1e-6 (outside the network grid every probability is 0 and the answer is 0)."""
    if kind == "softmax":
        top = torch.topk(probabilities, 2, dim=0).values
        return ((top[0] - top[1] < 1e-6) & (top[0] > 0)).numpy()
    return ((probabilities - 0.5).abs() < 1e-6).any(0).numpy()


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
@pytest.mark.parametrize("grid", sorted(SOURCES))
def test_labels_equal_simpleitks_resampling(grid, kind):
    probabilities = network_output(seed=len(grid) + len(kind), kind=kind)
    decide = AsDiscreted(keys="pred", argmax=True) if kind == "softmax" else _regions_to_labels()
    source_affine, source_shape = source_grid(grid)
    ours = to_source_grid(probabilities, NETWORK, source_affine, source_shape, decide, slab_voxels=20_000)
    interpolated = sitk_resampled(probabilities, source_affine, source_shape)
    reference = decide({"pred": interpolated})["pred"][0].numpy().round().astype(np.uint8)
    assert ours.shape == source_shape and ours.dtype == np.uint8 and ours.flags.f_contiguous
    assert len(np.unique(reference)) >= 3 and (reference > 0).sum() > 1000
    tied = undecided(interpolated, kind)
    assert tied.sum() <= 1, tied.sum()
    np.testing.assert_array_equal(ours[~tied], reference[~tied])


@pytest.mark.parametrize("where", [(5, 5, 5), (3, 6, 8)], ids=["centre", "off-centre"])
def test_one_foreground_voxel_by_hand(where):
    """Network voxel ``where`` is foreground with p = 0.8, every other one background with p = 1.

    Trilinear weight w of that voxel at a source point: foreground wins where 0.8 w > 1 - 0.8 w, i.e.
    w > 0.625. The source grid has four voxels per network voxel, so its points sit 0, 0.25, 0.5 ...
    network voxels away: w = 1 at the centre, 0.75 one source voxel along an axis, 0.5625 diagonally.
    So the mask is the centre and its six face neighbours; five of those lie outside the network
    voxel's own box, which is why the box must grow by a voxel. Off-centre, each axis has its own box.
    """
    probabilities = torch.zeros(2, 12, 14, 16)
    probabilities[0] = 1.0
    probabilities[(slice(None), *where)] = torch.tensor([0.2, 0.8])
    network, source = np.diag([2.0, 2.0, 2.0, 1.0]), np.diag([0.5, 0.5, 0.5, 1.0])
    labels = to_source_grid(probabilities, network, source, (48, 56, 64), AsDiscreted(keys="pred", argmax=True))
    expected = np.zeros((48, 56, 64), np.uint8)
    x, y, z = (4 * w for w in where)
    expected[x, y, z - 1 : z + 2] = expected[x, y - 1 : y + 2, z] = expected[x - 1 : x + 2, y, z] = 1
    np.testing.assert_array_equal(labels, expected)


def test_foreground_box_grows_by_the_margin_and_stays_inside():
    labels = torch.zeros(10, 8, 6, dtype=torch.long)
    labels[3:5, 0:2, 5] = 2
    lo, hi = foreground_box(labels)
    np.testing.assert_array_equal(lo, [2, 0, 4])
    np.testing.assert_array_equal(hi, [5, 2, 5])
    lo, hi = foreground_box(labels, margin=0)
    np.testing.assert_array_equal(lo, [3, 0, 5])
    np.testing.assert_array_equal(hi, [4, 1, 5])
    assert foreground_box(torch.zeros(3, 3, 3, dtype=torch.long)) is None


@pytest.mark.parametrize("side", ["ends", "starts"])
def test_a_scan_that_ends_or_starts_at_the_foreground(side):
    """The same voxel as above, on source grids whose last (or first) voxel lies at its centre: the cross is cut."""
    probabilities = torch.zeros(2, 12, 12, 12)
    probabilities[0] = 1.0
    probabilities[:, 5, 5, 5] = torch.tensor([0.2, 0.8])
    network, source = np.diag([2.0, 2.0, 2.0, 1.0]), np.diag([0.5, 0.5, 0.5, 1.0])
    if side == "starts":
        source[:3, 3] = 10.0  # source voxel 0 is network voxel 5
    labels = to_source_grid(probabilities, network, source, (21, 21, 21), AsDiscreted(keys="pred", argmax=True))
    centre = 20 if side == "ends" else 0
    inward = -1 if side == "ends" else 1
    expected = np.zeros((21, 21, 21), np.uint8)
    expected[centre, centre, centre] = 1
    for axis in range(3):
        neighbour = [centre] * 3
        neighbour[axis] += inward
        expected[tuple(neighbour)] = 1
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize("channels", [1, 4])
def test_the_transform_puts_labels_on_the_source_files_grid(tmp_path, channels):
    """``ResampleToSourced`` reads the grid from the source file (a 4-channel scan has the same spatial grid)."""
    from monai.data import MetaTensor

    from medseg.errors import MedsegError
    from medseg.inference.resample import ResampleToSourced
    from medseg.io.nifti import write_nifti

    affine, shape = source_grid("lps")
    voxels = np.zeros(shape if channels == 1 else (*shape, channels), np.float32)
    scan = write_nifti(tmp_path / "scan.nii.gz", voxels, affine)
    probabilities = network_output(seed=5, kind="softmax")
    pred = MetaTensor(probabilities, affine=torch.as_tensor(NETWORK), meta={"filename_or_obj": str(scan)})
    decide = AsDiscreted(keys="pred", argmax=True)
    out = ResampleToSourced("pred", decide)({"pred": pred})["pred"]
    assert out.shape == (1, *shape) and out.dtype == torch.uint8
    source = nib.load(scan).affine
    np.testing.assert_array_equal(out.affine.numpy(), source)
    np.testing.assert_array_equal(out[0].numpy(), to_source_grid(probabilities, NETWORK, source, shape, decide))
    pred[0, 3, 3, 3] = float("nan")
    with pytest.raises(MedsegError, match="the network output is not finite"):
        ResampleToSourced("pred", decide)({"pred": pred})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_all_finite_finds_one_bad_value_anywhere(bad, dtype):
    values = torch.rand(3, 7, 6, 5).to(dtype)
    assert all_finite(values) and all_finite(torch.zeros(0)) and all_finite(torch.ones(2, 3, dtype=torch.int64))
    for position in (0, 17, values.numel() - 1):
        spoiled = values.clone()
        spoiled.view(-1)[position] = bad
        assert not all_finite(spoiled)
