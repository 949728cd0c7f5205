"""The one reader of a bundle's configs: each file parsed once, every ``_target_`` spelling, typed accessors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from medseg.bundle_config import BundleConfig, read_config, target_name, write_config
from medseg.bundles import BUILTIN_BUNDLES, Bundle, derive_bundle
from medseg.data.validate import ScanInfo
from medseg.inference.memory import check_memory
from medseg.inference.options import InferenceOptions, chosen_path, held_channels, inference_overrides
from medseg.inference.outputs import write_run_outputs
from medseg.inference.predict import segment_report
from medseg.inference.requirements import check_network, check_packages
from medseg.training import handlers
from tests.zoo_bundles import ZOO, make_weights, write_scan, zoo_copy

LIVER = BUILTIN_BUNDLES / "ct_liver_tumour_3d"
TUMOUR = BUILTIN_BUNDLES / "mri_brain_tumour_3d"
PANCREAS = ZOO / "pancreas_ct_dints_segmentation"

INVERT_SPELLINGS = [
    "Invertd",
    "monai.transforms.Invertd",
    "monai.transforms.post.dictionary.Invertd",
    "InvertD",
    "InvertDict",
    "monai.transforms.post.dictionary.InvertDict",
]


@pytest.mark.parametrize("spelling", INVERT_SPELLINGS)
def test_every_spelling_of_a_target_is_one_component(spelling: str) -> None:
    assert target_name({"_target_": spelling, "keys": "pred"}) == "Invertd"
    config = BundleConfig(Path("inference.json"), {"postprocessing": {"transforms": [{"_target_": spelling}]}})
    assert config.components("Invertd") == [("postprocessing#transforms#0", {"_target_": spelling})]


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("monai.handlers.CheckpointSaver", "CheckpointSaver"),
        ("SaveImage", "SaveImage"),
        ("monai.networks.nets.UNETR", "UNETR"),
        ("monai.networks.nets.SegResNetDS", "SegResNetDS"),
        ("ToDeviceD", "ToDeviced"),
    ],
)
def test_targets_that_are_not_dictionary_aliases_keep_their_name(spelling: str, name: str) -> None:
    assert target_name({"_target_": spelling}) == name


def test_what_is_not_a_component_has_no_target() -> None:
    assert target_name("@writer") is None
    assert target_name({"keys": "pred"}) is None
    assert target_name({"_target_": 3}) is None


def test_training_handlers_find_components_in_any_spelling() -> None:
    saver = {"_target_": "monai.handlers.CheckpointSaver", "save_key_metric": True}
    train = {
        "train": {
            "checkpoint": {"_target_": "CheckpointSaver"},
            "handlers": [{"_target_": "monai.handlers.StatsHandler"}],
        },
        "validate": {"handlers": [{"_target_": "monai.handlers.StatsHandler"}, saver]},
    }
    assert handlers.checkpoint_entries(train)["train#checkpoint#save_dict#best"]["saver"] == "@validate#handlers#1"
    assert set(handlers.atomic_checkpoints(train)) == {"train#checkpoint#_target_", "validate#handlers#1#_target_"}
    assert handlers.progress_bar(train)[0] == {"train#handlers#0#iteration_log": False}


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Count every ``Path.read_text`` of a file in a ``configs`` folder, by path."""
    reads: Counter = Counter()
    read_text = Path.read_text

    def counted(path: Path, *args, **kwargs) -> str:
        if path.parent.name == "configs":
            reads[path.name] += 1
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    return reads


def _use_for_inference(bundle: Bundle, tmp_path: Path, *, tta: bool) -> None:
    """What one ``medseg infer`` asks of a bundle: options, path, checks, memory, run outputs."""
    for options in (InferenceOptions(), InferenceOptions(window="large", tta=tta), InferenceOptions(stock=True)):
        inference_overrides(bundle, options)
        chosen_path(bundle, options)
    check_packages(bundle, {})
    check_network(bundle, {})
    assert bundle.weights.name == "model.pt"
    scan = ScanInfo(tmp_path / "scan.nii.gz", (40, 40, 30), 1, np.eye(4))
    check_memory(scan, bundle, 2**40, held_channels(bundle, InferenceOptions()))
    write_run_outputs(bundle, tmp_path / "out")


@pytest.mark.parametrize(("root", "tta"), [(TUMOUR, True), (PANCREAS, False)])
def test_one_bundle_reads_each_config_file_once(root: Path, tta: bool, tmp_path: Path, monkeypatch) -> None:
    reads = _counting_reads(monkeypatch)
    bundle = Bundle(root)
    _use_for_inference(bundle, tmp_path, tta=tta)
    inference = next(path.name for path in (root / "configs").glob("inference.*"))
    assert reads == {inference: 1, "metadata.json": 1}
    _use_for_inference(Bundle(root), tmp_path, tta=tta)  # another Bundle object reads afresh, once
    assert reads == {inference: 2, "metadata.json": 2}


@pytest.mark.slow
def test_a_whole_segmentation_reads_each_config_file_once(tmp_path: Path, monkeypatch) -> None:
    root = zoo_copy("spleen_ct_segmentation", tmp_path)
    small = {"network_def#channels": [4, 8, 16, 32, 64], "inferer#roi_size": [64, 64, 32], "dataloader#num_workers": 0}
    make_weights(root, small)
    scan = write_scan(tmp_path / "scan.nii.gz", (48, 48, 24), (2.0, 2.0, 2.7))
    reads = _counting_reads(monkeypatch)
    report = segment_report(Bundle(root), [scan], tmp_path / "out", device="cpu", overrides=small, extras=True)
    assert not report.failed and (tmp_path / "out" / "scan.seg.nrrd").is_file()
    assert reads == {"inference.json": 1, "metadata.json": 1}  # MONAI's own workflow reads them apart


def test_accessors_of_a_medseg_bundle() -> None:
    bundle = Bundle(LIVER)
    assert [(label.value, label.name) for label in bundle.labels] == [(0, "background"), (1, "liver"), (2, "tumour")]
    assert (bundle.modality, bundle.input_channels, bundle.output_channels, bundle.spatial_dims) == ("CT", 1, 3, 3)
    assert bundle.divisors == [16, 16, 16]  # "16*n"
    assert bundle.patch_size == [96, 96, 64]  # the inferer's roi_size, through "@patch_size"
    assert (bundle.mirror_axes, bundle.activation) == ([], "softmax")
    assert bundle.weights == LIVER / "models" / "model.pt"
    assert bundle.parsed("inference").network_spacing() == [1.5, 1.5, 2.5]
    assert bundle.label_rules == {"largest_component": [[1, 2]], "inside": {"2": [1]}}
    assert bundle.volume_ranges[2] == (0.0, 89.0)
    tumour = Bundle(TUMOUR)
    assert (tumour.mirror_axes, tumour.activation, tumour.divisors, tumour.input_channels) == (
        [0, 1, 2],
        "sigmoid",
        [8, 8, 8],
        4,
    )
    assert [label.value for label in tumour.labels] == [0, 1, 2, 4]
    assert Bundle(BUILTIN_BUNDLES / "ct_liver_tumour_2d").spatial_dims == 2


def test_accessors_of_a_yaml_zoo_bundle() -> None:
    bundle = Bundle(PANCREAS)
    assert bundle.config("inference").name == "inference.yaml"
    names = [(label.value, label.name) for label in bundle.labels]
    assert names == [(0, "background"), (1, "pancreas"), (2, "pancreatic tumor")]
    assert (bundle.modality, bundle.input_channels, bundle.output_channels, bundle.spatial_dims) == ("CT", 1, 3, 3)
    assert bundle.divisors is None  # its spatial_shape [96, 96, 96] is a patch, not a divisor
    assert bundle.patch_size == [96, 96, 96]
    assert (bundle.mirror_axes, bundle.activation) == ([], "softmax")
    assert bundle.weights == PANCREAS / "models" / "model.pt"  # '$@bundle_root + "/models/model.pt"'
    assert bundle.parsed("inference").network_spacing() == [1.0, 1.0, 1.0]
    assert (bundle.label_rules, bundle.volume_ranges) == ({}, {})
    brats = Bundle(ZOO / "brats_mri_segmentation")
    assert (brats.divisors, brats.activation, brats.output_channels) == ([8, 8, 8], "sigmoid", 3)
    assert [label.value for label in brats.labels] == [0, 1, 2, 4]  # its sigmoid channels, as mask values


def test_a_window_given_by_an_expression_is_not_a_patch() -> None:
    config = BundleConfig(Path("inference.json"), {"inferer": {"roi_size": "$[96] * 3"}})
    assert config.window_size() is None
    nested = BundleConfig(Path("inference.json"), {"sizes": {"roi": [64, 32]}, "inferer": {"roi_size": "@sizes#roi"}})
    assert nested.window_size() == [64, 32]


def test_derive_bundle_sets_values_in_yaml_and_json_configs(tmp_path: Path) -> None:
    source = Bundle(zoo_copy("pancreas_ct_dints_segmentation", tmp_path / "src"))
    derived = derive_bundle(source, tmp_path / "run", {"output_ext": ".nii", "nothing": 1})
    assert derived.config("inference").name == "inference.yaml"
    assert read_config(derived.config("inference"))["output_ext"] == ".nii"
    assert "nothing" not in read_config(derived.config("inference"))
    assert read_config(derived.config("metadata")) == source.metadata


def test_written_configs_read_back_the_same(tmp_path: Path) -> None:
    content = {"inferer": {"_target_": "SlidingWindowInferer", "roi_size": [96, 96, 64]}, "spacing": [1.5, 1.5, 2.0]}
    for name in ("inference.json", "inference.yaml"):
        write_config(tmp_path / name, content)
        assert read_config(tmp_path / name) == content


def test_without_a_literal_window_the_patch_is_the_metadatas_spatial_shape(tmp_path: Path) -> None:
    root = zoo_copy("spleen_ct_segmentation", tmp_path)
    config = read_config(root / "configs" / "inference.json")
    config["inferer"]["roi_size"] = "$[64] * 3"
    write_config(root / "configs" / "inference.json", config)
    bundle = Bundle(root)
    assert (bundle.patch_size, bundle.divisors) == ([96, 96, 96], None)
