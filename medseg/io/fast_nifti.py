"""NIfTI-1 reading and writing through ISA-L's gzip (``isal``), in one array copy.

``nibabel`` decompresses ``.nii.gz`` with Python's ``gzip`` in small chunks, which costs about
twice the time ISA-L takes, and writes at zlib speed. Here a scan is decompressed by ISA-L straight
into its final array, and masks are compressed by ISA-L (level 1). Everything else (header parsing,
affines, scaling rules) stays nibabel's. Without ``isal`` installed, Python's ``gzip`` is used.
NIfTI-2 and other formats fall back to ``nibabel.load``.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from types import ModuleType

import nibabel as nib
import numpy as np
import numpy.typing as npt

from medseg.errors import MedsegError

fast_gzip: ModuleType
try:
    from isal import igzip as fast_gzip
except ImportError:  # pragma: no cover - isal is a dependency; keep working without it
    fast_gzip = gzip

CHUNK = 64 << 20  # bytes decompressed per read
SLAB = 16  # slices along the third axis per block when reordering voxels into C order
NIFTI1_SIZES = ((348).to_bytes(4, "little"), (348).to_bytes(4, "big"))  # sizeof_hdr, either byte order


def _open(path: Path) -> io.BufferedIOBase:
    return fast_gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def read_nifti(path: str | Path) -> nib.Nifti1Image:
    """``nibabel.load`` of a NIfTI-1 or NIfTI-2 file (a ``Nifti1Image`` either way), voxels read on demand.

    Raises:
        MedsegError: the file holds another kind of image.
    """
    image = nib.load(path)
    if not isinstance(image, nib.Nifti1Image):
        raise MedsegError(f"is a {type(image).__name__}, not a NIfTI image", path)
    return image


def load_nifti(path: str | os.PathLike[str]) -> nib.Nifti1Image:
    """Load a NIfTI-1 file (``.nii`` or ``.nii.gz``) with its voxels in memory, scaled as nibabel scales them."""
    path = Path(path)
    with _open(path) as handle:
        if handle.read(4) not in NIFTI1_SIZES:
            return read_nifti(path)  # NIfTI-2, or not NIfTI at all: nibabel decides
        handle.seek(0)
        header = nib.Nifti1Header.from_fileobj(handle, check=False)
        handle.seek(int(header.get_data_offset()))
        data = np.empty(header.get_data_shape(), dtype=header.get_data_dtype(), order="F")
        flat = data.reshape(-1, order="A").view(np.uint8)
        view = memoryview(flat)  # type: ignore[arg-type]  # an ndarray is a buffer; numpy's stubs say so for 3.12+ only
        filled = 0
        while filled < len(view):
            count = handle.readinto(view[filled : filled + CHUNK])
            if not count:
                raise EOFError(f"file ends after {filled} of {len(view)} voxel bytes")
            filled += count
    slope, intercept = header.get_slope_inter()
    if slope is not None and (slope != 1 or intercept):
        data = data * np.float32(slope) + np.float32(intercept or 0)
    image = nib.Nifti1Image(data, None, header)
    image.set_sform(header.get_sform(), int(header["sform_code"]))
    image.set_qform(header.get_qform(), int(header["qform_code"]))
    return image


def save_nifti(image: nib.Nifti1Image, path: str | Path) -> None:
    """Write a NIfTI image; ``.nii.gz`` is compressed by ISA-L at level 1 (fast, standard gzip)."""
    path = Path(path)
    if not path.name.endswith(".gz"):
        nib.save(image, path)
        return
    path.write_bytes(fast_gzip.compress(image.to_bytes(), compresslevel=1))


def c_order(array: np.ndarray, dtype: npt.DTypeLike | None = None) -> np.ndarray:
    """A C-contiguous copy of ``array`` (NIfTI voxels are stored in Fortran order), copied in slabs.

    MONAI turns every image into a C-contiguous array; numpy's ``ascontiguousarray`` of a Fortran
    array walks the destination with a stride of a whole slice in the source, about 1 s for a
    512 x 512 x 200 scan on this project's CPU. Copying blocks of ``SLAB`` slices along the third
    axis (the last of a 2D image) keeps both sides in cache and takes a fifth of that; the channels
    of a 4D ``(X, Y, Z, C)`` image go along with each block.

    Args:
        array: voxels of any shape and memory order.
        dtype: the copy's type (cast block by block, so no whole-size copy of the old type is made);
            by default ``array``'s.

    Returns:
        The same values, C-contiguous (``array`` itself if it already is, of that type).
    """
    if array.flags.c_contiguous or array.ndim < 2:
        return np.ascontiguousarray(array, dtype)
    result = np.empty(array.shape, array.dtype if dtype is None else dtype)
    axis = min(2, array.ndim - 1)
    for start in range(0, array.shape[axis], SLAB):
        block = (slice(None),) * axis + (slice(start, start + SLAB),)
        result[block] = array[block]
    return result
