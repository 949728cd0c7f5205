"""Anatomical clean-up of a label map, as the bundle's metadata declares it.

``outputs.pred.label_rules`` in a bundle's ``metadata.json`` may hold:

- ``largest_component``: groups of label values that form one organ; only the largest connected
  component of each group is kept (a liver is one piece; its tumours belong to it);
- ``inside``: ``{"inner": [outer values]}``; a connected component of the inner label (a tumour)
  is kept only where it touches or lies in an outer label (its organ).

MONAI's ``KeepLargestConnectedComponent`` needs scikit-image or cuCIM on the CPU and has no
containment rule, so both rules use ``scipy.ndimage`` (already a dependency) on the box of
non-zero voxels.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scipy import ndimage

FULL_CONNECTIVITY = np.ones((3, 3, 3), bool)


def _keep_largest(labels: np.ndarray, group: list[int]) -> None:
    mask = np.isin(labels, group)
    components, count = ndimage.label(mask, structure=FULL_CONNECTIVITY)
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        labels[mask & (components != int(np.argmax(sizes)))] = 0


def _keep_inside(labels: np.ndarray, inner: int, outer: list[int]) -> None:
    mask = labels == inner
    components, count = ndimage.label(mask, structure=FULL_CONNECTIVITY)
    if count == 0:
        return
    near_organ = ndimage.binary_dilation(np.isin(labels, outer), structure=FULL_CONNECTIVITY)
    kept = np.unique(components[near_organ & mask])
    labels[mask & ~np.isin(components, kept)] = 0


def _nonzero_box(labels: np.ndarray) -> tuple[slice, ...]:
    """Slices of the smallest box holding every non-zero voxel (empty slices when there is none).

    Projections along each axis, not ``np.argwhere``: the box of a 512 x 512 x 200 mask is found
    without listing its millions of foreground coordinates.
    """
    box = []
    for axis in range(labels.ndim):
        others = tuple(a for a in range(labels.ndim) if a != axis)
        present = np.flatnonzero(labels.any(axis=others))
        box.append(slice(int(present[0]), int(present[-1]) + 1) if len(present) else slice(0, 0))
    return tuple(box)


def apply_label_rules(labels: np.ndarray, rules: Mapping[str, Any]) -> np.ndarray:
    """Apply ``rules`` to ``labels`` ``(X, Y, Z)`` in place (on their non-zero box) and return them."""
    region = _nonzero_box(labels)
    box = np.ascontiguousarray(labels[region])  # strided views slow scipy.ndimage down several times
    if box.size == 0:
        return labels
    for group in rules.get("largest_component", []):
        _keep_largest(box, [int(v) for v in group])
    for inner, outer in rules.get("inside", {}).items():
        _keep_inside(box, int(inner), [int(v) for v in outer])
    labels[region] = box
    return labels


class LabelRulesd(MapTransform):
    """Apply :func:`apply_label_rules` to ``(1, X, Y, Z)`` label maps.

    Args:
        keys: keys of the label maps.
        rules: ``{"largest_component": [[values]], "inside": {"inner": [outer values]}}``.
    """

    def __init__(self, keys: KeysCollection, rules: Mapping[str, Any]) -> None:
        super().__init__(keys)
        self.rules = rules

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return the data with each key's labels cleaned."""
        result = dict(data)
        for key in self.key_iterator(result):
            labels = result[key]
            array = labels.detach().cpu().numpy()[0]
            # the rules do not depend on axis order, so a Fortran-ordered map (as the resampling
            # writes it) is cleaned in place as its C-ordered transpose, without a reordering copy
            apply_label_rules(array.T if array.flags.f_contiguous else array, self.rules)
            cleaned = torch.from_numpy(array)[None]
            result[key] = MetaTensor(cleaned, meta=dict(labels.meta)) if isinstance(labels, MetaTensor) else cleaned
        return result
