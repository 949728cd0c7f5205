"""A run's one scan, read in a thread while the process is still starting (importing torch and MONAI).

A ``medseg infer`` process spends its first seconds importing, on one core; the other core is idle.
Meanwhile a run's one scan is decompressed (ISA-L) and its voxels laid out as the fast path's reader hands
them to MONAI (C order, float32): both let go of the GIL, so the imports hardly slow down. Then:

- the reader (:class:`medseg.io.readers.FastNibabelReader`) takes the laid-out voxels
  (:func:`take_voxels`) instead of reading the file;
- the case's outputs take the stored voxels (:func:`take_image`) instead of reading the file again.

Only a file that is unchanged since (same size and modification time) is taken; anything else is read as
usual, and so is everything when the read ahead failed (the reader then reports the problem as always).
What is not taken costs its memory until :func:`discard`. The read ahead says nothing: what nibabel logs
about the header of a file it reads is dropped (a bad file gets its one line from medseg's checks).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.inference.manifest import fingerprint

if TYPE_CHECKING:  # imported in the reading thread: nibabel and numpy are part of what start-up waits for
    import nibabel as nib
    import numpy as np
    import numpy.typing as npt

DTYPE = "float32"  # what the fast path's reader casts to unless the bundle's LoadImaged asks for another type
THREAD = "medseg-read-ahead"
NIBABEL_LOGGER = "nibabel.global"  # where nibabel reports the problems of a header it reads (nibabel.imageglobals)


class _NotFromTheReadAhead(logging.Filter):
    """Drops the log records made in the read ahead's thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD


@dataclass
class _Ahead:
    """The scan read ahead: its file and the file's stamp when it was read; the read's image and voxels."""

    path: Path
    stamp: str  # the file's size and modification time when it was read (the manifest's fingerprint)
    keep_image: bool
    done: threading.Event = field(default_factory=threading.Event)
    image: nib.Nifti1Image | None = None
    voxels: np.ndarray | None = None


_lock = threading.Lock()
_ahead: _Ahead | None = None


def _read(ahead: _Ahead) -> None:
    try:
        import numpy as np

        from medseg.io.fast_nifti import c_order, load_nifti

        ahead.image = load_nifti(ahead.path)
        ahead.voxels = c_order(np.asanyarray(ahead.image.dataobj), DTYPE)
    except Exception:  # any failure leaves the file to the usual reader, which reports it
        ahead.image = ahead.voxels = None
    finally:
        ahead.done.set()


def start(path: Path, *, keep_image: bool) -> None:
    """Start reading ``path`` (a NIfTI file) in a daemon thread; anything else is left alone.

    Args:
        path: the run's one scan.
        keep_image: keep the stored voxels for the case's outputs once the reader has its copy.
    """
    global _ahead
    if not (path.name.endswith((".nii", ".nii.gz")) and path.is_file()):
        return
    ahead = _Ahead(path.resolve(), fingerprint(path), keep_image)
    with _lock:
        _ahead = ahead
    nibabel = logging.getLogger(NIBABEL_LOGGER)
    if not any(isinstance(f, _NotFromTheReadAhead) for f in nibabel.filters):
        nibabel.addFilter(_NotFromTheReadAhead())
    threading.Thread(target=_read, args=(ahead,), name=THREAD, daemon=True).start()


def _current(path: str | os.PathLike[str]) -> _Ahead | None:
    """The read ahead of ``path``, once read, if it succeeded and the file is unchanged since; else None.

    Called with ``_lock`` held.
    """
    ahead = _ahead
    if ahead is None or Path(path).resolve() != ahead.path:
        return None
    ahead.done.wait()
    if ahead.image is None or fingerprint(ahead.path) != ahead.stamp:  # failed, or changed or gone since
        discard()
        return None
    return ahead


def take_voxels(path: str | os.PathLike[str], dtype: npt.DTypeLike | None) -> tuple[nib.Nifti1Image, np.ndarray] | None:
    """The image read ahead from ``path`` and its voxels ``(X, Y, Z[, C])`` in C order, once; None if not read ahead.

    Args:
        path: the file the reader was asked for.
        dtype: the type the reader casts to; the voxels were laid out as float32 only.
    """
    import numpy as np

    with _lock:
        ahead = _current(path)
        if ahead is None or ahead.voxels is None or dtype is None or np.dtype(dtype) != np.dtype(DTYPE):
            return None
        assert ahead.image is not None  # set with the voxels
        taken = ahead.image, ahead.voxels
        ahead.voxels = None  # handed over: only the stored voxels may stay here, for the outputs
        if not ahead.keep_image:
            discard()
    return taken


def take_image(path: str | os.PathLike[str]) -> nib.Nifti1Image | None:
    """The image read ahead from ``path`` (its stored voxels in memory), once; None if not read ahead."""
    with _lock:
        ahead = _current(path)
        if ahead is None:
            return None
        discard()
    return ahead.image


def forget(path: str | os.PathLike[str]) -> None:
    """Forget the read ahead if it is of ``path`` (a scan that is done, whether its outputs took it or not)."""
    global _ahead
    with _lock:
        if _ahead is not None and Path(path).resolve() == _ahead.path:
            _ahead = None


def discard() -> None:
    """Forget the read ahead (its memory goes once the thread and the takers are done with it)."""
    global _ahead
    _ahead = None
