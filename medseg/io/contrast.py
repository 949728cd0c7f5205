"""Label colours that stand out from the grey levels they are drawn on.

A bundle's colours are chosen once, for any scan: a grey-matter outline in grey (170, 170, 170) vanishes
on an MRI's grey matter, a pale yellow white matter on its white. Before drawing, each colour whose
luminance differs from the median grey level under its outline by less than :data:`MIN_CONTRAST` (on a
0-1 scale) is moved towards black or white, keeping its hue, just enough; a colour with next to no hue
(greys, off-whites), which would become one more grey, is first replaced by one of :data:`ACCENTS`. A
colour that already stands out is kept as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import cycle

import numpy as np
from scipy import ndimage

from medseg.labels import Label
from medseg.lesions import bounding_box

MIN_CONTRAST = 0.4
MIN_SATURATION = 0.2  # below this (max - min of red, green, blue) a colour reads as a grey
# Vivid hues for grey-ish labels that would not stand out: cyan, magenta, orange, green.
ACCENTS = ((0.0, 0.75, 1.0), (1.0, 0.25, 0.75), (1.0, 0.55, 0.0), (0.35, 0.9, 0.2))
# Rec. 709 weights of red, green and blue in luminance.
LUMINANCE = np.array([0.2126, 0.7152, 0.0722])


Colour = Sequence[float] | np.ndarray  # (3,) red, green, blue in 0-1


def _rgb(values: Colour) -> tuple[float, float, float]:
    red, green, blue = (float(v) for v in values)
    return red, green, blue


def luminance(rgb: Colour) -> float:
    """Luminance (0-1) of a colour given as ``(3,)`` red, green, blue in 0-1."""
    return float(LUMINANCE @ np.asarray(rgb, float))


def edge_pixels(inside: np.ndarray) -> np.ndarray:
    """The pixels an outline of the boolean ``(rows, columns)`` region ``inside`` passes between.

    Its border pixels and the pixels just outside them (8-connected), as a boolean array of the same shape.
    Works in 2D and 3D. Only the region's bounding box, one pixel wider each way (within the array), is
    eroded and dilated: nothing outside it can be an edge, and inside it the result is the whole array's.
    """
    edges = np.zeros(inside.shape, bool)
    box = bounding_box(inside)
    if box is None:
        return edges
    wider = tuple(slice(max(side.start - 1, 0), side.stop + 1) for side in box)  # a stop past the end is the end
    crop = inside[wider]
    edges[wider] = ndimage.binary_dilation(crop) & ~ndimage.binary_erosion(crop)
    return edges


def contrasting(rgb: Colour, background: float) -> tuple[float, float, float]:
    """``rgb`` (0-1), mixed with black or white just enough to differ from grey ``background`` (0-1).

    The colour moves on the side of the background it already lies on (lighter stays lighter), unless
    that side has no room for the contrast; the mix is the smallest that gives a luminance difference of
    :data:`MIN_CONTRAST`.
    """
    colour = np.asarray(rgb, float)
    own = luminance(colour)
    if abs(own - background) >= MIN_CONTRAST:
        return _rgb(colour)
    lighter = background + MIN_CONTRAST <= 1 and (own >= background or background - MIN_CONTRAST < 0)
    if lighter:
        mix = (background + MIN_CONTRAST - own) / (1 - own)
        shifted = colour * (1 - mix) + mix
    else:
        mix = 1 - (background - MIN_CONTRAST) / own
        shifted = colour * (1 - mix)
    return _rgb(np.clip(shifted, 0.0, 1.0))


def readable_colours(colours: Sequence[Colour], backgrounds: Sequence[float]) -> list[tuple[float, float, float]]:
    """Each colour (0-1) made to stand out from its own background grey (0-1), as the module says.

    Args:
        colours: ``(N, 3)`` the labels' colours, red, green, blue in 0-1.
        backgrounds: ``(N,)`` the grey (0-1) under each label's outline.
    """
    accents = cycle(ACCENTS)
    readable = []
    for rgb, background in zip(colours, backgrounds, strict=True):
        colour = np.asarray(rgb, float)
        if abs(luminance(colour) - background) < MIN_CONTRAST and np.ptp(colour) < MIN_SATURATION:
            colour = np.asarray(next(accents))
        readable.append(contrasting(colour, background))
    return readable


def label_colours(
    pictures: Sequence[tuple[np.ndarray, np.ndarray]], labels: Sequence[Label], grey: tuple[float, float]
) -> dict[int, tuple[float, float, float]]:
    """Each foreground label's colour (0-1) for these pictures, made to stand out from the grey under it.

    The grey under a label is the median, over all the pictures, of the intensities its outline passes
    between (:func:`edge_pixels`), placed in the display window.

    Args:
        pictures: ``(intensities, label map)`` pairs of the same shape, 2D slices or 3D volumes.
        labels: the bundle's labels.
        grey: the display window ``(low, high)`` of the intensities.
    """
    shown = [label for label in labels if label.value]
    backgrounds = []
    for label in shown:
        under = np.concatenate([image[edge_pixels(values == label.value)].ravel() for image, values in pictures])
        level = (np.median(under) - grey[0]) / (grey[1] - grey[0]) if under.size else 0.0
        backgrounds.append(float(np.clip(level, 0, 1)))
    colours = readable_colours([np.array(label.rgb) / 255 for label in shown], backgrounds)
    return {label.value: colour for label, colour in zip(shown, colours, strict=True)}
