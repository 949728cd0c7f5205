"""Model-zoo bundles (tests/zoo/, the zoo's own configs) run through medseg as through ``monai.bundle run``.

Shrinking overrides, given to both runs alike: fewer network features (``network_def#channels``,
``init_filters``, DiNTS ``num_blocks``/``num_depths``), a window that fits the small scan
(``inferer#roi_size``), no worker processes, the CPU; pancreas loads its architecture file on the CPU.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import slicerio
import torch
from scipy import ndimage

from medseg.bundle_config import BundleConfig, read_config, target_name, write_config
from medseg.bundles import Bundle
from medseg.errors import MedsegError
from medseg.inference.options import InferenceOptions, chosen_path, held_channels, inference_overrides
from medseg.inference.predict import segment_report
from medseg.inference.recipe import Recipe, read_recipe
from medseg.inference.requirements import check_network, check_packages
from tests.zoo_bundles import CPU, ZOO, agreement, make_weights, run_bundle, write_scan, zoo_copy

AGREEMENT = 0.999
WORKERS = {"dataloader#num_workers": 0}


def _both(root: Path, scan: Path, data: list, overrides: dict, tmp_path: Path, extras: bool = False):
    """Agreement of medseg's mask with the bundle's own run, and medseg's report."""
    run_bundle(root, data, tmp_path / "stock", {**CPU, **overrides})
    report = segment_report(
        Bundle(root), [scan], tmp_path / "out", device="cpu", overrides={**overrides, **WORKERS}, extras=extras
    )
    assert not report.failed, report.failed
    stock = next((tmp_path / "stock").rglob("*.nii.gz"))
    return agreement(stock, report.written[0]), report


def test_target_spellings_are_one_component() -> None:
    for spelling in ("Invertd", "monai.transforms.Invertd", "monai.transforms.post.dictionary.Invertd", "InvertD"):
        assert target_name({"_target_": spelling}) == "Invertd"
    assert target_name({"_target_": "SaveImage"}) == "SaveImage"
    assert target_name("@writer") is None


@pytest.mark.slow
def test_spleen_fast_path_equals_bundle_run_and_names_reach_slicer(tmp_path: Path) -> None:
    root = zoo_copy("spleen_ct_segmentation", tmp_path)
    small = {"network_def#channels": [4, 8, 16, 32, 64], "inferer#roi_size": [64, 64, 32]}
    make_weights(root, small)
    scan = write_scan(tmp_path / "scan.nii.gz", (48, 48, 24), (2.0, 2.0, 2.7))
    share, report = _both(root, scan, [{"image": str(scan)}], small, tmp_path, extras=True)
    assert report.path == "fast path"
    assert share >= AGREEMENT
    segments = slicerio.read_segmentation(str(tmp_path / "out" / "scan.seg.nrrd"))["segments"]
    assert [segment["name"] for segment in segments] == ["spleen"]
    assert "78961009" in str(segments[0]["terminology"])
    stock = segment_report(
        Bundle(root),
        [scan],
        tmp_path / "stock_out",
        device="cpu",
        overrides={**small, **WORKERS},
        options=InferenceOptions(stock=True),
        extras=False,
    )  # the bundle's own recipe, its inline SaveImaged replaced by medseg's writer
    assert stock.path == "stock recipe (`stock=True`)"
    assert agreement(next((tmp_path / "stock").rglob("*.nii.gz")), stock.written[0]) >= AGREEMENT


@pytest.mark.slow
def test_brats_sigmoid_channels_become_the_bundles_label_values(tmp_path: Path) -> None:
    root = zoo_copy("brats_mri_segmentation", tmp_path)
    small = {"network_def#init_filters": 8, "inferer#roi_size": [32, 32, 32]}
    make_weights(root, small)
    files = [write_scan(tmp_path / f"c{c}.nii.gz", (32, 32, 24), (4.0, 4.0, 4.0), ct=False) for c in range(4)]
    channels = [np.asarray(nib.load(path).dataobj) * (c + 1) for c, path in enumerate(files)]
    for path, data in zip(files, channels, strict=True):
        nib.save(nib.Nifti1Image(data, nib.load(path).affine), path)
    scan = tmp_path / "scan.nii.gz"  # medseg's input: one 4D file, channels last (MSD)
    nib.save(nib.Nifti1Image(np.stack(channels, -1), nib.load(files[0]).affine), scan)
    share, report = _both(root, scan, [{"image": [str(path) for path in files]}], small, tmp_path)
    assert report.path == "fast path"
    assert share >= AGREEMENT
    labels = {label.value: label.name for label in Bundle(root).labels}
    assert labels == {0: "background", 1: "Tumor core", 2: "Whole tumor", 4: "Enhancing tumor"}


@pytest.mark.slow
def test_wholebody_discretise_then_invert_nearest_takes_the_fast_path(tmp_path: Path) -> None:
    root = zoo_copy("wholeBody_ct_segmentation", tmp_path)
    small = {"network_def#init_filters": 8, "inferer#roi_size": [32, 32, 32]}
    make_weights(root, small)
    scan = write_scan(tmp_path / "scan.nii.gz", (26, 26, 16), (2.7, 2.7, 3.3))  # no whole ratio to 1.5 mm
    share, report = _both(root, scan, [{"image": str(scan)}], small, tmp_path)
    assert report.path == "fast path"
    assert share >= AGREEMENT
    assert len(Bundle(root).labels) == 105


def test_wholebody_windows_become_labels_as_they_are_stitched_unless_an_option_needs_the_logits() -> None:
    bundle = Bundle(ZOO / "wholeBody_ct_segmentation")
    made = inference_overrides(bundle, InferenceOptions())
    streamed = made["inferer"]["inferer"]
    assert streamed["_target_"] == "medseg.inference.streaming.DiscretisingInferer"
    assert target_name(streamed["windows"]) == "SlidingWindowInferer"
    assert [target_name(step) for step in streamed["decide"]["transforms"]] == ["Activationsd", "AsDiscreted"]
    assert [target_name(step) for step in made["postprocessing"]["transforms"]] == ["ResampleToSourced", None]
    for options, user in [
        (InferenceOptions(window="large"), {}),
        (InferenceOptions(ensemble=("a.pt", "b.pt")), {}),
        (InferenceOptions(), {"inferer#buffer_steps": 2}),  # MONAI's buffered windows add up in another order
    ]:
        steps = inference_overrides(bundle, options, user)["postprocessing"]["transforms"]
        assert [target_name(step) for step in steps[:3]] == ["Activationsd", "AsDiscreted", "ResampleToSourced"]
        assert held_channels(bundle, options, user) == 105  # what the memory check counts
    assert held_channels(bundle, InferenceOptions()) == 1
    assert held_channels(bundle, InferenceOptions(stock=True)) == 105


@pytest.mark.slow
def test_pancreas_yaml_dints_fast_path_equals_bundle_run(tmp_path: Path) -> None:
    from monai.networks.nets import TopologySearch

    root = zoo_copy("pancreas_ct_dints_segmentation", tmp_path)
    space = {"num_blocks": 2, "num_depths": 3}
    small = {
        **{f"dints_space#{key}": value for key, value in space.items()},
        "dints_space#device": "$torch.device('cpu')",
        "arch_ckpt": "$torch.load(@arch_ckpt_path, map_location='cpu', weights_only=False)",
        "inferer#roi_size": [32, 32, 32],
    }
    torch.manual_seed(0)
    node_a, code_a, code_c, _ = TopologySearch(channel_mul=1, use_downsample=True, device="cpu", **space).decode()
    arch = {"node_a": np.asarray(node_a), "arch_code_a": np.asarray(code_a), "arch_code_c": np.asarray(code_c)}
    (root / "models").mkdir()
    torch.save(arch, root / "models" / "search_code_18590.pt")
    make_weights(root, small)
    scan = write_scan(tmp_path / "scan.nii.gz", (24, 24, 20), (1.5, 1.5, 1.5))
    share, report = _both(root, scan, [{"image": str(scan)}], small, tmp_path)
    assert report.path == "fast path"
    assert share >= AGREEMENT


@pytest.mark.slow
def test_prostate_largest_component_before_a_linear_invert_equals_bundle_run(tmp_path: Path) -> None:
    pytest.importorskip("skimage", reason="KeepLargestConnectedComponentd needs scikit-image on the CPU (dev extra)")
    root = zoo_copy("prostate_mri_anatomy", tmp_path)
    small = {"network_def#channels": [4, 8, 8, 8, 8, 8], "network_def#num_res_units": 1, "inferer#roi_size": [32] * 3}
    make_weights(root, small)
    scan = write_scan(tmp_path / "scan.nii.gz", (20, 20, 12), (1.0, 1.0, 1.2), ct=False)
    share, report = _both(root, scan, [{"image": str(scan)}], small, tmp_path)
    assert report.path.startswith("stock recipe, because it discretises before an Invertd")
    assert share >= AGREEMENT  # the bundle writes linearly interpolated labels as floats: medseg rounds them
    mask = np.asarray(nib.load(report.written[0]).dataobj)
    assert {1, 2} <= set(np.unique(mask).tolist())  # both labels its KeepLargestConnectedComponentd acts on


@pytest.mark.slow
def test_spleen_with_largest_component_after_discretising_takes_the_fast_path(tmp_path: Path) -> None:
    pytest.importorskip("skimage", reason="KeepLargestConnectedComponentd needs scikit-image on the CPU (dev extra)")
    root = zoo_copy("spleen_ct_segmentation", tmp_path)
    config = read_config(root / "configs" / "inference.json")
    transforms = config["postprocessing"]["transforms"]
    transforms.insert(3, {"_target_": "monai.transforms.KeepLargestConnectedComponentd", "keys": "pred"})
    write_config(root / "configs" / "inference.json", config)
    small = {"network_def#channels": [4, 8, 16, 32, 64], "inferer#roi_size": [64, 64, 32]}
    make_weights(root, small)
    scan = write_scan(tmp_path / "scan.nii.gz", (48, 48, 24), (2.0, 2.0, 2.7))
    share, report = _both(root, scan, [{"image": str(scan)}], small, tmp_path)
    assert report.path == "fast path"
    assert share >= AGREEMENT
    mask = np.asarray(nib.load(report.written[0]).dataobj)
    assert mask.any() and ndimage.label(mask)[1] == 1  # one component left, as the bundle's step leaves


def test_swin_unetr_gets_one_line_for_a_missing_package_and_for_img_size(tmp_path: Path, monkeypatch) -> None:
    import monai

    bundle = Bundle(zoo_copy("swin_unetr_btcv_segmentation", tmp_path))
    monkeypatch.setattr("medseg.inference.requirements.find_spec", lambda name: None if name == "itk" else True)
    with pytest.raises(MedsegError, match=r"ITKReader .* needs the package itk: pip install itk"):
        check_packages(bundle, {})
    check_packages(bundle, {"preprocessing#transforms#0#reader": "NibabelReader"})
    with pytest.raises(MedsegError, match=rf"network_def#img_size: .* MONAI {monai.__version__}") as raised:
        check_network(bundle, {})
    assert str(raised.value).startswith(str(bundle.config("inference")))
    check_network(bundle, {"network_def#img_size": None} | {"network_def": {"_target_": "SwinUNETR"}})


def test_download_fetches_checks_and_lists_a_bundle_archive(tmp_path: Path) -> None:
    from medseg.download import download

    root = zoo_copy("spleen_ct_segmentation", tmp_path / "src")
    make_weights(root, {"network_def#channels": [4, 8, 16, 32, 64]})
    archive = _zip(root, tmp_path / "spleen.zip")
    bundles = tmp_path / "bundles"
    bundle = download("spleen_ct_segmentation", url=archive.as_uri(), target=bundles)
    assert bundle.root == bundles / "spleen_ct_segmentation"
    assert bundle.source == archive.as_uri()
    assert [label.name for label in bundle.labels] == ["background", "spleen"]
    assert [path.name for path in bundles.iterdir()] == ["spleen_ct_segmentation"]  # no staging left
    with pytest.raises(MedsegError, match="already downloaded"):
        download("spleen_ct_segmentation", url=archive.as_uri(), target=bundles)


def test_a_failing_weights_expression_is_one_line(tmp_path: Path) -> None:
    bundle = Bundle(zoo_copy("wholeBody_ct_segmentation", tmp_path))
    bundle.parsed("inference").content["modelname"] = "$@no_such_key"
    with pytest.raises(MedsegError, match=r"inference.json: cannot evaluate checkpointloader#load_path \("):
        _ = bundle.weights


def test_download_refuses_weights_that_need_pickle(tmp_path: Path) -> None:
    from medseg.download import download

    root = zoo_copy("spleen_ct_segmentation", tmp_path / "src")
    (root / "models").mkdir()
    torch.save({"model": {}, "saved": datetime.date(2024, 1, 1)}, root / "models" / "model.pt")
    archive = _zip(root, tmp_path / "spleen.zip")
    with pytest.raises(MedsegError, match="pickled Python objects"):
        download("spleen_ct_segmentation", url=archive.as_uri(), target=tmp_path / "bundles")
    assert not list((tmp_path / "bundles").iterdir())


def _recipe(*transforms: dict) -> Recipe:
    return read_recipe(BundleConfig(Path("inference.json"), {"postprocessing": {"transforms": list(transforms)}}))


ACTIVATE = {"_target_": "Activationsd", "keys": "pred", "softmax": True}
ARGMAX = {"_target_": "monai.transforms.AsDiscreted", "keys": "pred", "argmax": True}
LARGEST = {"_target_": "KeepLargestConnectedComponentd", "keys": "pred"}
WRITE = {"_target_": "SaveImaged", "keys": "pred"}


def _invert(nearest: bool) -> dict:
    return {"_target_": "InvertD", "keys": "pred", "nearest_interp": nearest}


@pytest.mark.parametrize(
    ("transforms", "reason"),
    [
        ((ACTIVATE, _invert(False), ARGMAX, LARGEST, WRITE), None),
        ((ACTIVATE, ARGMAX, _invert(True), WRITE), None),
        ((ARGMAX, LARGEST, _invert(True), "@writer"), None),
        ((ARGMAX, LARGEST, _invert(False), WRITE), "it discretises before an Invertd that interpolates the labels"),
        ((ACTIVATE, LARGEST, _invert(False), ARGMAX, WRITE), "it cleans up probabilities before Invertd"),
        ((ACTIVATE, _invert(False), LARGEST, ARGMAX, WRITE), "it cleans labels up before it has discretised them"),
        ((ACTIVATE, ARGMAX, WRITE), "its postprocessing has 0 Invertd steps, not one"),
        ((ACTIVATE, _invert(False), {"_target_": "FlipD"}, WRITE), "its postprocessing has Flipd the fast path"),
    ],
)
def test_recipe_says_when_the_fast_path_applies_and_why_not(transforms: tuple, reason: str | None) -> None:
    recipe = _recipe(*transforms)
    assert recipe.fast_reason == reason or recipe.fast_reason.startswith(reason)
    assert recipe.writer == len(transforms) - 1


def test_zoo_recipes_and_the_prostate_bundle_needs_scikit_image(tmp_path: Path, monkeypatch) -> None:
    spleen, whole_body = (Bundle(ZOO / name) for name in ("spleen_ct_segmentation", "wholeBody_ct_segmentation"))
    assert read_recipe(spleen.parsed("inference")).fast_reason is None
    assert read_recipe(whole_body.parsed("inference")).nearest
    assert whole_body.weights == ZOO / "wholeBody_ct_segmentation" / "models" / "model.pt"  # '$... + @modelname'
    assert spleen.parsed("inference").network_spacing() == [1.5, 1.5, 2.0]
    prostate = Bundle(ZOO / "prostate_mri_anatomy")
    assert chosen_path(prostate, InferenceOptions()).startswith("stock recipe, because it discretises before")
    monkeypatch.setattr("medseg.inference.requirements.find_spec", lambda name: None)
    message = r"KeepLargestConnectedComponentd \(postprocessing#transforms#1\) needs the package scikit-image: pip"
    with pytest.raises(MedsegError, match=message):
        check_packages(prostate, {})


@pytest.mark.slow
def test_swin_unetr_without_img_size_equals_bundle_run(tmp_path: Path) -> None:
    root = zoo_copy("swin_unetr_btcv_segmentation", tmp_path)
    network = {"_target_": "SwinUNETR", "spatial_dims": 3, "in_channels": 1, "out_channels": 14, "feature_size": 12}
    small = {
        "network_def": network,  # the zoo's, less img_size (gone in MONAI 1.5) and with fewer features
        "preprocessing#transforms#0#reader": "NibabelReader",  # ITKReader needs itk, not installed here
        "inferer#roi_size": [64, 64, 64],  # SwinUNETR needs 32 | roi, and more than one voxel at its bottom
    }
    make_weights(root, small)
    scan = write_scan(tmp_path / "scan.nii.gz", (20, 20, 14), (3.0, 3.0, 3.0))
    share, report = _both(root, scan, [{"image": str(scan)}], small, tmp_path)
    assert report.path == "fast path"
    assert share >= AGREEMENT


def _zip(root: Path, archive: Path) -> Path:
    """``root`` as a model-zoo download: a zip whose top folder is the bundle."""
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in root.rglob("*"):
            zipped.write(path, path.relative_to(root.parent))
    return archive


@pytest.mark.slow
def test_cli_downloads_lists_and_segments_a_zoo_bundle_by_name(tmp_path: Path) -> None:
    root = zoo_copy("spleen_ct_segmentation", tmp_path / "src")
    small = {"network_def#channels": [4, 8, 16, 32, 64], "inferer#roi_size": [64, 64, 32]}
    make_weights(root, small)
    archive = _zip(root, tmp_path / "spleen.zip")
    scan = write_scan(tmp_path / "scan.nii.gz", (48, 48, 24), (2.0, 2.0, 2.7))
    environment = {**os.environ, "MEDSEG_BUNDLES": str(tmp_path / "bundles")}

    def medseg(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "medseg", *args]
        return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path)

    downloaded = medseg("download", "spleen_ct_segmentation", "--url", archive.as_uri())
    assert downloaded.returncode == 0, downloaded.stderr
    listed = medseg("bundles").stdout
    assert "spleen_ct_segmentation" in listed and f"1=spleen (source: {archive.as_uri()})" in listed
    overrides = [f"--override={key}={json.dumps(value)}" for key, value in {**small, **WORKERS}.items()]
    segmented = medseg("infer", "spleen_ct_segmentation", str(scan), "-o", "out", "--device", "cpu", *overrides)
    assert segmented.returncode == 0, segmented.stderr
    assert "stock recipe" not in segmented.stderr and "--trust" not in segmented.stderr
    assert (tmp_path / "out" / "scan.seg.nrrd").is_file()
    assert "spleen" in (tmp_path / "out" / "spleen_ct_segmentation_colors.ctbl").read_text()


@pytest.mark.slow
def test_onnx_export_of_a_zoo_bundle_takes_its_networks_divisor_and_agrees_with_pytorch(tmp_path: Path) -> None:
    import onnx
    import onnxruntime

    from medseg.export import export, load_network

    bundle = Bundle(zoo_copy("spleen_ct_segmentation", tmp_path))
    make_weights(bundle.root, {})  # the zoo's full UNet: its metadata's spatial_shape [96, 96, 96] is a patch
    said: list[str] = []
    target = export(bundle, "onnx", output=tmp_path / "spleen.onnx", say=said.append)
    assert said[0].startswith("checked against PyTorch under ONNX Runtime")
    sizes = [dim.dim_param for dim in onnx.load(str(target)).graph.input[0].type.tensor_type.shape.dim[2:]]
    assert sizes == ["16*n2", "16*n3", "16*n4"]  # four stride-2 levels, found by running the network
    x = torch.randn(2, 1, 48, 32, 64, generator=torch.Generator().manual_seed(0))
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = load_network(bundle, bundle.weights)(x).numpy()
    exported = session.run(None, {"image": x.numpy()})[0]
    assert exported.shape == (2, 2, 48, 32, 64)
    assert np.abs(exported - expected).max() < 1e-4


@pytest.mark.slow
def test_export_and_evaluate_run_on_a_zoo_bundle(tmp_path: Path) -> None:
    from medseg.evaluation import evaluate
    from medseg.export import export

    bundle = Bundle(zoo_copy("spleen_ct_segmentation", tmp_path))
    make_weights(bundle.root, {})  # export builds the bundle's own network: full size
    exported = torch.jit.load(str(export(bundle, "torchscript", output=tmp_path / "spleen.ts")))
    assert exported(torch.zeros(1, 1, 32, 32, 32)).shape == (1, 2, 32, 32, 32)
    data = tmp_path / "data"
    for folder in ("imagesTr", "labelsTr"):
        (data / folder).mkdir(parents=True)
    scan = write_scan(data / "imagesTr" / "case.nii.gz", (48, 48, 24), (2.0, 2.0, 2.7))
    label = (np.asarray(nib.load(scan).dataobj) > 100).astype(np.uint8)
    nib.save(nib.Nifti1Image(label, nib.load(scan).affine), data / "labelsTr" / "case.nii.gz")
    case = {"image": "./imagesTr/case.nii.gz", "label": "./labelsTr/case.nii.gz"}
    msd = {"name": "spleen", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "spleen"}}
    (data / "dataset.json").write_text(json.dumps({**msd, "training": [case], "test": []}), encoding="utf-8")
    results = evaluate(bundle, data, tmp_path / "evaluation", device="cpu")
    assert list(results[0].scores) == ["spleen"]
    assert (tmp_path / "evaluation" / "metrics.csv").is_file()
