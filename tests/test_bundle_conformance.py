"""Every folder in bundles/ passes the checks MONAI's tooling and MONAI Label apply to model-zoo bundles."""

import json
import re
import subprocess
import sys
from importlib import resources

import jsonschema
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from medseg.bundles import BUILTIN_BUNDLES, Bundle
from medseg.export import export, load_network

BUNDLES = sorted(path.name for path in BUILTIN_BUNDLES.iterdir() if (path / "configs").is_dir())
DOC_SECTIONS = ("Task", "Labels", "Data", "Preprocessing", "Training", "Results", "Usage", "Limitations", "Security")


@pytest.fixture(params=BUNDLES, scope="module")
def bundle(request) -> Bundle:
    return Bundle(BUILTIN_BUNDLES / request.param)


def test_there_are_four_bundles():
    assert BUNDLES == ["ct_liver_tumour_2d", "ct_liver_tumour_3d", "mri_brain_tissue_3d", "mri_brain_tumour_3d"]


def test_model_zoo_layout(bundle):
    for name in ("train", "inference", "evaluate", "multi_gpu_train", "metadata"):
        assert bundle.config(name).is_file()
    assert (bundle.root / "configs" / "logging.conf").is_file()
    assert (bundle.root / "docs" / "README.md").is_file() and (bundle.root / "LICENSE").is_file()
    assert bundle.weights.is_file(), "every bundle ships trained weights"
    assert bundle.weights.stat().st_size < 25e6


def test_metadata_matches_the_schema(bundle):
    schema = json.loads(resources.files("medseg").joinpath("schemas/bundle_metadata.schema.json").read_text())
    jsonschema.validate(bundle.metadata, schema)


def test_channel_def_names_and_colours_every_label(bundle):
    pred = bundle.metadata["network_data_format"]["outputs"]["pred"]
    assert pred["channel_def"]["0"] == "background"
    foreground = {value for value in pred["channel_def"] if value != "0"}
    assert foreground and set(pred["channel_colors"]) == foreground
    assert len(set(pred["channel_def"].values())) == len(pred["channel_def"]), "label names are unique"


def test_validation_metrics_are_named_after_the_labels(bundle):
    pred = bundle.metadata["network_data_format"]["outputs"]["pred"]
    if "regions" in pred:  # BraTS: one metric per region, by its initials (tumour core -> tc)
        parts = ["".join(word[0] for word in region.split()) for region in pred["regions"]]
    else:
        parts = [name.replace(" ", "_") for value, name in pred["channel_def"].items() if value != "0"]
    metrics = json.loads(bundle.config("train").read_text())["validate"]["additional_metrics"]
    assert sorted(metrics) == sorted(f"val_{part}_dice" for part in parts)


def test_inference_has_the_keys_monai_label_reads(bundle):
    config = json.loads(bundle.config("inference").read_text())
    assert {"network_def", "preprocessing", "inferer", "postprocessing"} <= set(config)
    assert "@writer" in config["postprocessing"]["transforms"], "medseg replaces the writer by override"


def _fake_case(bundle):
    channels = bundle.input_channels
    image = "scan.nii.gz" if channels == 1 else "scan_4d.nii.gz"
    return [{"image": image, "label": "label.nii.gz"}]


@pytest.mark.parametrize(("config", "workflow_type"), [("train", "train"), ("inference", "infer")])
def test_monai_property_checks(bundle, config, workflow_type, tmp_path):
    data = _fake_case(bundle)
    overrides = {"train#dataset#data": data, "validate#dataset#data": data, "cache_rate": 0.0}
    overrides["output_dir"] = str(tmp_path)  # training handlers open their TensorBoard logs there
    if config == "inference":
        overrides = {"dataset#data": data, "output_dir": str(tmp_path)}
    workflow = ConfigWorkflow(
        config_file=str(bundle.config(config)),
        meta_file=str(bundle.config("metadata")),
        logging_file=False,
        workflow_type=workflow_type,
        bundle_root=str(bundle.root),
        **overrides,
    )
    workflow.initialize()
    assert workflow.check_properties() == []


def _monai_bundle(bundle, *args):
    command = [sys.executable, "-m", "monai.bundle", *args, "--bundle_root", str(bundle.root)]
    command += ["--meta_file", str(bundle.config("metadata")), "--config_file", str(bundle.config("inference"))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_verify_net_in_out(bundle):
    result = _monai_bundle(bundle, "verify_net_in_out", "network_def")
    assert "verified with no error" in result.stdout + result.stderr


def _random_input(bundle, batch=1):
    shape = bundle.metadata["network_data_format"]["inputs"]["image"]["spatial_shape"]
    sizes = [int(re.match(r"(\d+)", str(s)).group(1)) * 2 for s in shape]
    return torch.randn(batch, bundle.input_channels, *sizes, generator=torch.Generator().manual_seed(0))


def test_ckpt_export_gives_the_same_network(bundle, tmp_path):
    target = tmp_path / "model.ts"
    _monai_bundle(bundle, "ckpt_export", "network_def", "--filepath", str(target), "--ckpt_file", str(bundle.weights))
    scripted = torch.jit.load(str(target))
    network = load_network(bundle, bundle.weights)
    x = _random_input(bundle)
    with torch.inference_mode():
        np.testing.assert_allclose(scripted(x).numpy(), network(x).numpy(), atol=1e-5)


def test_onnx_export_matches_pytorch_and_carries_labels_and_preprocessing(bundle, tmp_path):
    import onnx
    import onnxruntime

    said = []
    target = export(bundle, "onnx", output=tmp_path / "model.onnx", say=said.append)
    assert [re.sub(r"difference \S+", "difference D", line) for line in said] == [
        "checked against PyTorch under ONNX Runtime: max difference D (limit 0.0001)"
    ]
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    x = _random_input(bundle, batch=2)
    with torch.inference_mode():
        expected = load_network(bundle, bundle.weights)(x).numpy()
    assert np.abs(session.run(None, {"image": x.numpy()})[0] - expected).max() < 1e-4
    properties = {prop.key: prop.value for prop in onnx.load(str(target)).metadata_props}
    assert json.loads(properties["labels"]) == {str(label.value): label.name for label in bundle.labels}
    preprocessing = json.loads(properties["preprocessing"])
    assert any(t["_target_"] == "Spacingd" for t in preprocessing["transforms"])
    values = json.loads(properties["preprocessing_values"])
    assert values["spacing"] == json.loads(bundle.config("inference").read_text())["spacing"]


def test_docs_cover_what_a_user_needs(bundle):
    docs = (bundle.root / "docs" / "README.md").read_text()
    headings = re.findall(r"^##\s+(.+)$", docs, flags=re.MULTILINE)
    for section in DOC_SECTIONS:
        assert any(h.startswith(section) for h in headings), f"docs lack a '## {section}' section"
    pred = bundle.metadata["network_data_format"]["outputs"]["pred"]
    for value, name in pred["channel_def"].items():
        assert re.search(rf"\|\s*{value}\s*\|\s*{re.escape(name)}\s*\|", docs), f"label {value} {name} not in the table"
    for value, colour in pred["channel_colors"].items():
        assert " ".join(map(str, colour)) in docs or ", ".join(map(str, colour)) in docs, f"colour of {value}"
    assert "python -m monai.bundle run" in docs and f"medseg infer {bundle.name}" in docs
    assert "execute" in docs.lower() and "trust" in docs.lower()
    assert re.search(r"Dice[^\n]*0\.\d\d", docs), "measured Dice figures"


def test_medseg_bundles_lists_them_all():
    result = subprocess.run([sys.executable, "-m", "medseg", "bundles"], capture_output=True, text=True)
    assert result.returncode == 0
    for name in BUNDLES:
        [line] = [line for line in result.stdout.splitlines() if line.startswith(name)]
        assert "weights" in line and "no weights" not in line and "1=" in line


def test_a_bundle_by_path_and_by_name_agree():
    from medseg.bundles import find_bundle

    assert find_bundle(BUILTIN_BUNDLES / "ct_liver_tumour_3d") == find_bundle("ct_liver_tumour_3d")
