"""The terminal Dice table."""

import math

from medseg.evaluation import CaseResult
from medseg.metrics import LabelScore
from medseg.report import dice_table


def _score(dice: float, predicted_ml: float = 1.0, reference_ml: float = 1.0) -> LabelScore:
    return LabelScore(dice, math.nan, predicted_ml, reference_ml)


def test_long_label_names_keep_their_columns_apart():
    labels = ["necrotic tumour core", "peritumoral oedema", "enhancing tumour"]
    first_case = [_score(math.nan, predicted_ml=2.0, reference_ml=0.0), _score(0.5), _score(0.25)]
    second_case = [_score(0.1), _score(0.7), _score(0.75)]
    results = [
        CaseResult("brats_024.nii.gz", dict(zip(labels, first_case, strict=True))),
        CaseResult("brats_025.nii.gz", dict(zip(labels, second_case, strict=True))),
    ]
    header, first, second, mean = dice_table(results, labels).splitlines()
    for name in labels:
        assert f" {name}" in header
    assert first.split() == ["brats_024.nii.gz", "-", "(fp)", "0.500", "0.250"]
    assert mean.split() == ["mean", "Dice", "0.100", "0.600", "0.500"]
    assert len({len(line) for line in (header, first, second, mean)}) == 1, "columns line up"
