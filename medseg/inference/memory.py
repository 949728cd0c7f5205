"""Will a scan fit the memory budget of ``medseg infer``? Answered from its header, before any work."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medseg.bundles import Bundle
from medseg.data.validate import ScanInfo, grid_of
from medseg.errors import MedsegError
from medseg.memory import readable_size

FLOAT_BYTES = 4  # MONAI loads, resamples and predicts in float32


def network_voxels(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> int:
    """Voxels of the scan resampled to the network's spacing (a target of 0 or less keeps the scan's)."""
    sizes = (
        math.ceil(size * have / want) if want > 0 else size
        for size, have, want in zip(shape, spacing, target, strict=True)
    )
    return math.prod(sizes)


def inference_bytes(scan: ScanInfo, target_spacing: Sequence[float], classes: int) -> int:
    """Peak memory (bytes) that segmenting ``scan`` takes, estimated from its header.

    With ``N`` the scan's voxels, ``C`` its channels, ``M`` the voxels of the network's grid (the scan
    resampled to the bundle's spacing) and ``K`` the output channels held whole on that grid (the
    bundle's classes, background included, or 1 where the windows become labels as they are stitched:
    :func:`~medseg.inference.options.held_channels`)::

        bytes = 4·N·C      the scan, loaded as float32
              + 4·M·C      the scan resampled to the network's grid
              + 4·M·K      the probability of each class on that grid (or the labels)
              + N          the uint8 mask on the scan's grid

    The network's own activations are not counted: the fast inferer splits volumes over a voxel
    budget into windows, so they are bounded whatever the scan's size.
    """
    voxels = math.prod(scan.shape)
    resampled = network_voxels(scan.shape, grid_of(scan.affine)[0].tolist(), target_spacing)
    return FLOAT_BYTES * (voxels * scan.channels + resampled * (scan.channels + classes)) + voxels


def queued_bytes(scan: ScanInfo, target_spacing: Sequence[float], classes: int) -> int:
    """Bytes one scan holds while it waits between the pipeline's stages: ``4·M·(C + K)``.

    A scan waiting for the network holds its preprocessed image (``4·M·C``); one waiting for the
    writer holds that image's metadata and the network's output (``4·M·K``): the larger bound serves both.
    """
    resampled = network_voxels(scan.shape, grid_of(scan.affine)[0].tolist(), target_spacing)
    return FLOAT_BYTES * resampled * (scan.channels + classes)


def pipeline_bytes(single: int, queued: int, prefetch: int) -> int:
    """Peak memory (bytes) of a pipelined run (:mod:`medseg.inference.pipeline`) whose largest scan is given.

    With ``S`` the single-scan peak (:func:`inference_bytes`), ``Q`` one scan's bytes between stages
    (:func:`queued_bytes`) and ``P`` the prefetch (scans allowed to wait in each of the two queues)::

        bytes = S + (2·P + 2)·Q

    One scan is in the single-scan peak; up to ``P`` wait for the network and ``P`` for the writer; and
    while one stage holds the scan of the peak, the other two stages each hold one more. Those two are
    counted at their bytes between stages, not at their stages' working copies (the reader's
    full-resolution scan, the writer's outputs), so a run measures above this: 2.4 GB for ten
    512 x 512 x 200 CTs against 1.1 GB here plus the process's own 0.6 GB (benchmarks/RESULTS.md).
    """
    return single + (2 * prefetch + 2) * queued


def check_memory(scan: ScanInfo, bundle: Bundle, budget: int, channels: int, prefetch: int = 0) -> None:
    """Refuse a scan that would need more than ``budget`` bytes, saying how much it needs.

    Args:
        scan: the scan's header.
        bundle: the bundle that segments it.
        budget: bytes allowed.
        channels: the network output's channels the run holds whole (see :func:`inference_bytes`).
        prefetch: 0 for one scan alone; for a pipelined run, the scans that may wait in each queue
            (:func:`pipeline_bytes`, as if every scan were this large).

    Raises:
        MedsegError: the estimate exceeds ``budget``.
    """
    target = np.broadcast_to(bundle.parsed("inference").network_spacing() or [0, 0, 0], 3).tolist()
    needed = inference_bytes(scan, target, channels)
    if prefetch:
        needed = pipeline_bytes(needed, queued_bytes(scan, target, channels), prefetch)
    if needed > budget:
        hint = f"`max_memory`, or `prefetch` below {prefetch}" if prefetch else "`max_memory`"
        raise MedsegError(
            f"needs about {readable_size(needed)} of memory to segment, more than the {readable_size(budget)} allowed "
            f"({hint})",
            scan.path,
        )
