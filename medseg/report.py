"""Plain-text tables of evaluation results for the terminal."""

from __future__ import annotations

import math

from medseg.evaluation import CaseResult, mean_dice


def _cell(value: float, width: int, false_positive: bool = False) -> str:
    """A right-aligned cell: the Dice, or a dash where the reference lacks the label, and a false-positive mark."""
    text = "-" if math.isnan(value) else f"{value:.3f}"
    return f"{text}{' (fp)' if false_positive else ''}".rjust(width)


def dice_table(results: list[CaseResult], labels: list[str]) -> str:
    """Per-case Dice for each label, then the mean over cases whose reference has that label.

    A dash means the reference has no such voxels; ``(fp)`` marks a label predicted there anyway.
    """
    width = max(len("mean Dice"), *(len(r.case) for r in results))
    columns = {name: max(12, len(name) + 2) for name in labels}  # room for "0.123 (fp)" and the name
    lines = [f"{'case':<{width}}" + "".join(f"{name:>{columns[name]}}" for name in labels)]
    for result in results:
        cells = (_cell(result.scores[n].dice, columns[n], result.scores[n].false_positive) for n in labels)
        lines.append(f"{result.case:<{width}}" + "".join(cells))
    lines.append(f"{'mean Dice':<{width}}" + "".join(_cell(mean_dice(results, n), columns[n]) for n in labels))
    return "\n".join(lines)
