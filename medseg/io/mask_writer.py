"""The mask writer that ``medseg infer`` puts at the end of a bundle's postprocessing.

MONAI's ``SaveImaged`` writes the affine it carried through the inverse transforms (float round
trips) and leaves the NIfTI qform unset. This writer instead takes the grid from the source file
itself, so the mask has exactly the scan's shape and affine, with qform = sform, and it writes
atomically. It checks that the prediction really came back to the source grid.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medseg.errors import MedsegError
from medseg.io.fast_nifti import read_nifti
from medseg.io.nifti import write_nifti
from medseg.io.paths import mask_path

# How far the affine carried through the inverse transforms may be from the source's (mm).
AFFINE_TOLERANCE_MM = 1e-3


class SaveMaskd(MapTransform):
    """Write a label map as a uint8 NIfTI on its source scan's grid.

    Args:
        keys: key of the prediction, a ``(1, X, Y, Z)`` label MetaTensor on the source grid (after
            ``Invertd`` and ``AsDiscreted(argmax=True)``); float values, which a bundle that inverts
            its labels with linear interpolation gives, are rounded to the nearest label.
        output_dir: folder for the masks.
        source_key: key whose metadata names the source file (``filename_or_obj``).
    """

    def __init__(self, keys: KeysCollection, output_dir: str | Path, source_key: str = "image") -> None:
        super().__init__(keys)
        self.output_dir = Path(output_dir)
        self.source_key = source_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Write each key's mask and return the data unchanged."""
        result = dict(data)
        for key in self.key_iterator(result):
            pred = result[key]
            source = Path(pred.meta["filename_or_obj"])
            self.write(np.asarray(pred.detach().cpu())[0], source, np.asarray(pred.affine))
        return result

    def write(self, mask: np.ndarray, source: Path, carried_affine: np.ndarray | None = None) -> Path:
        """Write ``mask`` ``(X, Y, Z)`` for the scan at ``source``; returns the mask's path."""
        header = read_nifti(source)
        shape = tuple(header.shape[:3])
        if mask.shape != shape:
            raise MedsegError(f"prediction shape {mask.shape} does not match the scan's {shape}", source)
        if carried_affine is not None and not np.allclose(carried_affine, header.affine, atol=AFFINE_TOLERANCE_MM):
            raise MedsegError("prediction did not come back to the scan's grid (affine differs)", source)
        if np.issubdtype(mask.dtype, np.floating):  # labels a bundle interpolated linearly (prostate's Invertd)
            mask = np.rint(mask)
        if mask.min() < 0 or mask.max() > 255:
            raise MedsegError("label values must fit in uint8 (0-255)", source)
        return write_nifti(mask_path(self.output_dir, source), mask.astype(np.uint8, copy=False), header.affine)
