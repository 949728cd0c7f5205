"""``medseg evaluate``: segment a dataset's labelled cases and score them on their own grids."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.bundles import Bundle
from medseg.data.discover import discover
from medseg.errors import MedsegError
from medseg.inference.predict import segment
from medseg.io.atomic import write_text
from medseg.metrics import LabelScore, score_case


@dataclass(frozen=True)
class CaseResult:
    """Scores of one case: label name to :class:`LabelScore`."""

    case: str
    scores: dict[str, LabelScore]


def mean_dice(results: list[CaseResult], label: str) -> float:
    """Mean Dice of ``label`` over the cases whose reference contains it (NaN if none does)."""
    values = [r.scores[label].dice for r in results if not math.isnan(r.scores[label].dice)]
    return float(np.mean(values)) if values else math.nan


def _read_pair(mask: Path, reference: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    predicted, expected = nib.load(mask), nib.load(reference)
    if predicted.shape[:3] != expected.shape[:3] or not np.allclose(predicted.affine, expected.affine, atol=1e-3):
        raise MedsegError(f"mask grid differs from its reference label {reference}", mask)
    spacing = tuple(float(s) for s in expected.header.get_zooms()[:3])
    return np.asarray(predicted.dataobj), np.asarray(expected.dataobj), spacing


def _csv(results: list[CaseResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case", "label", "dice", "hd95_mm", "predicted_ml", "reference_ml"])
    for result in results:
        for label, s in result.scores.items():
            writer.writerow(
                [
                    result.case,
                    label,
                    *(f"{v:.4f}" for v in (s.dice, s.hd95_mm, s.predicted_ml, s.reference_ml)),
                ]
            )
    return buffer.getvalue()


def evaluate(
    bundle: Bundle,
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    weights: str | Path | Sequence[str | Path] | None = None,
    device: str = "auto",
) -> list[CaseResult]:
    """Segment the labelled test cases (or, without any, the training cases) and score them.

    Writes the masks to ``OUTDIR/masks/`` and the per-case, per-label table to ``OUTDIR/metrics.csv``.
    Several ``weights`` files segment with their ensemble.
    """
    dataset = discover(data_dir)
    cases = dataset.labelled_test or dataset.training
    if not cases:
        raise MedsegError("no labelled cases to evaluate", data_dir)
    output = Path(output_dir)
    masks = segment(bundle, [case.image[0] for case in cases], output / "masks", weights=weights, device=device)
    labels = {label.value: label.name for label in bundle.labels}
    results = []
    for case, mask in zip(cases, masks, strict=True):
        prediction, reference, spacing = _read_pair(mask, case.label)
        results.append(CaseResult(case.image[0].name, score_case(prediction, reference, labels, spacing)))
    write_text(output / "metrics.csv", _csv(results))
    return results
