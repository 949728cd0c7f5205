"""A MONAI image reader that loads NIfTI through :mod:`medseg.io.fast_nifti` (ISA-L gzip, a blocked reorder)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
from monai.config import PathLike
from monai.data import NibabelReader
from monai.data.utils import correct_nifti_header_if_necessary

from medseg.io import read_ahead
from medseg.io.fast_nifti import c_order, load_nifti


class FastNibabelReader(NibabelReader):
    """MONAI's ``NibabelReader`` with :func:`load_nifti` as its loader, handing MONAI C-ordered voxels.

    MONAI's reader calls ``nibabel.load`` inside ``read()`` with no hook for another loader, so
    ``read()`` is re-implemented here; the voxels are reordered by :func:`c_order` (the same values,
    in the order ``LoadImage`` would otherwise make them, slowly); everything else is the parent's.
    The parent's ``to_gpu`` (kvikio reads straight to the GPU) is not offered: this reader decompresses
    on the CPU.

    Args:
        *args: as for ``NibabelReader``.
        dtype: the type ``LoadImage`` will cast the voxels to (its own ``dtype``), cast to here as the
            voxels are reordered; then ``LoadImage`` has nothing left to cast, and a CT's int16 voxels
            never exist twice (stored and reordered) beside their float32 copy. ``None`` keeps the
            file's type.
        **kwargs: as for ``NibabelReader``, except ``to_gpu``.
    """

    def __init__(self, *args: Any, dtype: npt.DTypeLike | None = None, **kwargs: Any) -> None:
        if kwargs.get("to_gpu"):
            raise ValueError("FastNibabelReader reads on the CPU; use MONAI's NibabelReader for to_gpu=True")
        super().__init__(*args, **kwargs)
        self.dtype = dtype
        self._laid_out: tuple[nib.Nifti1Image, np.ndarray] | None = None  # read ahead (:mod:`medseg.io.read_ahead`)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> nib.Nifti1Image | list[nib.Nifti1Image]:
        """Load one file, or several stacked as channels, as nibabel images.

        Args:
            data: a file, or several files of the same grid.
            **kwargs: ignored (nibabel's loading options do not apply to :func:`load_nifti`).
        """
        names = [data] if isinstance(data, str | os.PathLike) else list(data)
        self.filenames = names
        self._laid_out = None
        images = []
        for name in names:
            ahead = read_ahead.take_voxels(name, self.dtype) if len(names) == 1 else None
            image = correct_nifti_header_if_necessary(load_nifti(name) if ahead is None else ahead[0])
            if ahead is not None and image is ahead[0]:  # read while the process started, voxels laid out
                self._laid_out = ahead
            images.append(image)
        return images if len(images) > 1 else images[0]

    def _get_array_data(self, img: nib.Nifti1Image, filename: PathLike) -> np.ndarray:
        """The voxels ``(X, Y, Z[, C])`` as a C-contiguous array of ``dtype`` (by default the file's, scaled)."""
        ahead, self._laid_out = self._laid_out, None
        laid_out = ahead[1] if ahead is not None and ahead[0] is img else None
        return laid_out if laid_out is not None else c_order(np.asanyarray(img.dataobj), self.dtype)
