"""Deterministic k-fold cross-validation splits, stored as ``splits.json`` (nnU-Net's format).

``splits.json`` is a list with one ``{"train": [case ids], "val": [case ids]}`` entry per fold.
A dataset that ships its own ``splits.json`` keeps it; otherwise one is made and written beside
the training run, so that every fold of a cross-validation uses the same partition.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medseg.data.discover import Case
from medseg.errors import MedsegError
from medseg.io.atomic import write_text

SPLITS_FILE = "splits.json"
DEFAULT_FOLDS = 5
SPLIT_SEED = 12345

Split = dict[str, list[str]]


def kfold_splits(case_ids: list[str], folds: int = DEFAULT_FOLDS, seed: int = SPLIT_SEED) -> list[Split]:
    """Partition case ids into ``folds`` validation sets (shuffled with ``seed``, sizes differing by at most 1)."""
    if len(case_ids) < 2:
        raise MedsegError(f"cross-validation needs at least 2 labelled cases, found {len(case_ids)}")
    folds = min(folds, len(case_ids))
    order = sorted(case_ids)
    shuffled = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    parts = [shuffled[fold::folds] for fold in range(folds)]
    return [
        {"train": sorted(i for other in parts if other is not part for i in other), "val": sorted(part)}
        for part in parts
    ]


def read_splits(path: Path) -> list[Split]:
    """Read a ``splits.json``; raise a one-line error if it is not a list of train/val id lists."""
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(splits, list) or not all(
            isinstance(s, dict) and isinstance(s.get("train"), list) and isinstance(s.get("val"), list) for s in splits
        ):
            raise ValueError("expected a list of {'train': [...], 'val': [...]} objects")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise MedsegError(f"cannot read splits ({error})", path) from None
    return splits


def fold_cases(
    cases: list[Case], fold: int, *, dataset_dir: Path, output_dir: Path, folds: int = DEFAULT_FOLDS
) -> tuple[list[Case], list[Case], Path]:
    """Training and validation cases of one fold, and the ``splits.json`` used.

    The dataset's own ``splits.json`` is used if present; otherwise a k-fold split is made and
    written to ``output_dir/splits.json``.
    """
    source = dataset_dir / SPLITS_FILE
    if source.is_file():
        splits = read_splits(source)
    else:
        splits = kfold_splits([case.id for case in cases], folds)
        source = output_dir / SPLITS_FILE
        write_text(source, json.dumps(splits, indent=2) + "\n")
    if not 0 <= fold < len(splits):
        raise MedsegError(f"fold {fold} does not exist; {source} has folds 0 to {len(splits) - 1}")
    by_id = {case.id: case for case in cases}
    unknown = sorted(set(splits[fold]["train"] + splits[fold]["val"]) - set(by_id))
    if unknown:
        raise MedsegError(f"fold {fold} names cases that are not in the dataset: {', '.join(unknown[:5])}", source)
    return [by_id[i] for i in splits[fold]["train"]], [by_id[i] for i in splits[fold]["val"]], source
