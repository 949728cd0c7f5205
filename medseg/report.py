"""Plain-text tables of evaluation results for the terminal: Dice and HD95 per case and label, and means."""

from __future__ import annotations

import math

from medseg.evaluation import CaseResult, mean_dice, mean_hd95
from medseg.metrics import LabelScore


def _cell(value: float, width: int, digits: int, false_positive: bool = False) -> str:
    """A right-aligned number, or a dash for NaN (a label absent from a mask), with a false-positive mark."""
    text = "-" if math.isnan(value) else f"{value:.{digits}f}"
    return f"{text}{' (fp)' if false_positive else ''}".rjust(width)


def _row(name: str, width: int, columns: dict[str, int], scores: dict[str, LabelScore]) -> str:
    """One line: the name, then each label's Dice (with its false-positive mark) and HD95."""
    cells = (
        _cell(s.dice, columns[n], 3, s.false_positive) + _cell(s.hd95_mm, columns[n], 1) for n, s in scores.items()
    )
    return f"{name:<{width}}" + "".join(cells)


def _mean_scores(results: list[CaseResult], labels: list[str]) -> dict[str, LabelScore]:
    """Each label's mean Dice and HD95 over ``results``, as scores (volumes left out: NaN)."""
    return {n: LabelScore(mean_dice(results, n), mean_hd95(results, n), math.nan, math.nan) for n in labels}


def _mean_rows(results: list[CaseResult]) -> list[tuple[str, list[CaseResult]]]:
    """The mean rows: over every case, and over each set when the cases come from both."""
    subsets = sorted({r.subset for r in results})
    rows = [("mean", results)]
    if len(subsets) > 1:
        rows += [(f"mean ({subset})", [r for r in results if r.subset == subset]) for subset in subsets]
    return rows


def dice_table(results: list[CaseResult], labels: list[str]) -> str:
    """Per-case Dice and HD95 (mm) for each label, then their means (over every case, and per set).

    A mean of Dice is over the cases whose reference has that label, of HD95 over the cases where
    both masks have it. A dash means the reference has no such voxels (Dice) or one of the masks
    none (HD95); ``(fp)`` marks a label predicted where the reference has none.
    """
    means = _mean_rows(results)
    width = max(len("case"), *(len(name) for name, _ in means), *(len(r.case) for r in results))
    columns = {n: max(12, len(n) + 7) for n in labels}  # room for "0.123 (fp)" and "<name> Dice"
    header = "".join(f"{n + ' Dice':>{columns[n]}}{n + ' HD95':>{columns[n]}}" for n in labels)
    lines = [f"{'case':<{width}}{header}"]
    lines += [_row(r.case, width, columns, {n: r.scores[n] for n in labels}) for r in results]
    lines += [_row(name, width, columns, _mean_scores(subset, labels)) for name, subset in means]
    return "\n".join(lines)
