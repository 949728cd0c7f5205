"""Matplotlib figures for the architecture notebook: boundary close-ups and lesion instances.

matplotlib is the ``notebooks`` extra (``pip install 'medseg[notebooks]'``), not a dependency.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Outline colours of the classes (liver, tumour) in every figure.
OUTLINES = {1: "tab:green", 2: "tab:red"}


def _window(centre: tuple[int, int], half: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """A square of side ``2 * half`` around ``centre``, moved inside an image of ``shape``."""
    starts = [min(max(c - half, 0), n - 2 * half) for c, n in zip(centre, shape, strict=True)]
    return tuple(slice(s, s + 2 * half) for s in starts)  # type: ignore[return-value]


def _outline(axes: Axes, labels: np.ndarray, style: str) -> None:
    for value, colour in OUTLINES.items():
        if (labels == value).any():
            axes.contour((labels == value).T, levels=[0.5], colors=colour, linestyles=style, linewidths=1.5)


def boundary_closeups(
    image: np.ndarray,
    reference: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    centre: tuple[int, int],
    half: int = 16,
) -> Figure:
    """One panel per network: a close-up of ``image`` with the reference (dashed) and predicted (solid) outlines.

    Args:
        image: ``(H, W)`` slice.
        reference: ``(H, W)`` reference labels.
        predictions: network name to its ``(H, W)`` predicted labels.
        centre: ``(2,)`` pixel the close-ups are centred on.
        half: half the side of the close-up, in pixels.
    """
    box = _window(centre, half, image.shape)
    figure = Figure(figsize=(3.2 * len(predictions), 3.6))
    for axes, (name, prediction) in zip(figure.subplots(1, len(predictions)), predictions.items(), strict=True):
        axes.imshow(image[box].T, cmap="gray", origin="lower", vmin=0, vmax=1)
        _outline(axes, reference[box], "dashed")
        _outline(axes, prediction[box], "solid")
        axes.set_title(name)
        axes.set_axis_off()
    figure.suptitle("liver (green) and tumour (red): reference dashed, prediction solid")
    return figure


def instance_panels(image: np.ndarray, semantic: np.ndarray, instances: np.ndarray) -> Figure:
    """The slice, its semantic labels, and its lesion instances (one colour per connected tumour).

    Args:
        image: ``(H, W)`` slice.
        semantic: ``(H, W)`` labels, 0 background, 1 liver, 2 tumour.
        instances: ``(H, W)`` 0 outside lesions, ``k`` inside the k-th lesion.
    """
    figure = Figure(figsize=(10, 3.6))
    left, middle, right = figure.subplots(1, 3)
    left.imshow(image.T, cmap="gray", origin="lower", vmin=0, vmax=1)
    left.set_title("CT slice")
    middle.imshow(semantic.T, cmap="viridis", origin="lower", vmin=0, vmax=2, interpolation="nearest")
    middle.set_title("semantic: what each pixel is")
    shown = np.ma.masked_equal(instances, 0).T
    right.imshow(image.T, cmap="gray", origin="lower", vmin=0, vmax=1)
    right.imshow(shown, cmap="tab10", origin="lower", vmin=1, vmax=10, interpolation="nearest")
    right.set_title(f"instances: {int(instances.max())} separate lesions")
    for axes in (left, middle, right):
        axes.set_axis_off()
    return figure
