"""Inferers for the fast path: large windows within a voxel budget, and mirror test-time augmentation.

MONAI's ``SlidingWindowInferer`` runs the training patch size (e.g. 96 x 96 x 64) with 50 %
overlap, so a scan is pushed through the network about three times over and every window pays
for its border. A fully convolutional network can take much larger inputs: here the window is the
whole (cropped) volume, padded to the network's divisor, and only volumes over a voxel budget are
split, into as few windows as fit. MONAI has no inferer that sizes its window per volume, hence
this one; the windows themselves still go through ``monai.inferers.sliding_window_inference``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.inferers import Inferer, sliding_window_inference

Predictor = Callable[[torch.Tensor], torch.Tensor]


def window_size(spatial: Sequence[int], divisor: int, max_voxels: int) -> list[int]:
    """The largest window (multiples of ``divisor``) up to the volume's size that fits ``max_voxels``.

    Args:
        spatial: the volume's spatial shape.
        divisor: every window side is a multiple of this (16 for a U-Net with four stride-2 levels).
        max_voxels: voxel budget of one window.
    """
    roi = [divisor * math.ceil(size / divisor) for size in spatial]
    while math.prod(roi) > max_voxels and max(roi) > divisor:
        axis = roi.index(max(roi))
        roi[axis] = max(divisor, divisor * math.ceil(roi[axis] / 2 / divisor))
    return roi


class LargeWindowInferer(Inferer):
    """Sliding-window inference with windows as large as ``max_voxels`` allows.

    Args:
        divisor: window sides are multiples of this.
        max_voxels: voxel budget of one window (memory grows with it).
        overlap: overlap between windows, used only when a volume needs several.
        mode: blending of overlapping windows (``"gaussian"`` or ``"constant"``).
        channels_last: run the network in ``channels_last_3d`` memory format (faster 3D
            convolutions on CPU with oneDNN).
        sw_device: device the windows run on (default: the input's).
        device: device the output is stitched on (default: the input's).
    """

    def __init__(
        self,
        divisor: int = 16,
        max_voxels: int = 12_000_000,
        overlap: float = 0.25,
        mode: str = "gaussian",
        channels_last: bool = True,
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.divisor, self.max_voxels, self.overlap, self.mode = divisor, max_voxels, overlap, mode
        self.channels_last, self.sw_device, self.device = channels_last, sw_device, device

    def __call__(self, inputs: torch.Tensor, network: Predictor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Predict ``(B, C_out, *spatial)`` from ``inputs`` ``(B, C_in, *spatial)``."""
        roi = window_size(inputs.shape[2:], self.divisor, self.max_voxels)
        if self.channels_last and inputs.ndim == 5 and isinstance(network, torch.nn.Module):
            network = network.to(memory_format=torch.channels_last_3d)

        def predict(window: torch.Tensor) -> torch.Tensor:
            if self.channels_last and window.ndim == 5:
                window = window.contiguous(memory_format=torch.channels_last_3d)
            return network(window, *args, **kwargs).contiguous()

        if all(r >= s for r, s in zip(roi, inputs.shape[2:], strict=True)):
            return _padded_call(predict, inputs, roi)
        return sliding_window_inference(
            inputs,
            roi,
            sw_batch_size=1,
            predictor=predict,
            overlap=self.overlap,
            mode=self.mode,
            sw_device=self.sw_device,
            device=self.device,
        )


def _padded_call(predict: Predictor, inputs: torch.Tensor, roi: Sequence[int]) -> torch.Tensor:
    """Run ``predict`` once on ``inputs`` zero-padded at the end up to ``roi``, and crop the output back."""
    spatial = inputs.shape[2:]
    padding = [amount for r, s in zip(reversed(roi), reversed(spatial), strict=True) for amount in (0, r - s)]
    output = predict(F.pad(inputs, padding))
    return output[(..., *(slice(0, s) for s in spatial))]


class MirrorInferer(Inferer):
    """Test-time augmentation: average the logits of the input and its mirror images.

    Args:
        inferer: the inferer to run on each mirrored input.
        axes: spatial axes (0-based) to mirror along; every combination is used, so 1 axis costs
            2 passes, 3 axes cost 8.
    """

    def __init__(self, inferer: Inferer, axes: Sequence[int] = (0,)) -> None:
        super().__init__()
        self.inferer, self.axes = inferer, tuple(axes)

    def __call__(self, inputs: torch.Tensor, network: Predictor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Mean logits ``(B, C_out, *spatial)`` over every mirrored version of ``inputs``."""
        total: torch.Tensor | None = None
        combos = [
            [axis + 2 for bit, axis in enumerate(self.axes) if mask >> bit & 1] for mask in range(2 ** len(self.axes))
        ]
        for dims in combos:
            flipped = torch.flip(inputs, dims) if dims else inputs
            output = self.inferer(flipped, network, *args, **kwargs)
            output = torch.flip(output, dims) if dims else output
            total = output if total is None else total + output
        assert total is not None
        return total / len(combos)
