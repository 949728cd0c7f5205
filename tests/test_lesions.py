import math

import numpy as np
import pytest
from scipy import ndimage

from medseg.lesions import (
    axial_axis,
    axial_diameter_mm,
    find_lesions,
    label_boxes,
    label_counts,
    measure,
    voxel_volume_ml,
)

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


def test_burden_fraction_and_no_organ():
    from medseg.lesions import Burden

    assert Burden((1,), (2,), organ_ml=10.0, lesion_ml=2.5).fraction == 0.25
    assert Burden((1,), (2,), organ_ml=0.5, lesion_ml=0.1).fraction == pytest.approx(0.2)  # under a millilitre
    assert math.isnan(Burden((1,), (2,), organ_ml=0.0, lesion_ml=0.0).fraction)


def test_axial_axis_follows_direction_not_spacing_or_origin():
    """Voxel axis 1 runs 20 degrees off superior in 0.7 mm steps; axis 0 (5 mm) tilts a little towards it."""
    affine = grid_affine((5.0, 0.7, 0.7), (12, 40, 40), (0.0, 0.0, 0.0), order=(0, 2, 1), degrees=(20.0, 0.0, 0.0))
    affine[:3, 0] += [0.0, 0.0, 1.5]
    affine[:3, 3] = (0.0, 0.0, 900.0)  # far along superior: the origin is no direction
    assert axial_axis(affine) == 1


def test_diameter_is_the_largest_over_single_slices():
    """Three one-voxel slices, the last offset diagonally: each slice alone spans one voxel's diagonal."""
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[2, 2, 1] = mask[2, 2, 2] = mask[3, 3, 3] = 2
    [lesion] = measure(mask, affine, [1, 2], {"2": [1]}).lesions
    assert lesion.axial_diameter_mm == pytest.approx(math.hypot(2.0, 3.0))


def test_lesions_largest_first_and_burden_of_labels_not_asked_about():
    affine = np.eye(4)
    mask = np.zeros((10, 10, 10), np.uint8)
    mask[0, 0, 0] = 2  # first in scan order, the smallest
    mask[5:8, 5:8, 5:8] = 2
    found = measure(mask, affine, [2], {"2": [1]})
    assert [lesion.volume_ml for lesion in found.lesions] == [0.027, 0.001]
    [burden] = found.burdens
    assert burden.organ_ml == burden.lesion_ml == pytest.approx(0.028)  # no organ voxels, and 1 not asked about


def _blobs(shape, seed, count=12):
    """An F-ordered label map (as a NIfTI's voxels are) with ``count`` boxes of label 2, of 1 and 3 between them."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8, order="F")
    for value in rng.choice([1, 2, 2, 3], count):
        corner = rng.integers(0, np.array(shape) - 1)
        mask[tuple(slice(c, c + int(rng.integers(1, 6))) for c in corner)] = value
    mask[0, 3:6, -2:] = 2  # on the array's edges: the crop's box meets the grid's there
    mask[-1, -1, 0] = 2
    return mask


def _whole_volume_lesions(mask, affine, label):
    """Lesions as found by labelling the whole volume, the way the crop must reproduce."""
    components, _ = ndimage.label(mask == label, structure=np.ones((3, 3, 3)))
    axis, found = axial_axis(affine), []
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        component = components == index
        centroid = np.array(ndimage.center_of_mass(component))
        found.append(
            (
                int(component.sum()) * voxel_volume_ml(affine),
                axial_diameter_mm(component, affine),
                tuple(int(v) for v in np.rint(centroid)),
                tuple(float(v) for v in affine[:3, :3] @ centroid + affine[:3, 3]),
                (box[axis].start, box[axis].stop - 1),
            )
        )
    return found


@pytest.mark.parametrize("seed", range(4))
def test_lesions_labelled_in_their_bounding_box_are_the_whole_volumes(seed):
    shape = (23, 19, 17)
    affine = grid_affine((0.8, 0.9, 1.7), shape, CENTRE, degrees=(10, 0, 20), order=(1, 2, 0))
    mask = _blobs(shape, seed)
    lesions = find_lesions(mask, affine, 2)
    assert len(lesions) >= 4
    got = [(x.volume_ml, x.axial_diameter_mm, x.centre, x.centre_ras_mm, x.axial_slices) for x in lesions]
    expected = _whole_volume_lesions(mask, affine, 2)
    assert [g[2:] for g in got] == [e[2:] for e in expected]  # same components, same order, same slices
    np.testing.assert_allclose([g[:2] for g in got], [e[:2] for e in expected], rtol=1e-12)
    assert find_lesions(np.zeros(shape, np.uint8), affine, 2) == []


def test_label_boxes_in_either_memory_order_are_find_objects():
    mask = np.ascontiguousarray(_blobs((21, 18, 15), 7))
    mask[mask == 3] = 0  # label 3 absent: its box is None
    expected = ndimage.find_objects(mask, max_label=4)
    assert expected[2] is None and expected[3] is None
    assert label_boxes(mask, 4) == expected
    assert label_boxes(np.asfortranarray(mask), 4) == expected
    assert label_boxes(mask[::-1, :, ::2], 4) == ndimage.find_objects(mask[::-1, :, ::2], max_label=4)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint16, bool])
@pytest.mark.parametrize("order", ["C", "F"])
def test_label_counts_are_numpys_bincount_for_any_label_type_and_order(dtype, order):
    labels = np.random.default_rng(3).integers(0, 2 if dtype is bool else 7, size=(9, 8, 7))
    mask = np.asarray(labels, dtype=dtype, order=order)
    np.testing.assert_array_equal(label_counts(mask, 10), np.bincount(labels.ravel(), minlength=10))


@pytest.mark.parametrize("seed", range(3))
def test_measure_counts_and_finds_lesions_inside_the_labels_boxes_as_over_the_whole_volume(seed):
    shape = (23, 19, 17)
    affine = grid_affine((0.8, 0.9, 1.7), shape, CENTRE)
    mask = np.asfortranarray(_blobs(shape, seed))
    mask[mask == 3] = 0  # label 3 absent: a None box among the others
    found = measure(mask, affine, [1, 2, 3, 4], {"2": [1], "3": [1]})
    assert found.volumes_ml == {v: np.count_nonzero(mask == v) * voxel_volume_ml(affine) for v in (1, 2, 3, 4)}
    assert found.boxes == ndimage.find_objects(mask, max_label=4)
    whole = sorted(find_lesions(np.ascontiguousarray(mask), affine, 2), key=lambda lesion: -lesion.volume_ml)
    assert [lesion.centre for lesion in found.lesions] == [lesion.centre for lesion in whole]
