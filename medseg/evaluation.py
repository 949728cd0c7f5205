"""``medseg evaluate``: segment a dataset's labelled cases and score them on their own grids.

Every labelled case counts: the labelled test cases and the training cases (``cases`` narrows it to
one set; each result records its set). A case of several channel files (nnU-Net's
``CASE_0000.nii.gz``, ``CASE_0001.nii.gz``) is segmented from one 4D NIfTI of its channels, channel
last as the bundles read it, written beside the masks.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.bundles import Bundle
from medseg.data.discover import Case, Dataset, discover
from medseg.errors import MedsegError
from medseg.inference.predict import segment
from medseg.io.atomic import write_text
from medseg.io.fast_nifti import read_nifti
from medseg.io.nifti import write_nifti
from medseg.metrics import LabelScore, score_case

CASE_SETS = ("all", "test", "training")


@dataclass(frozen=True)
class CaseResult:
    """Scores of one case: label name to :class:`LabelScore`; ``subset`` is ``test`` or ``training``."""

    case: str
    scores: dict[str, LabelScore]
    subset: str = "test"


def _mean(values: list[float]) -> float:
    """The mean of the values that are not NaN (NaN if none is)."""
    kept = [value for value in values if not math.isnan(value)]
    return float(np.mean(kept)) if kept else math.nan


def mean_dice(results: list[CaseResult], label: str) -> float:
    """Mean Dice of ``label`` over the cases whose reference contains it (NaN if none does)."""
    return _mean([r.scores[label].dice for r in results])


def mean_hd95(results: list[CaseResult], label: str) -> float:
    """Mean HD95 (mm) of ``label`` over the cases where both masks contain it (NaN if none does)."""
    return _mean([r.scores[label].hd95_mm for r in results])


def _read_pair(mask: Path, reference: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    predicted, expected = read_nifti(mask), read_nifti(reference)
    if predicted.shape[:3] != expected.shape[:3] or not np.allclose(predicted.affine, expected.affine, atol=1e-3):
        raise MedsegError(f"mask grid differs from its reference label {reference}", mask)
    spacing = tuple(float(s) for s in expected.header.get_zooms()[:3])
    return np.asarray(predicted.dataobj), np.asarray(expected.dataobj), spacing


def _csv(results: list[CaseResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case", "set", "label", "dice", "hd95_mm", "predicted_ml", "reference_ml"])
    for result in results:
        for label, s in result.scores.items():
            writer.writerow(
                [
                    result.case,
                    result.subset,
                    label,
                    *(f"{v:.4f}" for v in (s.dice, s.hd95_mm, s.predicted_ml, s.reference_ml)),
                ]
            )
    return buffer.getvalue()


def labelled_cases(dataset: Dataset, subset: str = "all") -> list[tuple[Case, str]]:
    """The dataset's labelled cases of ``subset`` (``all``, ``test`` or ``training``), each with its set."""
    if subset not in CASE_SETS:
        raise MedsegError(f"`cases` must be one of {', '.join(CASE_SETS)}, got {subset!r}")
    test = [(case, "test") for case in dataset.labelled_test if subset in ("all", "test")]
    return test + [(case, "training") for case in dataset.training if subset in ("all", "training")]


def _scan_file(case: Case, folder: Path) -> Path:
    """The file to segment: the case's image, or its channel files stacked into ``folder/<id>.nii.gz``."""
    if len(case.image) == 1:
        return case.image[0]
    channels = [read_nifti(path) for path in case.image]
    stacked = np.stack([np.asarray(image.dataobj) for image in channels], axis=-1)
    return write_nifti(folder / f"{case.id}.nii.gz", stacked, channels[0].affine)


def evaluate(
    bundle: Bundle,
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    weights: str | Path | Sequence[str | Path] | None = None,
    device: str = "auto",
    cases: str = "all",
) -> list[CaseResult]:
    """Segment a dataset's labelled cases and score each label's Dice and HD95 on the case's own grid.

    Writes the masks to ``OUTDIR/masks/`` and the per-case, per-label table to ``OUTDIR/metrics.csv``.
    Several ``weights`` files segment with their ensemble.

    Args:
        bundle: the bundle that segments.
        data_dir: dataset folder or CSV (see :func:`medseg.data.discover.discover`).
        output_dir: where the masks and ``metrics.csv`` go.
        weights: weights file(s); default the bundle's.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        cases: ``all`` labelled cases, or only the ``test`` or the ``training`` ones.
    """
    chosen = labelled_cases(discover(data_dir), cases)
    if not chosen:
        raise MedsegError(
            "no labelled cases to evaluate" if cases == "all" else f"no labelled {cases} cases to evaluate", data_dir
        )
    output = Path(output_dir)
    scans = [_scan_file(case, output / "inputs") for case, _ in chosen]
    masks = segment(bundle, scans, output / "masks", weights=weights, device=device)
    labels = {label.value: label.name for label in bundle.labels}
    results = []
    for (case, subset), mask in zip(chosen, masks, strict=True):
        assert case.label is not None  # labelled_cases chose it for its label
        prediction, reference, spacing = _read_pair(mask, case.label)
        results.append(CaseResult(case.id, score_case(prediction, reference, labels, spacing), subset))
    write_text(output / "metrics.csv", _csv(results))
    return results
