"""The config overrides ``medseg infer``'s options make, checked against each shipped bundle's own configs."""

import json

import pytest

from medseg.bundles import find_bundle
from medseg.errors import MedsegError
from medseg.inference.options import InferenceOptions, chosen_path, inference_overrides

CPU_TUNED = "medseg.inference.inferers.CpuTunedInferer"


def own(name, key):
    return json.loads(find_bundle(name).config("inference").read_text())[key]


def overrides(name, **options):
    return inference_overrides(find_bundle(name), InferenceOptions(**options))


def test_stock_keeps_the_bundles_inferer_and_postprocessing():
    assert overrides("ct_liver_tumour_3d", stock=True) == {"inferer": own("ct_liver_tumour_3d", "inferer")}
    assert overrides("ct_liver_tumour_3d", stock=True, overlap=0.25)["inferer"] == {
        **own("ct_liver_tumour_3d", "inferer"),
        "overlap": 0.25,
    }


def test_fast_path_tunes_the_bundles_own_windows_and_replaces_invertd():
    made = overrides("ct_liver_tumour_3d")
    assert made["inferer"] == {"_target_": CPU_TUNED, "inferer": own("ct_liver_tumour_3d", "inferer")}
    assert made["preprocessing#transforms#0#reader"] == {
        "_target_": "medseg.io.readers.FastNibabelReader",
        "dtype": "float32",  # LoadImaged's own default, cast to as the voxels are reordered
    }
    stock = own("ct_liver_tumour_3d", "postprocessing")["transforms"]  # Activationsd, Invertd, AsDiscreted, @writer
    resample = {
        "_target_": "medseg.inference.resample.ResampleToSourced",
        "keys": "pred",
        "decide": {"_target_": "Compose", "transforms": [stock[2]]},
        "nearest": False,  # the labels are made after the resampling, from interpolated probabilities
    }
    assert made["postprocessing"] == {"_target_": "Compose", "transforms": [stock[0], resample, "@writer"]}


def test_label_rules_come_after_the_resampling_only_when_asked_for():
    rules = find_bundle("ct_liver_tumour_3d").label_rules
    steps = overrides("ct_liver_tumour_3d", label_rules=True)["postprocessing"]["transforms"]
    assert steps[-2:] == [
        {"_target_": "medseg.inference.label_rules.LabelRulesd", "keys": "pred", "rules": rules},
        "@writer",
    ]
    assert rules and len(overrides("ct_liver_tumour_3d")["postprocessing"]["transforms"]) == 3
    assert len(overrides("mri_brain_tissue_3d", label_rules=True)["postprocessing"]["transforms"]) == 3  # has none


def test_brain_tumour_regions_keep_their_rule_and_average_as_sigmoids():
    made = overrides("mri_brain_tumour_3d", ensemble=("a.pt", "b.pt"))
    decide = made["postprocessing"]["transforms"][1]["decide"]["transforms"]
    assert [step["_target_"] for step in decide] == ["AsDiscreted", "Lambdad"]
    assert made["inferer"]["activation"] == "sigmoid" and made["inferer"]["weights"] == ["a.pt", "b.pt"]
    assert overrides("ct_liver_tumour_3d", ensemble=("a.pt", "b.pt"))["inferer"]["activation"] == "softmax"


@pytest.mark.parametrize(("name", "divisor"), [("ct_liver_tumour_3d", 16), ("mri_brain_tumour_3d", 8)])
def test_large_windows_are_sized_by_the_networks_divisor(name, divisor):
    inner = overrides(name, window="large", max_window_voxels=1000, overlap=0.1)["inferer"]["inferer"]
    assert inner == {
        "_target_": "medseg.inference.inferers.LargeWindowInferer",
        "divisor": divisor,
        "max_voxels": 1000,
        "overlap": 0.1,
    }
    assert "overlap" not in overrides(name, window="large")["inferer"]["inferer"]


def test_tta_mirrors_along_the_trained_axes():
    made = overrides("mri_brain_tumour_3d", tta=True)["inferer"]
    assert made["inferer"] == {
        "_target_": "medseg.inference.inferers.MirrorInferer",
        "inferer": own("mri_brain_tumour_3d", "inferer"),
        "axes": [0, 1, 2],
    }


def test_2d_bundles_batch_whole_slices_and_refuse_tta():
    assert overrides("ct_liver_tumour_2d")["inferer"] == {**own("ct_liver_tumour_2d", "inferer"), "sw_batch_size": 64}
    assert overrides("ct_liver_tumour_2d", window="large")["inferer"]["overlap"] == 0.0
    assert overrides("ct_liver_tumour_2d", window="large", overlap=0.3)["inferer"]["overlap"] == 0.3
    with pytest.raises(MedsegError, match="`tta=True` is not available for the 2D bundle 'ct_liver_tumour_2d'"):
        overrides("ct_liver_tumour_2d", tta=True)


def test_fast_coarsens_the_spacing_and_keeps_a_kept_axis():
    assert overrides("ct_liver_tumour_3d", coarse=True)["spacing"] == [2.25, 2.25, 3.75]
    assert overrides("ct_liver_tumour_2d", coarse=True, stock=True)["spacing"] == [2.25, 2.25, -1]


def test_a_bundle_with_its_own_reader_keeps_it_and_one_with_two_invertd_runs_its_own_recipe(tmp_path):
    from medseg.bundles import Bundle

    source = find_bundle("ct_liver_tumour_3d")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "metadata.json").write_text(source.config("metadata").read_text())
    inference = json.loads(source.config("inference").read_text())
    inference["preprocessing"]["transforms"][0]["reader"] = "NibabelReader"
    (tmp_path / "configs" / "inference.json").write_text(json.dumps(inference))
    made = inference_overrides(Bundle(tmp_path), InferenceOptions())
    assert "postprocessing" in made
    assert not any(key.startswith("preprocessing#transforms#0") for key in made)  # the bundle's reader stays
    inference["postprocessing"]["transforms"].insert(1, inference["postprocessing"]["transforms"][1])
    (tmp_path / "configs" / "inference.json").write_text(json.dumps(inference))
    twice = Bundle(tmp_path)
    assert (
        chosen_path(twice, InferenceOptions())
        == "stock recipe, because its postprocessing has 2 Invertd steps, not one"
    )
    assert "postprocessing" not in inference_overrides(twice, InferenceOptions())  # only the writer is replaced


def derived(tmp_path, *, inference=None, metadata=None):
    """A copy of ct_liver_tumour_3d whose inference config and metadata the callables may change in place."""
    from medseg.bundles import Bundle

    source = find_bundle("ct_liver_tumour_3d")
    configs = {"inference": json.loads(source.config("inference").read_text())}
    configs["metadata"] = json.loads(source.config("metadata").read_text())
    for name, change in (("inference", inference), ("metadata", metadata)):
        if change is not None:
            change(configs[name])
    (tmp_path / "configs").mkdir(parents=True)
    for name, content in configs.items():
        (tmp_path / "configs" / f"{name}.json").write_text(json.dumps(content))
    return Bundle(tmp_path)


def test_user_overrides_other_than_the_inferer_pass_through():
    user = {"inferer#sw_batch_size": 3, "dataset_dir": "/scans", "spacing": [1.0, 1.0, 1.0]}
    made = inference_overrides(find_bundle("ct_liver_tumour_3d"), InferenceOptions(), user)
    assert made["dataset_dir"] == "/scans" and made["spacing"] == [1.0, 1.0, 1.0]
    assert not any(key.startswith("inferer#") for key in made)


def test_fast_coarsens_sub_millimetre_spacing(tmp_path):
    bundle = derived(tmp_path, inference=lambda config: config.update(spacing=[0.5, 0.75, 1.0]))
    assert inference_overrides(bundle, InferenceOptions(coarse=True))["spacing"] == [0.75, 1.125, 1.5]


def _without_channel_first(config):
    config["preprocessing"]["transforms"] = [
        step for step in config["preprocessing"]["transforms"] if step["_target_"] != "EnsureChannelFirstd"
    ]


def _channels(count):
    def change(metadata):
        metadata["network_data_format"]["inputs"]["image"]["num_channels"] = count

    return change


@pytest.mark.parametrize("stock", [False, True])
def test_a_multi_channel_scan_loads_channels_first_only_where_the_bundle_does_not(tmp_path, stock):
    key = "preprocessing#transforms#0#ensure_channel_first"
    two = derived(tmp_path / "two", inference=_without_channel_first, metadata=_channels(2))
    assert inference_overrides(two, InferenceOptions(stock=stock))[key] is True
    one = derived(tmp_path / "one", inference=_without_channel_first, metadata=_channels(1))
    assert key not in inference_overrides(one, InferenceOptions(stock=stock))
    kept = derived(tmp_path / "kept", metadata=_channels(2))  # loads channels first itself
    assert not any("ensure_channel_first" in key for key in inference_overrides(kept, InferenceOptions(stock=stock)))


def _inline_writer(config):
    del config["writer"]
    steps = config["postprocessing"]["transforms"]
    steps[steps.index("@writer")] = {"_target_": "SaveImaged", "keys": "pred", "output_dir": "/out"}


def test_stock_recipe_points_an_inline_writer_at_medsegs(tmp_path):
    made = inference_overrides(derived(tmp_path / "inline", inference=_inline_writer), InferenceOptions(stock=True))
    assert made["postprocessing#transforms#3"] == "@writer"

    def no_writer(config):
        del config["writer"]
        config["postprocessing"]["transforms"].remove("@writer")

    with pytest.raises(MedsegError, match="has no SaveImaged step for medseg's mask writer to replace"):
        inference_overrides(derived(tmp_path / "none", inference=no_writer), InferenceOptions(stock=True))


def test_nearest_bundle_keeps_its_clean_up_on_each_side_of_the_resampling(tmp_path):
    """Discretised and cleaned up before ``Invertd(nearest_interp=True)``, cleaned up again after (wholeBody CT)."""
    before = {"_target_": "KeepLargestConnectedComponentd", "keys": "pred", "applied_labels": [1]}
    after = {"_target_": "KeepLargestConnectedComponentd", "keys": "pred", "applied_labels": [2]}

    def nearest(config):
        activation, invert, discrete, writer = config["postprocessing"]["transforms"]
        config["postprocessing"]["transforms"] = [
            activation,
            discrete,
            before,
            {**invert, "nearest_interp": True},
            after,
            writer,
        ]

    bundle = derived(tmp_path, inference=nearest)
    activation, _, discrete, _ = own("ct_liver_tumour_3d", "postprocessing")["transforms"]
    resample = {
        "_target_": "medseg.inference.resample.ResampleToSourced",
        "keys": "pred",
        "decide": {"_target_": "Compose", "transforms": []},
        "nearest": True,
    }
    # Large windows hold the logits whole: every step stays in the postprocessing.
    steps = inference_overrides(bundle, InferenceOptions(window="large"))["postprocessing"]["transforms"]
    assert steps == [activation, discrete, before, resample, after, "@writer"]
    # The bundle's windows: activation and discretisation run on them as they are stitched.
    overrides = inference_overrides(bundle, InferenceOptions())
    assert overrides["postprocessing"]["transforms"] == [before, resample, after, "@writer"]
    streamed = overrides["inferer"]["inferer"]
    assert streamed["_target_"] == "medseg.inference.streaming.DiscretisingInferer"
    assert streamed["decide"]["transforms"] == [activation, discrete]
