"""One short epoch on each dataset layout, through the bundle's own train.json."""

import csv
import json

import pytest

from medseg.bundles import derive_bundle, top_level_values
from medseg.training.run import train

from . import datasets
from .conftest import TINY


def channel_variant(bundle, folder, channels):
    """The CT bundle taking ``channels`` input channels (network and metadata)."""
    network = top_level_values(bundle, "train", ["network_def"])["network_def"]
    variant = derive_bundle(bundle, folder, {"network_def": {**network, "in_channels": channels}})
    metadata = json.loads(variant.config("metadata").read_text())
    metadata["network_data_format"]["inputs"]["image"]["num_channels"] = channels
    variant.config("metadata").write_text(json.dumps(metadata))
    return variant


@pytest.fixture(scope="module")
def cases(small_ct):
    return datasets.tiny_cases(small_ct, 4)


LAYOUTS = {
    "msd-4ch": (lambda root, cases: datasets.msd(root, cases, channels=4), 4),
    "nnunet-2ch": (lambda root, cases: datasets.nnunet(root, cases, channels=2), 2),
    "folder": (datasets.folder_pairs, 1),
    "images-labels": (lambda root, cases: datasets.folder_pairs(root, cases, subfolders=True), 1),
    "csv": (datasets.csv_table, 1),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_one_epoch_on_each_layout(tmp_path, ct_bundle, cases, layout):
    build, channels = LAYOUTS[layout]
    bundle = ct_bundle if channels == 1 else channel_variant(ct_bundle, tmp_path / "bundle", channels)
    data = build(tmp_path / "data", cases)
    run = train(bundle, data, output=tmp_path / "run", epochs=1, device="cpu", overrides={**TINY, "val_interval": 1})
    with run.history.open() as handle:
        [row] = list(csv.DictReader(handle))
    assert float(row["train_loss"]) > 0 and 0 <= float(row["val_mean_dice"]) <= 1
    assert run.best_weights.is_file()


def test_disk_cache_when_memory_is_short(tmp_path, ct_bundle, cases):
    said = []
    data = datasets.folder_pairs(tmp_path / "data", cases)
    run = train(
        ct_bundle,
        data,
        output=tmp_path / "run",
        epochs=1,
        device="cpu",
        cache_memory=1000,
        overrides={**TINY, "val_interval": 1},
        say=said.append,
    )
    assert any("on disk" in line for line in said)
    assert any((run.output / "cache" / "train").iterdir())
    assert json.loads((run.output / "run.json").read_text())["cache"].startswith("caching preprocessed cases on disk")
