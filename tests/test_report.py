"""The terminal table of `medseg evaluate`: Dice and HD95 per case and label, and their means."""

import math

from medseg.evaluation import CaseResult
from medseg.metrics import LabelScore
from medseg.report import dice_table


def _score(dice: float, hd95: float = math.nan, predicted_ml: float = 1.0, reference_ml: float = 1.0) -> LabelScore:
    return LabelScore(dice, hd95, predicted_ml, reference_ml)


def test_long_label_names_keep_their_columns_apart():
    labels = ["necrotic tumour core", "peritumoral oedema", "enhancing tumour"]
    first_case = [_score(math.nan, predicted_ml=2.0, reference_ml=0.0), _score(0.5, 4.0), _score(0.25)]
    second_case = [_score(0.1, 9.5), _score(0.7, 2.0), _score(0.75)]
    results = [
        CaseResult("brats_024", dict(zip(labels, first_case, strict=True))),
        CaseResult("brats_025", dict(zip(labels, second_case, strict=True))),
    ]
    header, first, second, mean = dice_table(results, labels).splitlines()
    for name in labels:
        assert f" {name} Dice" in header and f" {name} HD95" in header
    assert first.split() == ["brats_024", "-", "(fp)", "-", "0.500", "4.0", "0.250", "-"]
    assert mean.split() == ["mean", "0.100", "9.5", "0.600", "3.0", "0.500", "-"]
    assert len({len(line) for line in (header, first, second, mean)}) == 1, "columns line up"


def test_cases_from_both_sets_get_a_mean_for_each():
    results = [
        CaseResult("a", {"liver": _score(0.9, 2.0)}, "test"),
        CaseResult("b", {"liver": _score(0.7, 4.0)}, "training"),
        CaseResult("c", {"liver": _score(0.5, 6.0)}, "training"),
    ]
    *_, mean, test, training = dice_table(results, ["liver"]).splitlines()
    assert mean.split() == ["mean", "0.700", "4.0"]
    assert test.split() == ["mean", "(test)", "0.900", "2.0"]
    assert training.split() == ["mean", "(training)", "0.600", "5.0"]
