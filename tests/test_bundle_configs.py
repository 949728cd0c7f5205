import json

import pytest
from monai.bundle import ConfigWorkflow

from medseg.bundles import find_bundle

from .conftest import TINY


@pytest.mark.parametrize(("config", "workflow_type"), [("train", "train"), ("inference", "infer")])
def test_monai_property_checks_pass(tmp_path, ct_bundle, small_ct, config, workflow_type):
    workflow = ConfigWorkflow(
        config_file=str(ct_bundle.config(config)),
        meta_file=str(ct_bundle.config("metadata")),
        logging_file=False,
        workflow_type=workflow_type,
        bundle_root=str(ct_bundle.root),
        dataset_dir=str(small_ct),
        output_dir=str(tmp_path),  # training handlers write TensorBoard logs there
        **TINY,
    )
    workflow.initialize()
    assert workflow.check_properties() == []


def test_channel_def_names_every_label(ct_bundle):
    labels = {label.value: label.name for label in ct_bundle.labels}
    assert labels == {0: "background", 1: "liver", 2: "tumour"}
    assert all(label.color is not None for label in ct_bundle.labels if label.value)


def test_inference_has_the_keys_monai_label_reads(ct_bundle):
    config = json.loads(ct_bundle.config("inference").read_text())
    assert {"network_def", "preprocessing", "inferer", "postprocessing"} <= set(config)


def test_bundle_by_path_and_by_name_agree(ct_bundle):
    assert find_bundle(ct_bundle.root) == find_bundle("ct_liver_tumour_3d")
