"""Inferers for the fast path: a CPU-tuned network for any windows, large windows, mirror test-time augmentation.

By default the fast path keeps the bundle's own sliding windows (the training patch, its overlap
and Gaussian blending), so its probabilities are the stock recipe's, and only runs them faster:
:class:`CpuTunedInferer` runs a copy of the network with its batch norms folded into the
convolutions, the copy and each window in ``channels_last_3d`` memory format, which oneDNN's 3D
convolutions run faster on CPU (the answer is the same to float rounding).

:class:`LargeWindowInferer` (``medseg infer --window large``) goes further: MONAI's
``SlidingWindowInferer`` pushes a scan through the network about three times over with 50 %
overlap, and every window pays for its border; a fully convolutional network can take the whole
(cropped) volume as one window, padded to the network's divisor, split only when over a voxel
budget. That is 3-4x less network time, but the network then sees other context than in training,
so its answer moves (measured in benchmarks/RESULTS.md). MONAI has no inferer that sizes its window
per volume, hence this one; the windows themselves still go through
``monai.inferers.sliding_window_inference``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.inferers import Inferer, sliding_window_inference
from torch.nn.utils.fusion import fuse_conv_bn_eval

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


def fold_batch_norms(model: torch.nn.Module) -> int:
    """Fold each batch norm that directly follows a convolution (MONAI ``Convolution`` blocks) into it, in place.

    In eval mode a batch norm is a per-channel affine map, so the convolution's weights and bias
    can absorb it: one pass over the activations fewer per layer, the same outputs to float rounding.

    Args:
        model: a network in eval mode; its convolution blocks are replaced and its batch norms
            become identities. Batch norms in training mode, or without running statistics, are left.

    Returns:
        How many batch norms were folded.
    """
    folded = 0
    for block in model.modules():
        conv, adn = getattr(block, "conv", None), getattr(block, "adn", None)
        if not isinstance(conv, torch.nn.modules.conv._ConvNd) or not isinstance(adn, torch.nn.Sequential):
            continue
        norm = next(iter(adn.children()), None)
        if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm) and not norm.training and norm.track_running_stats:
            block.conv = fuse_conv_bn_eval(conv, norm, transpose=conv.transposed)
            adn.N = torch.nn.Identity()
            folded += 1
    return folded


class CpuTunedInferer(Inferer):
    """Run another inferer with a CPU-tuned copy of a 3D network: batch norms folded, ``channels_last_3d``.

    oneDNN's 3D convolutions run faster in channels-last memory format, and folded batch norms save
    a pass per layer: together about 35 % less time per window for the CT U-Net on this project's
    CPU (benchmarks/RESULTS.md), with the same outputs to float rounding (a network with group or
    instance norms, such as the BraTS SegResNet, only gets the channels-last layout). The bundle's
    network itself is left untouched (an ensemble loads its members' weights into it). Where the
    volume or the network is on CUDA, the network runs as it is: the tuning was not measured there.

    The tuned copy is made once and kept for the next scans of a run while the network stays the
    same: same module, same parameter and buffer tensors, none changed in place since (each tensor's
    version counter, which ``load_state_dict`` and any in-place update move on), same modes.

    Args:
        inferer: the inferer that cuts the volume into windows (the bundle's own, or another).
    """

    def __init__(self, inferer: Inferer) -> None:
        super().__init__()
        self.inferer = inferer
        self._tuned: tuple[tuple[Any, ...], torch.nn.Module] | None = None  # (the network's state key, its copy)

    def tuned(self, network: torch.nn.Module) -> torch.nn.Module:
        """The tuned copy of ``network``: the one kept from an earlier call while ``network`` is unchanged."""
        key = _state_key(network)
        if self._tuned is not None and key is not None and self._tuned[0] == key:
            return self._tuned[1]
        model = copy.deepcopy(network)
        fold_batch_norms(model)  # folds only batch norms in eval mode
        model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # torch's stubs omit it
        self._tuned = None if key is None else (key, model)
        return model

    def __call__(self, inputs: torch.Tensor, network: Predictor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Predict ``(B, C_out, x, y, z)`` from ``inputs`` ``(B, C_in, x, y, z)``."""
        if not (inputs.ndim == 5 and inputs.device.type == "cpu" and _on_cpu(network)):
            return self.inferer(inputs, network, *args, **kwargs)
        assert isinstance(network, torch.nn.Module)  # _on_cpu says so
        model = self.tuned(network)

        def predict(window: torch.Tensor, *more: Any, **options: Any) -> torch.Tensor:
            return model(window.contiguous(memory_format=torch.channels_last_3d), *more, **options).contiguous()

        return self.inferer(inputs, predict, *args, **kwargs)


def _state_key(network: torch.nn.Module) -> tuple[Any, ...] | None:
    """What a tuned copy of ``network`` depends on, to compare cheaply; None when it cannot be told.

    Each parameter and buffer by identity, storage and version counter (moved on by every in-place
    change, ``load_state_dict`` included), and each module's training mode. Tensors made under
    ``torch.inference_mode`` have no version counter: then None, and the copy is made afresh.
    """
    try:
        tensors = tuple(
            (name, id(tensor), tensor.data_ptr(), tensor._version)
            for name, tensor in (*network.named_parameters(), *network.named_buffers())
        )
    except RuntimeError:  # an inference tensor's version counter cannot be read
        return None
    return id(network), tensors, tuple(module.training for module in network.modules())


def _on_cpu(network: Predictor) -> bool:
    """Whether ``network`` is a module whose parameters are all on the CPU (a bundle may set ``sw_device``)."""
    return isinstance(network, torch.nn.Module) and all(p.device.type == "cpu" for p in network.parameters())


class LargeWindowInferer(Inferer):
    """Sliding-window inference with windows as large as ``max_voxels`` allows.

    Args:
        divisor: window sides are multiples of this.
        max_voxels: voxel budget of one window (memory grows with it).
        overlap: overlap between windows, used only when a volume needs several.
        mode: blending of overlapping windows (``"gaussian"`` or ``"constant"``).
        sw_device: device the windows run on (default: the input's).
        device: device the output is stitched on (default: the input's).
    """

    def __init__(
        self,
        divisor: int = 16,
        max_voxels: int = 12_000_000,
        overlap: float = 0.25,
        mode: str = "gaussian",
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.divisor, self.max_voxels, self.overlap, self.mode = divisor, max_voxels, overlap, mode
        self.sw_device, self.device = sw_device, device

    def __call__(self, inputs: torch.Tensor, network: Predictor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Predict ``(B, C_out, *spatial)`` from ``inputs`` ``(B, C_in, *spatial)``."""
        roi = window_size(inputs.shape[2:], self.divisor, self.max_voxels)

        def predict(window: torch.Tensor) -> torch.Tensor:
            return network(window, *args, **kwargs)

        if all(r >= s for r, s in zip(roi, inputs.shape[2:], strict=True)):
            return _padded_call(predict, inputs, roi)
        return sliding_window_inference(  # type: ignore[return-value]  # a tensor, as ``predict`` returns one
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
    for axis, size in enumerate(spatial, start=output.ndim - len(spatial)):
        output = output.narrow(axis, 0, size)
    return output


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
