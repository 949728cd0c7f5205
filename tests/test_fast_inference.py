"""medseg's fast inference path: its pieces, and its agreement with the stock MONAI recipe."""

import copy

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.inferers import SlidingWindowInferer
from monai.networks.nets import UNet
from monai.transforms import AsDiscreted, Compose, Lambdad
from scipy import ndimage

from medseg.errors import MedsegError
from medseg.inference import resample
from medseg.inference.inferers import CpuTunedInferer, LargeWindowInferer, MirrorInferer, fold_batch_norms, window_size
from medseg.inference.label_rules import LabelRulesd, apply_label_rules
from medseg.inference.options import InferenceOptions, inference_overrides
from medseg.inference.predict import segment
from medseg.io.nifti import write_nifti


def test_window_is_the_volume_rounded_up_when_it_fits():
    assert window_size([241, 133, 120], 16, 12_000_000) == [256, 144, 128]
    roi = window_size([400, 300, 400], 16, 12_000_000)
    assert np.prod(roi) <= 12_000_000 and all(r % 16 == 0 for r in roi)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return UNet(3, 1, 3, channels=(4, 8, 16, 32, 64), strides=(2, 2, 2, 2), num_res_units=1).eval()


def test_large_window_equals_the_network_on_the_padded_volume(net):
    x = torch.randn(1, 1, 37, 29, 21)
    with torch.inference_mode():
        padded = net(F.pad(x, (0, 11, 0, 3, 0, 11)))[..., :37, :29, :21]
        np.testing.assert_allclose(LargeWindowInferer()(x, net), padded, atol=1e-5)
        split = LargeWindowInferer(max_voxels=16 * 32 * 32)(x, net)
    assert split.shape == (1, 3, 37, 29, 21)


def test_cpu_tuned_network_runs_the_same_windows():
    torch.manual_seed(1)
    net = UNet(3, 1, 3, channels=(4, 8, 16, 32, 64), strides=(2, 2, 2, 2), num_res_units=1, norm="batch").eval()
    for norm in net.modules():
        if isinstance(norm, torch.nn.BatchNorm3d):  # statistics as a trained network has them
            norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2), norm.weight.data.uniform_(0.5, 2)
    norms = sum(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())
    assert norms == 12 and fold_batch_norms(copy.deepcopy(net)) == norms  # each follows a convolution
    x = torch.randn(1, 1, 40, 36, 28)
    windows = SlidingWindowInferer((32, 32, 16), sw_batch_size=2, overlap=0.5, mode="gaussian")
    with torch.inference_mode():
        plain = windows(x, net)
        ours = CpuTunedInferer(windows)(x, net)
    assert ours.shape == (1, 3, 40, 36, 28) and ours.is_contiguous()
    np.testing.assert_allclose(ours, plain, atol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())  # the bundle's network is untouched
    assert next(net.parameters()).is_contiguous()


def test_cpu_tuned_copy_is_kept_across_scans_until_the_network_changes():
    """One tuned copy for a run's scans; new weights loaded into the module (an ensemble's member) make a new one."""
    torch.manual_seed(2)
    net = UNet(3, 1, 3, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm="batch").eval()
    member = UNet(3, 1, 3, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm="batch").eval()
    for norm in (m for m in member.modules() if isinstance(m, torch.nn.BatchNorm3d)):
        norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2)
    windows = SlidingWindowInferer((16, 16, 16), sw_batch_size=2, overlap=0.25)
    tuned, x = CpuTunedInferer(windows), torch.randn(1, 1, 24, 20, 16)
    with torch.inference_mode():
        first = tuned(x, net)
        copy_made = tuned.tuned(net)
        assert tuned.tuned(net) is copy_made  # the next scan reuses it
        torch.testing.assert_close(tuned(x, net), first, rtol=0, atol=0)
        net.load_state_dict(member.state_dict())  # as EnsembleInferer loads a member
        ours, plain = tuned(x, net), windows(x, net)
        assert tuned.tuned(net) is not copy_made
        np.testing.assert_allclose(ours, plain, atol=1e-4)
        assert not np.allclose(ours, first, atol=1e-3)
        net.train()  # batch norms in training mode are not folded: a new copy again
        assert tuned.tuned(net) is not tuned.tuned(net.eval())


def test_cpu_tuned_inferer_runs_the_tuned_copy():
    """Hooks travel into the copy: there no batch norm runs and the first convolution sees channels-last windows."""
    net = UNet(3, 1, 3, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm="batch").eval()
    norms_run, channels_last = [], []
    for norm in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)):
        norm.register_forward_hook(lambda *_: norms_run.append(1))
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv3d))
    first_conv.register_forward_pre_hook(
        lambda _, args: channels_last.append(args[0].is_contiguous(memory_format=torch.channels_last_3d))
    )
    windows = SlidingWindowInferer((16, 16, 16), sw_batch_size=2, overlap=0.25)
    x = torch.randn(1, 1, 24, 20, 16)
    with torch.inference_mode():
        CpuTunedInferer(windows)(x, net)
        assert not norms_run and channels_last and all(channels_last)
        windows(x, net)  # the bundle's own network still has its batch norms
        assert norms_run


def test_mirror_tta_averages_all_flips():
    calls = []

    def record(x):
        calls.append(x.clone())
        return x

    x = torch.arange(24.0).reshape(1, 1, 2, 3, 4)
    out = MirrorInferer(LargeWindowInferer(divisor=1), axes=(0, 2))(x, record)
    assert len(calls) == 4
    torch.testing.assert_close(out, x)  # an equivariant "network" is unchanged by TTA


def test_tta_mirrors_the_bundles_windows_inside_one_tuned_copy():
    """``--tta`` on a bundle trained with mirroring: CpuTuned(Mirror(the bundle's windows)), as the config builds it."""
    from monai.bundle import ConfigParser

    from medseg.bundles import find_bundle

    bundle = find_bundle("mri_brain_tissue_3d")
    parser = ConfigParser()
    parser.read_config(str(bundle.config("inference")))
    parser.update(
        {"patch_size": [16, 16, 16], "inferer": inference_overrides(bundle, InferenceOptions(tta=True))["inferer"]}
    )
    inferer = parser.get_parsed_content("inferer")
    assert isinstance(inferer, CpuTunedInferer) and isinstance(inferer.inferer, MirrorInferer)
    assert inferer.inferer.axes == (0,) and isinstance(inferer.inferer.inferer, SlidingWindowInferer)
    torch.manual_seed(2)
    net = UNet(3, 1, 3, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm="batch").eval()
    x = torch.randn(1, 1, 24, 20, 18)
    with torch.inference_mode():
        plain = inferer.inferer.inferer(x, net)
        mirrored = torch.flip(inferer.inferer.inferer(torch.flip(x, [2]), net), [2])
        np.testing.assert_allclose(inferer(x, net), (plain + mirrored) / 2, atol=1e-4)
    with pytest.raises(MedsegError, match="was not trained with mirroring"):
        inference_overrides(find_bundle("ct_liver_tumour_3d"), InferenceOptions(tta=True))


def test_trilinear_matches_grid_sample():
    volume = torch.randn(2, 7, 5, 4)
    points = torch.tensor([[0.0, 0.0, 0.0], [3.25, 1.5, 2.75], [6.0, 4.0, 3.0], [5.9, 0.1, 1.3]])
    grid = (2 * points / torch.tensor([6.0, 4.0, 3.0]) - 1).flip(-1).reshape(1, 1, 1, -1, 3)
    expected = F.grid_sample(volume[None], grid, mode="bilinear", align_corners=True)[0, :, 0, 0]
    torch.testing.assert_close(resample._trilinear(volume, points), expected, atol=1e-5, rtol=0)


def test_cells_take_a_label_only_when_every_corner_has_it():
    labels = torch.zeros(4, 4, 4, dtype=torch.long)
    labels[2:, :, :] = 1
    labels[0] = resample.OUTSIDE
    cells = resample.cell_labels(labels)
    assert (cells[0] == resample.MIXED).all()  # next to the outside: interpolate
    assert (cells[1] == resample.MIXED).all() and (cells[2] == 1).all()
    assert resample.cell_labels(torch.full((2, 2, 2), resample.OUTSIDE))[0, 0, 0] == 0


# Peak memory (bytes) that cell_labels adds over its int16 input, measured in a fresh process.
_CELL_MEMORY = """
import resource, torch
from medseg.inference.resample import cell_labels
labels = torch.randint(-2, 3, (200, 200, 200), dtype=torch.int16)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cell_labels(labels)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_cell_labels_needs_a_few_label_volumes_not_eight():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _CELL_MEMORY], capture_output=True, text=True, check=True)
    volume = 200**3 * 2  # the int16 labels
    assert int(result.stdout) < 4 * volume, "the eight corners of every cell were held at once"


def _affine(permutation, signs, spacing, shape, centre):
    affine = np.zeros((4, 4))
    affine[3, 3] = 1
    for axis, world in enumerate(permutation):
        affine[world, axis] = signs[axis] * spacing[axis]
    affine[:3, 3] = centre - affine[:3, :3] @ (np.asarray(shape) / 2)
    return affine


def _regions_to_labels():
    """A BraTS-like decision: thresholds on three sigmoid regions, then ET -> 4, TC -> 1, WT -> 2."""

    def rule(p):
        return torch.where(p[2:3] > 0, 4, torch.where(p[0:1] > 0, 1, torch.where(p[1:2] > 0, 2, 0))).float()

    return Compose([AsDiscreted(keys="pred", threshold=0.5), Lambdad(keys="pred", func=rule)])


@pytest.mark.parametrize("seed", range(6))
def test_cell_shortcut_equals_full_interpolation(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(ndimage.gaussian_filter(rng.normal(size=(3, 20, 17, 11)), (0, 1.5, 1.5, 1.5)) * 18)
    argmax = seed % 2 == 0
    probabilities = (torch.softmax(logits, 0) if argmax else torch.sigmoid(logits)).float()
    decide = AsDiscreted(keys="pred", argmax=True) if argmax else _regions_to_labels()
    network = np.diag([1.5, 1.5, 2.5, 1.0])
    source_shape = (40, 35, 30)
    axes, signs, spacing = rng.permutation(3), rng.choice([-1, 1], 3), rng.uniform(0.6, 1.2, 3)
    source = _affine(axes, signs, spacing, source_shape, np.array([15.0, 13.0, 14.0]) + rng.uniform(-4, 4, 3))
    shortcut = resample.to_source_grid(probabilities, network, source, source_shape, decide, slab_voxels=3000)
    monkeypatch.setattr(resample, "_axis_map", lambda transform: None)  # every voxel through grid_sample
    full = resample.to_source_grid(probabilities, network, source, source_shape, decide, slab_voxels=3000)
    np.testing.assert_array_equal(shortcut, full)
    assert len(np.unique(shortcut)) >= 3


def test_label_rules_keep_the_organ_and_its_tumours():
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[5:20, 5:20, 5:20] = 1  # the liver
    labels[8:12, 8:12, 8:12] = 2  # a tumour inside it
    labels[25:28, 25:28, 25:28] = 1  # a stray false-positive blob
    labels[0:2, 25:28, 0:2] = 2  # a tumour far from any liver
    cleaned = apply_label_rules(labels.copy(), {"largest_component": [[1, 2]], "inside": {"2": [1]}})
    assert cleaned[25:28, 25:28, 25:28].max() == 0 and cleaned[0:2, 25:28, 0:2].max() == 0
    assert (cleaned == 2).sum() == 64 and (cleaned == 1).sum() == 15**3 - 64


@pytest.mark.parametrize("order", ["C", "F", "strided"])
def test_label_rules_transform_cleans_maps_in_any_memory_order(order):
    """The resampling hands over Fortran-ordered maps, which ``LabelRulesd`` cleans through their transpose."""
    rng = np.random.default_rng(3)
    labels = np.zeros((24, 20, 28), np.uint8)
    labels[3:15, 4:14, 5:20] = 1
    labels[6:9, 6:9, 8:12] = 2
    labels[rng.random(labels.shape) > 0.995] = 1  # scattered false-positive voxels
    labels[20:23, 0:3, 24:27] = 2  # a tumour outside the liver
    rules = {"largest_component": [[1, 2]], "inside": {"2": [1]}}
    expected = apply_label_rules(labels.copy(), rules)
    given = {"C": labels.copy(), "F": np.asfortranarray(labels), "strided": np.repeat(labels, 2, axis=0)[::2]}[order]
    cleaned = LabelRulesd("pred", rules)({"pred": torch.from_numpy(given)[None]})["pred"]
    assert cleaned.shape == (1, 24, 20, 28)
    np.testing.assert_array_equal(cleaned[0].numpy(), expected)
    assert (expected != labels).sum() > 10  # the rules did change something


def _reoriented(source, target, codes, oblique=False):
    image = nib.load(source)
    now = nib.orientations.io_orientation(image.affine)
    moved = image.as_reoriented(nib.orientations.ornt_transform(now, nib.orientations.axcodes2ornt(codes)))
    affine = moved.affine.copy()
    if oblique:  # turn the grid 10 degrees about z: direction cosines no longer axis-aligned
        c, s = np.cos(np.deg2rad(10)), np.sin(np.deg2rad(10))
        affine = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]) @ affine
    write_nifti(target, np.asarray(moved.dataobj), affine)
    return target


@pytest.fixture(scope="module")
def orientations(tmp_path_factory, small_ct):
    folder = tmp_path_factory.mktemp("orientations")
    source = small_ct / "imagesTs" / "liver_006.nii.gz"  # 3.8 x 3.8 x 4.7 mm voxels
    return [
        _reoriented(source, folder / "ras.nii.gz", ("R", "A", "S")),
        _reoriented(source, folder / "lps.nii.gz", ("L", "P", "S")),
        _reoriented(source, folder / "pil.nii.gz", ("P", "I", "L")),
        _reoriented(source, folder / "oblique.nii.gz", ("L", "P", "S"), oblique=True),
    ]


def test_fast_resampling_equals_invertd_in_every_orientation(tmp_path, tiny_run, orientations):
    """Same network windows; only the way back to the source grid differs (Invertd + argmax vs ours)."""
    bundle, stock_path = tiny_run.bundle, InferenceOptions(stock=True)
    fast = {"postprocessing": inference_overrides(bundle, InferenceOptions())["postprocessing"]}
    ours = segment(bundle, orientations, tmp_path / "ours", device="cpu", options=stock_path, overrides=fast)
    stock = segment(bundle, orientations, tmp_path / "stock", device="cpu", options=stock_path)
    for mine, theirs in zip(ours, stock, strict=True):
        a, b = np.asarray(nib.load(mine).dataobj), np.asarray(nib.load(theirs).dataobj)
        assert a.shape == b.shape and (b > 0).sum() > 50
        np.testing.assert_array_equal(a, b, err_msg=mine.name)


def test_fast_path_masks_agree_with_the_stock_recipes_in_every_orientation(tmp_path, tiny_run, orientations):
    """The default fast path, end to end, against the stock recipe: RAS, LPS, PIL, oblique; 3.8 x 3.8 x 4.7 mm."""
    bundle = tiny_run.bundle
    ours = segment(bundle, orientations, tmp_path / "fast", device="cpu")
    stock = segment(bundle, orientations, tmp_path / "stock", device="cpu", options=InferenceOptions(stock=True))
    for mine, theirs, scan in zip(ours, stock, orientations, strict=True):
        mask, source = nib.load(mine), nib.load(scan)
        assert mask.get_data_dtype() == np.uint8 and mask.shape == source.shape
        np.testing.assert_array_equal(mask.affine, source.affine)
        a, b = np.asarray(mask.dataobj), np.asarray(nib.load(theirs).dataobj)
        assert set(np.unique(a)) <= {0, 1, 2} and (b == 1).sum() > 50
        np.testing.assert_array_equal(a, b, err_msg=mine.name)


def test_large_window_masks_keep_each_scans_grid(tmp_path, tiny_run, orientations):
    """Large windows change the answer (measured in benchmarks/RESULTS.md), never the grid."""
    masks = segment(tiny_run.bundle, orientations, tmp_path, device="cpu", options=InferenceOptions(window="large"))
    for mask_path, scan in zip(masks, orientations, strict=True):
        mask, source = nib.load(mask_path), nib.load(scan)
        assert mask.get_data_dtype() == np.uint8 and mask.shape == source.shape
        np.testing.assert_array_equal(mask.affine, source.affine)
        assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1, 2} and np.asarray(mask.dataobj).any()


def test_window_and_stock_options_are_checked(tiny_run):
    with pytest.raises(MedsegError, match="unknown window 'huge'; choose one of: patch, large"):
        inference_overrides(tiny_run.bundle, InferenceOptions(window="huge"))
    with pytest.raises(MedsegError, match="unknown window 'huge'"):
        inference_overrides(tiny_run.bundle, InferenceOptions(stock=True, window="huge"))
    with pytest.raises(MedsegError, match="`window='large'` needs the fast path"):
        inference_overrides(tiny_run.bundle, InferenceOptions(stock=True, window="large"))
    with pytest.raises(MedsegError, match=r"`label_rules=True` needs the fast path \(drop `stock=True`\)"):
        inference_overrides(tiny_run.bundle, InferenceOptions(stock=True, label_rules=True))
