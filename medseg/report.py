"""Plain-text tables of evaluation results for the terminal."""

from __future__ import annotations

import math

from medseg.evaluation import CaseResult, mean_dice


def _cell(value: float) -> str:
    return "   -  " if math.isnan(value) else f"{value:6.3f}"


def dice_table(results: list[CaseResult], labels: list[str]) -> str:
    """Per-case Dice for each label, then the mean over cases whose reference has that label.

    A dash means the reference has no such voxels; ``(fp)`` marks a label predicted there anyway.
    """
    width = max(len("case"), *(len(r.case) for r in results))
    lines = [f"{'case':<{width}}  " + "  ".join(f"{name:>10}" for name in labels)]
    for result in results:
        cells = []
        for name in labels:
            score = result.scores[name]
            cells.append(f"{_cell(score.dice)}{' (fp)' if score.false_positive else '     '}"[:10].rjust(10))
        lines.append(f"{result.case:<{width}}  " + "  ".join(cells))
    lines.append(f"{'mean Dice':<{width}}  " + "  ".join(f"{_cell(mean_dice(results, n)):>10}" for n in labels))
    return "\n".join(lines)
