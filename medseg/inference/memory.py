"""Will a scan fit the memory budget of ``medseg infer``? Answered from its header, before any work."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class StageBytes:
    """Bytes each stage of ``medseg infer`` holds at its peak for one scan, estimated from its header.

    With ``N`` the scan's voxels, ``C`` its channels, ``b`` the bytes of a voxel as the outputs hold it
    (:attr:`~medseg.data.validate.ScanInfo.voxel_bytes`: 2 for a CT's int16, else 4), ``M`` the voxels of
    the network's grid (the scan resampled to the bundle's spacing) and ``K`` the output channels held
    whole on that grid (the bundle's classes, background included, or 1 where the windows become labels
    as they are stitched: :func:`~medseg.inference.options.held_channels`)::

        reader  R = 4·C·(N + max(N, M))  loading (the float32 scan beside its stored voxels, b ≤ 4) and
                                         reorienting (two float32 copies of the scan), or resampling
                                         (the scan and its copy on the network's grid)
        queued  Q = 4·M·(C + K)          one scan between stages: its preprocessed image, the network's output
        writer  W = 8·M·K + (b + 2)·N    resampling back (the probabilities and their copy in the foreground's
                                         box, the uint8 mask), then the outputs (the scan read again, the mask,
                                         the viewer's block means)

    A run of one NIfTI scan reads it while the process starts (:mod:`medseg.io.read_ahead`) and keeps its
    stored voxels for its outputs: the ``b·N`` of ``W``, held from the reader on instead of read again.

    On ten 512 x 512 x 200 CTs at 0.75 x 0.75 x 1.5 mm (``ct_liver_tumour_3d``: R 419 MB, Q 126 MB,
    W 398 MB) a pipelined run rose 1.18 GB above the process with its network built, against the 1.45 GB
    of :meth:`pipeline` with the default prefetch of 2; one such scan alone rose 0.45 GB, against 0.52 GB of
    :attr:`single` (``benchmarks/RESULTS.md``; ``tests/test_memory_bound.py`` holds a smaller cohort to
    it). The network's own activations are not counted: the fast inferer splits volumes over a voxel
    budget into windows, so they are bounded whatever the scan's size.
    """

    reader: int
    queued: int
    writer: int

    @property
    def single(self) -> int:
        """One scan alone: the reader's peak, or the writer's while the scan's network output is kept."""
        return max(self.reader, self.queued + self.writer)

    def pipeline(self, prefetch: int) -> int:
        """A pipelined run (:mod:`medseg.inference.pipeline`) whose scans are all this large.

        ::

            bytes = R + W + (2·P + 1)·Q

        The three stages each work on a scan at once, the network's held at ``Q``; up to ``P``
        (``prefetch``) more wait for the network and ``P`` for the writer. Each stage is a thread with
        its own heap (glibc's arenas), so one stage's freed working copies do not serve another's:
        their peaks add up.
        """
        return self.reader + self.writer + (2 * prefetch + 1) * self.queued


def stage_bytes(scan: ScanInfo, target_spacing: Sequence[float], classes: int) -> StageBytes:
    """:class:`StageBytes` of ``scan`` on the network grid of ``target_spacing``, ``classes`` channels held whole.

    Args:
        scan: the scan's header.
        target_spacing: the network grid's spacing (mm); 0 or less keeps the scan's along that axis.
        classes: ``K``, the output channels held whole on that grid.
    """
    voxels, channels = math.prod(scan.shape), scan.channels
    resampled = network_voxels(scan.shape, grid_of(scan.affine)[0].tolist(), target_spacing)
    return StageBytes(
        reader=FLOAT_BYTES * channels * (voxels + max(voxels, resampled)),
        queued=FLOAT_BYTES * resampled * (channels + classes),
        writer=2 * FLOAT_BYTES * resampled * classes + (scan.voxel_bytes + 2) * voxels,
    )


def check_memory(scan: ScanInfo, bundle: Bundle, budget: int, channels: int, prefetch: int = 0) -> None:
    """Refuse a scan that would need more than ``budget`` bytes, saying how much it needs.

    Args:
        scan: the scan's header.
        bundle: the bundle that segments it.
        budget: bytes allowed.
        channels: the network output's channels the run holds whole (``K`` of :class:`StageBytes`).
        prefetch: 0 for one scan alone (:attr:`StageBytes.single`); for a pipelined run, the scans that may
            wait in each queue (:meth:`StageBytes.pipeline`, as if every scan were this large).

    Raises:
        MedsegError: the estimate exceeds ``budget``.
    """
    target = np.broadcast_to(bundle.parsed("inference").network_spacing() or [0, 0, 0], 3).tolist()
    stages = stage_bytes(scan, target, channels)
    needed = stages.pipeline(prefetch) if prefetch else stages.single
    if needed > budget:
        hint = f"`max_memory`, or `prefetch` below {prefetch}" if prefetch else "`max_memory`"
        raise MedsegError(
            f"needs about {readable_size(needed)} of memory to segment, more than the {readable_size(budget)} allowed "
            f"({hint})",
            scan.path,
        )
