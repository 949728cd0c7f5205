"""Four 2D segmentation networks of one size, built from MONAI, that differ in how the decoder sees detail.

- ``encoder-decoder``: MONAI's ``AutoEncoder``; the decoder sees only the coarsest features, so
  every boundary of a 96 x 96 slice has to be redrawn from a 6 x 6 summary.
- ``FCN``: a convolutional encoder whose class scores at 1/16, 1/8 and 1/4 resolution are upsampled and
  summed (FCN-8s in spirit): coarse *predictions* are refined by finer ones, but no decoder learns
  from fine *features*.
- ``U-Net``: MONAI's ``UNet``; skip connections hand each decoder level the encoder's features at the
  same resolution.
- ``residual U-Net``: the same with one residual unit per level.

All four downsample four times and use the same channel widths, so they differ in wiring, not depth.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import AutoEncoder, UNet
from torch import nn
from torch.nn import functional

CHANNELS = (8, 16, 32, 64, 128)
STRIDES = (2, 2, 2, 2)
# The FCN's scored stages: those at 1/4, 1/8 and 1/16 resolution (the last, like a U-Net's bottom, keeps 1/16).
SCORED = (1, 2, 4)


def encoder_decoder(in_channels: int, classes: int) -> nn.Module:
    """An encoder-decoder without skip connections (MONAI ``AutoEncoder``)."""
    return AutoEncoder(
        spatial_dims=2, in_channels=in_channels, out_channels=classes, channels=CHANNELS, strides=(*STRIDES, 1)
    )


class FCN(nn.Module):
    """Fully convolutional network that fuses upsampled class scores from three depths.

    Args:
        in_channels: image channels.
        classes: output classes.
    """

    def __init__(self, in_channels: int, classes: int) -> None:
        super().__init__()
        widths = (in_channels, *CHANNELS)
        self.stages = nn.ModuleList(
            Convolution(2, c_in, c_out, strides=2 if depth < len(STRIDES) else 1)
            for depth, (c_in, c_out) in enumerate(pairwise(widths))
        )
        # 1x1 scoring layers for the features at 1/4, 1/8 and 1/16 resolution (the last two stages share 1/16).
        self.scores = nn.ModuleList(nn.Conv2d(CHANNELS[i], classes, kernel_size=1) for i in SCORED)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` image to ``(B, classes, H, W)`` logits; H and W divisible by 16."""
        features = []
        x = image
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        fine_to_coarse = [features[i] for i in SCORED]
        logits = self.scores[-1](fine_to_coarse[-1])
        for score, feature in zip(self.scores[-2::-1], fine_to_coarse[-2::-1], strict=True):
            logits = functional.interpolate(logits, size=feature.shape[-2:], mode="bilinear") + score(feature)
        return functional.interpolate(logits, size=image.shape[-2:], mode="bilinear")


def fcn(in_channels: int, classes: int) -> nn.Module:
    """The FCN-8s-style network (:class:`FCN`)."""
    return FCN(in_channels, classes)


def unet(in_channels: int, classes: int) -> nn.Module:
    """A U-Net with plain convolution blocks (MONAI ``UNet``)."""
    return UNet(spatial_dims=2, in_channels=in_channels, out_channels=classes, channels=CHANNELS, strides=STRIDES)


def residual_unet(in_channels: int, classes: int) -> nn.Module:
    """A U-Net with a residual unit per level (MONAI ``UNet``, ``num_res_units=1``)."""
    return UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=classes,
        channels=CHANNELS,
        strides=STRIDES,
        num_res_units=1,
    )


ARCHITECTURES: dict[str, Callable[[int, int], nn.Module]] = {
    "encoder-decoder": encoder_decoder,
    "FCN": fcn,
    "U-Net": unet,
    "residual U-Net": residual_unet,
}


def parameter_count(network: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)
