import math

import numpy as np
import pytest

from medseg.lesions import axial_axis, measure

from .shapes import grid_affine, sphere, vertical_cylinder

CENTRE = (12.3, -40.7, 25.1)
LIVER_RULES = {"2": [1]}


def _mask(*regions):
    """A uint8 label map: each ``(boolean region, value)`` painted in turn."""
    mask = np.zeros(regions[0][0].shape, np.uint8)
    for region, value in regions:
        mask[region] = value
    return mask


def test_cylinder_on_a_flipped_anisotropic_grid():
    shape = (110, 120, 24)
    affine = grid_affine((0.9, 0.8, 2.5), shape, CENTRE, flip=(-1, -1, 1))
    mask = _mask((vertical_cylinder(affine, shape, CENTRE, radius=20, height=30), 2))
    found = measure(mask, affine, [1, 2], {"2": [1]})
    assert found.volumes_ml[2] == pytest.approx(math.pi * 20**2 * 30 / 1000, rel=0.04)
    [lesion] = found.lesions
    assert 40.0 <= lesion.axial_diameter_mm <= 41.5  # calipers on the pixels: one voxel more at most
    np.testing.assert_allclose(lesion.centre_ras_mm, CENTRE, atol=0.5)


def test_sphere_on_an_oblique_grid():
    shape = (40, 36, 30)
    affine = grid_affine((1.0, 1.2, 1.5), shape, CENTRE, degrees=(25, -15, 30))
    mask = _mask((sphere(affine, shape, CENTRE, 12), 2))
    found = measure(mask, affine, [2], LIVER_RULES)
    assert found.volumes_ml[2] == pytest.approx(4 / 3 * math.pi * 12**3 / 1000, rel=0.04)
    assert 24.0 <= found.lesions[0].axial_diameter_mm <= 26.5


def test_measurements_do_not_depend_on_how_the_grid_is_stored():
    shape = (30, 34, 20)
    results = []
    for flip, order in [((1, 1, 1), (0, 1, 2)), ((-1, -1, 1), (0, 1, 2)), ((1, -1, -1), (2, 0, 1))]:
        spacing = np.array((1.1, 1.3, 2.0))[list(order)]
        dims = tuple(np.array(shape)[list(order)])
        affine = grid_affine(spacing, dims, CENTRE, flip=flip, order=order)
        lesion = measure(_mask((sphere(affine, dims, CENTRE, 9), 2)), affine, [2], LIVER_RULES).lesions[0]
        results.append((lesion.volume_ml, lesion.axial_diameter_mm))
    np.testing.assert_allclose(results, [results[0]] * 3, rtol=1e-9)


def test_axial_slices_are_across_the_axis_closest_to_superior():
    assert axial_axis(grid_affine((1, 1, 1), (5, 5, 5), CENTRE)) == 2
    assert axial_axis(grid_affine((1, 1, 1), (5, 5, 5), CENTRE, order=(2, 0, 1))) == 0
    assert axial_axis(grid_affine((1, 1, 1), (5, 5, 5), CENTRE, degrees=(30, 0, 0))) == 2


def test_lesions_counted_sorted_and_burden_of_the_organ_with_its_tumours():
    shape = (60, 60, 40)
    affine = grid_affine((2.0, 2.0, 2.5), shape, CENTRE, flip=(-1, 1, -1))
    big, small = np.add(CENTRE, (15, 0, 0)), np.add(CENTRE, (-18, 5, 8))
    liver = sphere(affine, shape, CENTRE, 45)
    mask = _mask((liver, 1), (sphere(affine, shape, big, 10), 2), (sphere(affine, shape, small, 5), 2))
    found = measure(mask, affine, [1, 2], LIVER_RULES)
    assert [round(lesion.volume_ml, 1) for lesion in found.lesions] == pytest.approx([4.2, 0.5], abs=0.25)
    np.testing.assert_allclose(found.lesions[0].centre_ras_mm, big, atol=1.0)
    [burden] = found.burdens
    assert burden.organ_labels == (1,) and burden.lesion_labels == (2,)
    assert burden.organ_ml == pytest.approx(found.volumes_ml[1] + found.volumes_ml[2])
    assert burden.organ_ml == pytest.approx(4 / 3 * math.pi * 45**3 / 1000, rel=0.03)
    assert burden.fraction == pytest.approx((10**3 + 5**3) / 45**3, rel=0.08)


def test_no_rules_no_lesions():
    shape = (10, 10, 10)
    affine = grid_affine((2, 2, 2), shape, CENTRE)
    found = measure(_mask((sphere(affine, shape, CENTRE, 6), 1)), affine, [1, 2], {})
    assert found.lesions == [] and found.burdens == []
    assert found.volumes_ml[2] == 0
    assert found.volumes_ml[1] == pytest.approx(int((sphere(affine, shape, CENTRE, 6)).sum()) * 8 / 1000)


def test_lesion_slice_spans_are_voxel_indices_along_the_axial_axis():
    mask = np.zeros((16, 12, 12), np.uint8)
    mask[4:9, 2:5, 3:6] = 2
    mask[12, 10, 10] = 2
    head_first = np.array([[0, 2.0, 0, 0], [0, 0, 2.0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])  # axis 0 runs superior
    assert sorted(lesion.axial_slices for lesion in measure(mask, head_first, [2], LIVER_RULES).lesions) == [
        (4, 8),
        (12, 12),
    ]
    feet_first = np.diag([2.0, 2.0, -3.0, 1.0])  # axis 2 runs inferior: still numbered as stored
    assert sorted(lesion.axial_slices for lesion in measure(mask, feet_first, [2], LIVER_RULES).lesions) == [
        (3, 5),
        (10, 10),
    ]
