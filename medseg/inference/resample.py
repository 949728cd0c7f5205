"""Bring network-grid probabilities back to the source scan's grid, in bounded memory.

The stock recipe inverts every preprocessing transform on the full probability volume (``Invertd``
on C x 512 x 512 x 600 float32 values is gigabytes) and only then takes the argmax. Here the
source grid is mapped onto the network grid by one affine (orientation, spacing and crop all in
it), probabilities are interpolated only inside the box that can hold foreground, slab by slab,
and each slab is turned into labels at once by the bundle's own discretisation transforms. The
result is the same labels at a fraction of the time and memory.

Exactness of the box: a source voxel's interpolated probabilities are a convex combination of its
network-grid neighbours. If every neighbour is background, so is the combination for argmax and
threshold rules alike; so the box of foreground network voxels, grown by one voxel, holds every
source voxel that can be foreground.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from medseg.errors import MedsegError
from medseg.io.fast_nifti import read_nifti

Decide = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def _labels(decide: Decide, probabilities: torch.Tensor) -> torch.Tensor:
    """Apply the bundle's discretisation to ``(C, ...)`` probabilities; returns ``(...)`` int16 labels.

    The result is a plain tensor: MONAI returns MetaTensors, whose per-operation metadata handling
    would slow every later step on these large arrays. int16 holds every uint8 mask value and the
    negative markers of :func:`cell_labels`, in a quarter of int64's memory.
    """
    labels = decide({"pred": probabilities})["pred"]
    if isinstance(labels, MetaTensor):
        labels = labels.as_tensor()
    return torch.as_tensor(labels)[0].round().to(torch.int16)


def all_finite(values: torch.Tensor) -> bool:
    """Whether no value of ``values`` is NaN or infinite.

    One reduction (the smallest and largest value, which NaN and infinities always reach) instead of
    ``isfinite(values).all()``, which makes a boolean volume first: 0.014 s of CPU against 0.37 s on
    3 x 300 x 300 x 200 probabilities.
    """
    if not values.is_floating_point() or values.numel() == 0:  # integer labels are always finite
        return True
    lowest, highest = torch.aminmax(values)
    return bool(torch.isfinite(lowest) & torch.isfinite(highest))


def foreground_box(labels: torch.Tensor, margin: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive index box ``(lo, hi)`` of non-zero ``labels`` ``(x, y, z)``, grown by ``margin``; None if empty."""
    nonzero = torch.nonzero(labels)
    if len(nonzero) == 0:
        return None
    lo = nonzero.min(0).values.cpu().numpy() - margin
    hi = nonzero.max(0).values.cpu().numpy() + margin
    return np.maximum(lo, 0), np.minimum(hi, np.asarray(labels.shape) - 1)


def _source_box(box: tuple[np.ndarray, np.ndarray], source_from_network: np.ndarray, shape: tuple[int, ...]):
    """Source-grid index box covering a network-grid box (its 8 corners mapped, rounded outwards)."""
    ends = np.stack(box)  # (2, 3): row 0 the low corner, row 1 the high corner
    corners = np.array([[ends[bit, axis] for axis, bit in enumerate(bits)] for bits in np.ndindex(2, 2, 2)], float)
    mapped = (source_from_network[:3, :3] @ corners.T).T + source_from_network[:3, 3]
    start = np.clip(np.floor(mapped.min(0)), 0, np.asarray(shape) - 1).astype(int)
    stop = np.clip(np.ceil(mapped.max(0)), 0, np.asarray(shape) - 1).astype(int)
    return start, stop


def _axis_map(transform: np.ndarray) -> list[int] | None:
    """For an axis-aligned map (each row one non-zero), the source axis feeding each network axis."""
    nonzero = np.abs(transform[:3, :3]) > 1e-6 * np.abs(transform[:3, :3]).max()
    if not (nonzero.sum(0) == 1).all() or not (nonzero.sum(1) == 1).all():
        return None
    return [int(np.flatnonzero(row)[0]) for row in nonzero]


OUTSIDE, MIXED = -1, -2


def cell_labels(labels: torch.Tensor) -> torch.Tensor:
    """The label of each grid cell (the 2 x 2 x 2 voxels from its corner) where all its corners agree.

    Args:
        labels: ``(x, y, z)`` int labels, with ``OUTSIDE`` (-1) on padding beyond the network grid.

    Returns:
        ``(x - 1, y - 1, z - 1)``: the corners' common label; 0 where every corner is outside; and
        ``MIXED`` (-2) where corners disagree or some (not all) are outside, which must be
        interpolated (zero padding scales probabilities, which can change a thresholded label).
    """
    nx, ny, nz = labels.shape
    first = labels[: nx - 1, : ny - 1, : nz - 1]
    same = torch.ones(first.shape, dtype=torch.bool, device=labels.device)
    for i, j, k in list(np.ndindex(2, 2, 2))[1:]:  # corner by corner: no stack of eight label volumes
        same &= labels[i : nx - 1 + i, j : ny - 1 + j, k : nz - 1 + k] == first
    cells = torch.where(same, first, MIXED)
    return torch.where(same & (first == OUTSIDE), 0, cells)


def _trilinear(volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Values ``(C, M)`` of ``volume`` ``(C, x, y, z)`` at ``points`` ``(M, 3)`` inside it (index units)."""
    sizes = volume.shape[1:]
    flat = volume.reshape(volume.shape[0], -1)
    base = torch.floor(points)
    fraction = points - base
    base = base.long()
    # per axis: the two neighbour indices (clamped into the volume) and their weights
    neighbours = [[(base[:, a] + o).clamp(0, sizes[a] - 1) for o in (0, 1)] for a in range(3)]
    weights = [[1 - fraction[:, a], fraction[:, a]] for a in range(3)]
    total = torch.zeros(volume.shape[0], len(points), dtype=volume.dtype, device=volume.device)
    for i, j, k in np.ndindex(2, 2, 2):
        index = (neighbours[0][i] * sizes[1] + neighbours[1][j]) * sizes[2] + neighbours[2][k]
        total += flat.index_select(1, index) * (weights[0][i] * weights[1][j] * weights[2][k])
    return total


def _separable_slabs(
    padded: torch.Tensor,
    padded_labels: torch.Tensor,
    transform: np.ndarray,
    axes: list[int],
    decide: Decide,
    start,
    stop,
    step: int,
):
    """Yield ``(k0, labels (ni, nj, nk))`` slabs for an axis-aligned map.

    A voxel whose network cell has one label takes it; only voxels in mixed cells are interpolated.
    """
    device = padded.device
    cells = cell_labels(padded_labels)
    coordinates = []  # per network axis: coordinates along it, shaped to broadcast along its source axis
    for network_axis, source_axis in enumerate(axes):
        ticks = torch.arange(start[source_axis], stop[source_axis] + 1, device=device, dtype=torch.float64)
        coords = ticks * float(transform[network_axis, source_axis]) + float(transform[network_axis, 3])
        coordinates.append((source_axis, coords.clamp(-1.0, padded.shape[network_axis + 1] - 1.0)))
    for k0 in range(start[2], stop[2] + 1, step):
        views: list[torch.Tensor] = []
        indices: list[torch.Tensor] = []
        for source_axis, coords in coordinates:
            part = coords[k0 - start[2] : k0 - start[2] + step] if source_axis == 2 else coords
            shape = [1, 1, 1]
            shape[source_axis] = -1
            views.append(part.reshape(shape))
            cell = torch.floor(part).long().clamp(0, cells.shape[len(indices)] - 1)
            indices.append(cell.reshape(shape))
        block = cells[indices[0], indices[1], indices[2]].clone()
        mixed = torch.nonzero(block == MIXED)
        if len(mixed):
            points = torch.stack([views[a].reshape(-1)[mixed[:, coordinates[a][0]]] for a in range(3)], dim=1)
            values = _trilinear(padded, points.float())
            block[mixed[:, 0], mixed[:, 1], mixed[:, 2]] = _labels(decide, values[:, :, None, None])[:, 0, 0]
        yield k0, block


def _grid_slabs(padded: torch.Tensor, transform: np.ndarray, decide: Decide, start, stop, step: int):
    """Yield ``(k0, labels (ni, nj, nk))`` slabs for any affine map, interpolating with ``grid_sample``."""
    sizes = np.asarray(padded.shape[1:], float)
    # grid_sample's normalised coordinates with align_corners=True: index 0 -> -1, size-1 -> +1
    to_grid = np.diag([*(2.0 / (sizes - 1)), 1.0])
    to_grid[:3, 3] = -1.0
    matrix = torch.as_tensor(to_grid @ transform, dtype=torch.float32, device=padded.device)
    i = torch.arange(start[0], stop[0] + 1, device=padded.device, dtype=torch.float32)
    j = torch.arange(start[1], stop[1] + 1, device=padded.device, dtype=torch.float32)
    for k0 in range(start[2], stop[2] + 1, step):
        k = torch.arange(k0, min(k0 + step, stop[2] + 1), device=padded.device, dtype=torch.float32)
        points = torch.stack(torch.meshgrid(i, j, k, indexing="ij"), dim=-1) @ matrix[:3, :3].T + matrix[:3, 3]
        grid = points.flip(-1)[None]  # grid_sample wants (z, y, x) order for a (D=x, H=y, W=z) volume
        values = F.grid_sample(padded[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        yield k0, _labels(decide, values)


def to_source_grid(
    probabilities: torch.Tensor,
    network_affine: np.ndarray,
    source_affine: np.ndarray,
    source_shape: tuple[int, int, int],
    decide: Decide,
    *,
    slab_voxels: int = 4_000_000,
) -> np.ndarray:
    """Labels on the source grid from probabilities on the network grid.

    The result is what trilinear interpolation of the probabilities (zero outside the network
    grid) followed by ``decide`` gives, as ``Invertd`` then argmax does. For axis-aligned grids
    (RAS, LPS, any axis order) only voxels in network cells whose corners disagree are
    interpolated: where all corners carry one label, every convex combination of them does too
    (for argmax, and for per-channel thresholds). Oblique grids go through ``grid_sample``.

    Args:
        probabilities: ``(C, x, y, z)`` activated network output (softmax or sigmoid).
        network_affine: ``(4, 4)`` voxel-to-world affine of ``probabilities``.
        source_affine: ``(4, 4)`` voxel-to-world affine of the source scan.
        source_shape: ``(X, Y, Z)`` of the source scan.
        decide: the bundle's transforms that turn ``{"pred": (C, ...)}`` probabilities into
            ``{"pred": (1, ...)}`` labels (argmax, or thresholds and region-to-label rules).
        slab_voxels: source voxels labelled at once; bounds the extra memory.

    Returns:
        ``(X, Y, Z)`` uint8 labels in Fortran order, the order NIfTI stores them in, so that writing
        the mask needs no reordering copy.
    """
    labels = np.zeros(source_shape, np.uint8, order="F")
    network_labels = _labels(decide, probabilities)
    box = foreground_box(network_labels)
    if box is None:
        return labels
    lo, hi = box
    inside = (slice(lo[0], hi[0] + 1), slice(lo[1], hi[1] + 1), slice(lo[2], hi[2] + 1))
    padded = F.pad(probabilities[(slice(None), *inside)].float(), [1] * 6)  # zeros: outside the network grid
    padded_labels = F.pad(network_labels[inside], [1] * 6, value=OUTSIDE)
    padded_affine = network_affine.copy()
    padded_affine[:3, 3] = network_affine[:3, :3] @ (lo - 1) + network_affine[:3, 3]
    start, stop = _source_box(box, np.linalg.inv(source_affine) @ network_affine, source_shape)
    transform = np.linalg.inv(padded_affine) @ source_affine
    extent = stop - start + 1
    step = max(1, slab_voxels // int(extent[0] * extent[1]))
    axes = _axis_map(transform)
    if axes is None:
        slabs = _grid_slabs(padded, transform, decide, start, stop, step)
    else:
        slabs = _separable_slabs(padded, padded_labels, transform, axes, decide, start, stop, step)
    for k0, block in slabs:
        block = block.cpu().numpy()
        labels[start[0] : stop[0] + 1, start[1] : stop[1] + 1, k0 : k0 + block.shape[2]] = block
    return labels


def nearest_to_source_grid(
    labels: torch.Tensor,
    network_affine: np.ndarray,
    source_affine: np.ndarray,
    source_shape: tuple[int, int, int],
    *,
    slab_voxels: int = 4_000_000,
) -> np.ndarray:
    """Labels on the source grid from labels on the network grid, by nearest neighbour.

    What ``Invertd`` with ``nearest_interp=True`` gives after ``Spacingd``'s default border padding:
    each source voxel takes the label of the nearest network voxel, positions beyond the network grid
    the label at its edge.

    Args:
        labels: ``(x, y, z)`` integer labels on the network grid.
        network_affine: ``(4, 4)`` voxel-to-world affine of ``labels``.
        source_affine: ``(4, 4)`` voxel-to-world affine of the source scan.
        source_shape: ``(X, Y, Z)`` of the source scan.
        slab_voxels: source voxels looked up at once; bounds the extra memory.

    Returns:
        ``(X, Y, Z)`` uint8 labels in Fortran order.
    """
    result = np.zeros(source_shape, np.uint8, order="F")
    transform = torch.as_tensor(np.linalg.inv(network_affine) @ source_affine, dtype=torch.float64)
    last = torch.tensor(labels.shape) - 1
    i, j = (torch.arange(size, dtype=torch.float64) for size in source_shape[:2])
    step = max(1, slab_voxels // (source_shape[0] * source_shape[1]))
    for k0 in range(0, source_shape[2], step):
        k = torch.arange(k0, min(k0 + step, source_shape[2]), dtype=torch.float64)
        points = torch.stack(torch.meshgrid(i, j, k, indexing="ij"), dim=-1) @ transform[:3, :3].T + transform[:3, 3]
        index = torch.minimum(torch.round(points).long().clamp(min=0), last)
        block = labels[index[..., 0], index[..., 1], index[..., 2]]
        result[:, :, k0 : k0 + len(k)] = block.cpu().numpy()
    return result


class ResampleToSourced(MapTransform):
    """Turn network-grid probabilities into labels on the source scan's grid (see :func:`to_source_grid`).

    Args:
        keys: key of the probabilities, a ``(C, x, y, z)`` MetaTensor whose metadata names the
            source file (``filename_or_obj``).
        decide: the bundle's discretisation transforms (everything its postprocessing does after
            ``Invertd``, except writing).
        slab_voxels: voxels interpolated at once.
        nearest: the prediction is already labels ``(1, x, y, z)``, taken by nearest neighbour
            (:func:`nearest_to_source_grid`), as the bundle's ``Invertd(nearest_interp=True)`` does.
    """

    def __init__(
        self, keys: KeysCollection, decide: Decide, slab_voxels: int = 4_000_000, nearest: bool = False
    ) -> None:
        super().__init__(keys)
        self.decide, self.slab_voxels, self.nearest = decide, slab_voxels, nearest

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Replace each key's probabilities by a ``(1, X, Y, Z)`` uint8 MetaTensor on the source grid."""
        result = dict(data)
        for key in self.key_iterator(result):
            pred = result[key]
            source = Path(pred.meta["filename_or_obj"])
            if not all_finite(pred.as_tensor()):
                raise MedsegError("the network output is not finite: the scan holds NaN or infinite values", source)
            header = read_nifti(source)
            x, y, z = header.shape[:3]
            grid = (np.asarray(pred.affine, float), header.affine, (x, y, z))
            if self.nearest:
                on_network = _labels(self.decide, pred.as_tensor())
                labels = nearest_to_source_grid(on_network, *grid, slab_voxels=self.slab_voxels)
            else:
                labels = to_source_grid(pred.as_tensor(), *grid, self.decide, slab_voxels=self.slab_voxels)
            meta = {**pred.meta, "affine": torch.as_tensor(header.affine)}
            result[key] = MetaTensor(torch.from_numpy(labels)[None], meta=meta)
        return result
