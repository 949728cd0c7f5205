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


LAYOUTS = {  # each holds the same cases as an MSD dataset with the same number of channels
    "nnunet-4ch": (lambda root, cases: datasets.nnunet(root, cases, channels=4), 4),
    "folder": (datasets.folder_pairs, 1),
    "images-labels": (lambda root, cases: datasets.folder_pairs(root, cases, subfolders=True), 1),
    "csv": (datasets.csv_table, 1),
}
COMPARED = ("train_loss", "val_mean_dice")


def one_epoch(bundle, data, output):
    """The history row of one seeded training epoch (``set_determinism``, no loader workers)."""
    run = train(bundle, data, output=output, epochs=1, device="cpu", overrides={**TINY, "val_interval": 1})
    with run.history.open() as handle:
        [row] = list(csv.DictReader(handle))
    assert run.best_weights.is_file()
    return {key: float(row[key]) for key in COMPARED}


def bundle_for(ct_bundle, folder, channels):
    return ct_bundle if channels == 1 else channel_variant(ct_bundle, folder, channels)


@pytest.fixture(scope="module")
def msd_rows(tmp_path_factory, ct_bundle, cases):
    """``{channels: history row}`` of the epoch on the cases in MSD layout, with 1 and with 4 channels."""
    rows = {}
    for channels in (1, 4):
        folder = tmp_path_factory.mktemp(f"msd{channels}")
        data = datasets.msd(folder / "data", cases, channels=channels)
        rows[channels] = one_epoch(bundle_for(ct_bundle, folder / "bundle", channels), data, folder / "run")
        assert rows[channels]["train_loss"] > 0 and rows[channels]["val_mean_dice"] > 0
    return rows


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_one_epoch_on_each_layout_trains_exactly_as_on_msd(tmp_path, ct_bundle, cases, msd_rows, layout):
    """Same cases, same ids, same folds, same seed: a layout that pairs or orders the files wrongly shows."""
    build, channels = LAYOUTS[layout]
    data = build(tmp_path / "data", cases)
    row = one_epoch(bundle_for(ct_bundle, tmp_path / "bundle", channels), data, tmp_path / "run")
    assert row == msd_rows[channels]


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
