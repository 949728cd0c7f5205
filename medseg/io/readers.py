"""A MONAI image reader that loads NIfTI through :mod:`medseg.io.fast_nifti` (ISA-L gzip, a blocked reorder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from monai.data import NibabelReader
from monai.data.utils import correct_nifti_header_if_necessary

from medseg.io.fast_nifti import c_order, load_nifti


class FastNibabelReader(NibabelReader):
    """MONAI's ``NibabelReader`` with :func:`load_nifti` as its loader, handing MONAI C-ordered voxels.

    MONAI's reader calls ``nibabel.load`` inside ``read()`` with no hook for another loader, so
    ``read()`` is re-implemented here; the voxels are reordered by :func:`c_order` (the same values,
    in the order ``LoadImage`` would otherwise make them, slowly); everything else is the parent's.
    """

    def read(self, data, **kwargs):
        """Load one file, or several stacked as channels, as nibabel images."""
        names = [data] if isinstance(data, str | Path) else list(data)
        self.filenames = names
        images = [correct_nifti_header_if_necessary(load_nifti(name)) for name in names]
        return images if len(images) > 1 else images[0]

    def _get_array_data(self, img, filename):
        """The voxels as a C-contiguous array of the file's (scaled) dtype."""
        return c_order(np.asanyarray(img.dataobj))
