"""BraTS region Dice (WT, TC, ET) of `medseg evaluate`'s masks over held-out datasets, per seed and across seeds.

    python held_out_regions.py EVAL_PREFIX DATA_PREFIX 20261201 20261202 20261203

reads DATA_PREFIX_<seed>/labelsTr/<case>.nii.gz and EVAL_PREFIX_<seed>/masks/<case>_seg.nii.gz. The regions
are the bundle's own (``configs/metadata.json``: ``outputs.pred.regions``, label values). A case without
enhancing tumour does not count towards ET.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

METADATA = Path(__file__).resolve().parents[2] / "configs" / "metadata.json"
REGIONS: dict[str, list[int]] = json.loads(METADATA.read_text())["network_data_format"]["outputs"]["pred"]["regions"]


def region_dice(evaluation: Path, data: Path) -> dict[str, float]:
    """Mean Dice of each region over the cases of ``data`` that have it."""
    scores: dict[str, list[float]] = {region: [] for region in REGIONS}
    for label in sorted((data / "labelsTr").glob("*.nii.gz")):
        truth = np.asarray(nib.load(label).dataobj)
        mask = np.asarray(nib.load(evaluation / "masks" / label.name.replace(".nii", "_seg.nii")).dataobj)
        for region, values in REGIONS.items():
            reference, predicted = np.isin(truth, values), np.isin(mask, values)
            if reference.any():
                scores[region].append(2 * (reference & predicted).sum() / (reference.sum() + predicted.sum()))
    return {region: float(np.mean(values)) for region, values in scores.items()}


def main() -> None:
    """Print each seed's region Dice, then each region's mean and spread across the seeds."""
    evaluation, data, *seeds = sys.argv[1:]
    per_seed = {seed: region_dice(Path(f"{evaluation}_{seed}"), Path(f"{data}_{seed}")) for seed in seeds}
    for seed, scores in per_seed.items():
        print(seed, {region: round(score, 3) for region, score in scores.items()})
    for region in REGIONS:
        values = [scores[region] for scores in per_seed.values()]
        print(f"{region} {np.mean(values):.3f} +- {np.std(values):.3f}")


if __name__ == "__main__":
    main()
