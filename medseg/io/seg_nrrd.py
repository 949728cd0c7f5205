"""Slicer segmentation files (``.seg.nrrd``): the mask as one labelmap layer, one segment per bundle label.

slicerio writes the format (``Segment{i}_ID``, ``_Name``, ``_Color``, ``_LabelValue``, ``_Layer``,
``_Extent``, ``_Tags`` with a ``TerminologyEntry``); this module decides what goes in it. The voxels are
the mask's ``(X, Y, Z)`` array unchanged, so every segment keeps its bundle label value, and the grid is
the mask's NIfTI affine turned from RAS into LPS (``space: left-posterior-superior``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import slicerio

from medseg.io.atomic import atomic_file
from medseg.io.nifti import lps_affine
from medseg.labels import Label, Terminology
from medseg.lesions import label_boxes

# Where the codes of ``channel_terminology`` come from: DICOM PS3.16 (CID 7150, 7151 and their types).
CATEGORY_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMY_CONTEXT = "Anatomic codes - DICOM master list"
EMPTY_EXTENT = [0, -1, 0, -1, 0, -1]  # how Slicer writes the extent of a segment with no voxels
# gzip level of the voxels: slicerio's default, 9, takes 5 times as long as 1 on a 512 x 512 x 200 mask for a
# file a few hundred kB smaller (masks compress well at any level); the mask NIfTI is written at 1 too.
GZIP_LEVEL = 1


def terminology_entry(terminology: Terminology) -> dict[str, Any]:
    """A label's terminology as slicerio takes it (and writes into the ``TerminologyEntry`` tag)."""
    entry: dict[str, Any] = {
        "contextName": CATEGORY_CONTEXT,
        "category": list(terminology.category),
        "type": list(terminology.type),
    }
    if terminology.anatomic_region is not None:
        entry |= {"anatomicContextName": ANATOMY_CONTEXT, "anatomicRegion": list(terminology.anatomic_region)}
    return entry


def _extent(box: tuple[slice, ...] | None) -> list[int]:
    """Slicer's inclusive ``[i0, i1, j0, j1, k0, k1]`` voxel extent of a bounding box."""
    return EMPTY_EXTENT if box is None else [bound for s in box for bound in (s.start, s.stop - 1)]


def _segment(label: Label, box: tuple[slice, ...] | None) -> dict[str, Any]:
    segment: dict[str, Any] = {
        "id": f"Segment_{label.value}",
        "name": label.name,
        "color": [channel / 255 for channel in label.rgb],
        "labelValue": label.value,
        "layer": 0,
        "extent": _extent(box),
    }
    if label.terminology is not None:
        segment["terminology"] = terminology_entry(label.terminology)
    return segment


def write_seg_nrrd(
    path: str | Path,
    mask: np.ndarray,
    affine: np.ndarray,
    labels: list[Label],
    boxes: Sequence[tuple[slice, ...] | None] | None = None,
) -> Path:
    """Write a Slicer segmentation of ``mask`` atomically.

    Args:
        path: the ``.seg.nrrd`` file.
        mask: ``(X, Y, Z)`` uint8 label map.
        affine: ``(4, 4)`` voxel-to-RAS affine of ``mask`` (its NIfTI affine).
        labels: the bundle's labels; each non-background one becomes a segment, present in the mask or not.
        boxes: :func:`medseg.lesions.label_boxes` of ``mask`` up to the highest label, if already found.

    Returns:
        ``path``.
    """
    highest = max(label.value for label in labels)
    if boxes is None or len(boxes) < highest:
        boxes = label_boxes(mask, highest)
    segmentation = {
        "voxels": mask,
        "ijkToLPS": lps_affine(affine),
        "containedRepresentationNames": ["Binary labelmap"],
        "segments": [_segment(label, boxes[label.value - 1]) for label in labels if label.value],
    }
    with atomic_file(path) as partial:
        slicerio.write_segmentation(str(partial), segmentation, compression_level=GZIP_LEVEL)
    return Path(path)
