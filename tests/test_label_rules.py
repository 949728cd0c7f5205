"""Each label rule on its own, at the edges: two components, single voxels, diagonal contact, the box's borders."""

import numpy as np
import pytest

from medseg.inference.label_rules import apply_label_rules

LARGEST = {"largest_component": [[1, 2]]}
INSIDE = {"inside": {"2": [1]}}


def volume():
    return np.zeros((12, 10, 8), np.uint8)


def test_the_larger_of_exactly_two_components_stays():
    labels = volume()
    labels[1:4, 1:4, 1:4] = 1  # 27 voxels
    labels[7:9, 6:8, 5:7] = 2  # 8 voxels, the same organ group
    expected = labels.copy()
    expected[7:9, 6:8, 5:7] = 0
    np.testing.assert_array_equal(apply_label_rules(labels, LARGEST), expected)


def test_of_single_voxel_components_one_stays():
    labels = volume()
    labels[2, 2, 2] = labels[9, 7, 5] = 1
    cleaned = apply_label_rules(labels, LARGEST)
    assert (cleaned == 1).sum() == 1 and cleaned.max() == 1


def test_one_component_is_kept_whole():
    labels = volume()
    labels[0:12, 0:2, 0:2] = 1
    labels[5, 0, 0] = 2
    np.testing.assert_array_equal(apply_label_rules(labels.copy(), LARGEST), labels)


def test_the_inside_rule_alone_drops_a_tumour_away_from_its_organ():
    labels = volume()
    labels[0:5, 0:5, 0:5] = 1
    labels[5, 5, 5] = 2  # touches the organ corner to corner: kept
    labels[10:12, 8:10, 6:8] = 2  # far from it: dropped, to background
    expected = labels.copy()
    expected[10:12, 8:10, 6:8] = 0
    np.testing.assert_array_equal(apply_label_rules(labels, INSIDE), expected)


@pytest.mark.parametrize("corner", [(0, 0, 0), (11, 9, 7)])
def test_a_lone_tumour_voxel_without_any_organ_is_dropped(corner):
    labels = volume()
    labels[corner] = 2
    assert not apply_label_rules(labels, INSIDE).any()


def test_strays_on_every_side_of_the_box_are_found():
    labels = volume()
    labels[4:8, 3:7, 2:6] = 1
    strays = [(0, 5, 4), (11, 5, 4), (5, 0, 4), (5, 9, 4), (5, 5, 0), (5, 5, 7)]
    for stray in strays:
        labels[stray] = 1
    cleaned = apply_label_rules(labels, LARGEST)
    assert all(cleaned[stray] == 0 for stray in strays) and (cleaned == 1).sum() == 64


def test_nothing_to_clean():
    labels = volume()
    assert not apply_label_rules(labels, {**LARGEST, **INSIDE}).any()
