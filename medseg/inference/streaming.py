"""Sliding windows whose blended output becomes labels piece by piece, never held whole.

MONAI's ``sliding_window_inference`` stitches the windows into one ``(B, C, x, y, z)`` float32
output: for the model zoo's whole-body CT bundle (105 classes at 1.5 mm) over a 512 x 512 x 300 CT
that is 9 GB, and the bundle's ``Activationsd`` then makes a second one before ``AsDiscreted`` keeps
one channel. A bundle that discretises before inverting (its labels are then taken back to the scan
by nearest neighbour) needs only those labels. Its ``buffer_steps`` mode buffers windows but still
writes the full output, so MONAI has no way to skip it; hence :class:`DiscretisingInferer`.

The windows' edges cut the grid into cells, each covered by a fixed set of windows. A cell's blend
is final once the last of its windows has run; it is then divided by its weights, turned into
labels by the bundle's own steps and dropped. Only the cells that some window run so far and some
window still to run both cover are held: a band about one window overlap deep across the grid.
The windows, their batches, their order and MONAI's Gaussian importance map are those of
``sliding_window_inference``, and each voxel adds up its windows in the same order, so the blend
of each voxel is MONAI's, bit for bit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.data.utils import compute_importance_map, dense_patch_slices, get_valid_patch_size
from monai.inferers import Inferer, SlidingWindowInferer
from monai.inferers.utils import _get_scan_interval  # MONAI's own window stride, so the windows are its windows
from monai.utils import convert_to_dst_type, ensure_tuple_rep, fall_back_tuple

Decide = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
Box = tuple[slice, ...]


def _padding(spatial: Sequence[int], roi: Sequence[int]) -> list[int]:
    """``F.pad`` amounts (last axis first) that centre a volume smaller than the window in it, as MONAI does."""
    amounts = []
    for size, window in zip(reversed(spatial), reversed(roi), strict=True):
        extra = max(window - size, 0)
        amounts.extend([extra // 2, extra - extra // 2])
    return amounts


class _Cells:
    """The grid cut at every window edge: which cells each window covers, and how many windows cover each cell.

    Args:
        windows: the windows, one ``slice`` per spatial axis each.
    """

    def __init__(self, windows: Sequence[Box]) -> None:
        axes = range(len(windows[0]))
        self.edges = [sorted({end for box in windows for end in (box[a].start, box[a].stop)}) for a in axes]
        self.left = np.zeros([len(edges) - 1 for edges in self.edges], int)
        for window in windows:
            self.left[self.indices(window)] += 1

    def indices(self, window: Box) -> Box:
        """Index box, in cells, of the cells ``window`` covers."""
        return tuple(
            slice(edges.index(part.start), edges.index(part.stop))
            for edges, part in zip(self.edges, window, strict=True)
        )

    def of(self, window: Box) -> list[tuple[int, ...]]:
        """The cells ``window`` covers, in C order (so every voxel meets its windows in MONAI's order)."""
        return list(itertools.product(*(range(part.start, part.stop) for part in self.indices(window))))

    def box(self, cell: tuple[int, ...]) -> Box:
        """Voxel box of ``cell``."""
        return tuple(slice(edges[i], edges[i + 1]) for edges, i in zip(self.edges, cell, strict=True))


def _add(totals: dict[tuple[int, ...], torch.Tensor], cell: tuple[int, ...], part: torch.Tensor) -> None:
    """Add ``part`` to the running total of ``cell`` (its first part starts it, as MONAI adds to zeros)."""
    totals[cell] = totals[cell].add_(part) if cell in totals else part.clone()


def discretised_windows(
    inputs: torch.Tensor,
    predict: Callable[[torch.Tensor], torch.Tensor],
    windows: SlidingWindowInferer,
    decide: Decide,
) -> torch.Tensor:
    """Labels of one volume: ``decide`` applied to MONAI's sliding-window blend, one finished cell at a time.

    Args:
        inputs: ``(1, C_in, *spatial)`` volume.
        predict: the network: ``(N, C_in, *roi)`` windows to ``(N, C_out, *roi)`` logits.
        windows: MONAI's inferer whose ``roi_size``, ``sw_batch_size``, ``overlap``, ``mode``,
            ``sigma_scale``, ``padding_mode``, ``cval``, ``sw_device`` and ``device`` are used.
        decide: the bundle's steps from ``{"pred": (C_out, ...)}`` logits to ``{"pred": (1, ...)}`` labels.

    Returns:
        ``(1, 1, *spatial)`` float32 labels on ``windows.device`` (default: the input's device).
    """
    spatial = inputs.shape[2:]
    roi = fall_back_tuple(windows.roi_size, spatial)
    padding = _padding(spatial, roi)
    padded = F.pad(inputs, padding, mode=windows.padding_mode, value=windows.cval) if any(padding) else inputs
    size = padded.shape[2:]
    boxes = dense_patch_slices(
        size, roi, _get_scan_interval(size, roi, len(size), ensure_tuple_rep(windows.overlap, len(size)))
    )
    device = windows.device or inputs.device
    sw_device = windows.sw_device or inputs.device
    weight = compute_importance_map(
        get_valid_patch_size(size, roi),
        mode=windows.mode,
        sigma_scale=windows.sigma_scale,
        device=sw_device,
        dtype=inputs.dtype,
    )
    cells = _Cells(boxes)
    sums: dict[tuple[int, ...], torch.Tensor] = {}
    weights: dict[tuple[int, ...], torch.Tensor] = {}
    labels = torch.zeros((1, 1, *size), dtype=torch.float32, device=device)
    for first in range(0, len(boxes), windows.sw_batch_size):
        batch = boxes[first : first + windows.sw_batch_size]
        logits = predict(torch.cat([padded[(slice(None), slice(None), *box)] for box in batch]).to(sw_device))
        logits.mul_(weight[None, None])  # in place, as MONAI weighs its windows: one window's logits fewer held
        for box, window in zip(batch, logits, strict=True):
            for cell in cells.of(box):
                cell_box = cells.box(cell)
                inner = tuple(slice(c.start - w.start, c.stop - w.start) for c, w in zip(cell_box, box, strict=True))
                _add(sums, cell, window[(slice(None), *inner)].to(device))
                _add(weights, cell, weight[inner][None].to(device))
                cells.left[cell] -= 1
                if cells.left[cell] == 0:
                    blend = sums.pop(cell).div_(weights.pop(cell))
                    where: tuple[int | slice, ...] = (0, slice(None), *cell_box)
                    labels[where] = torch.as_tensor(decide({"pred": blend})["pred"]).float()
    crop = tuple(
        slice(padding[2 * a], padding[2 * a] + s) for a, s in zip(reversed(range(len(spatial))), spatial, strict=True)
    )
    return labels[(slice(None), slice(None), *crop)]


class DiscretisingInferer(Inferer):
    """MONAI's sliding windows, discretised by the bundle's own steps as they are stitched (see the module).

    Args:
        windows: the bundle's ``SlidingWindowInferer``: its windows and blending are kept.
        decide: the bundle's postprocessing steps before ``Invertd``, which make ``(1, ...)`` labels
            of ``(C, ...)`` logits (``Activationsd`` then ``AsDiscreted``, in the whole-body CT bundle).
    """

    def __init__(self, windows: SlidingWindowInferer, decide: Decide) -> None:
        super().__init__()
        self.windows, self.decide = windows, decide

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> Any:
        """Labels ``(B, 1, *spatial)`` of ``inputs`` ``(B, C_in, *spatial)``, with the input's metadata."""

        def predict(window: torch.Tensor) -> torch.Tensor:
            return network(window, *args, **kwargs)

        plain = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        labels = torch.cat([discretised_windows(item[None], predict, self.windows, self.decide) for item in plain])
        if not isinstance(inputs, MetaTensor):
            return labels
        like = MetaTensor([]).copy_meta_from(inputs, copy_attr=False)  # what sliding_window_inference returns
        return convert_to_dst_type(labels, like, device=labels.device)[0]
