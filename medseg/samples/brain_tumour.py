"""One multi-sequence brain MRI with a glioma-like tumour, rendered inside the real MNI152 brain.

The normal brain is the MNI152 template that ships with nilearn (:mod:`medseg.samples.mni`): its CSF,
grey- and white-matter probability maps, resampled to the case's grid with a small head turn, give
the tissue mixture of every voxel. The tumour is grown around a point in deep white matter from
wobbled ellipsoids (:mod:`medseg.samples.phantom.shapes`): a tumour core whose necrotic centre sits
inside an enhancing rim, surrounded by a larger, more irregular peritumoral oedema that stays in the
brain parenchyma. Some cases have no necrosis (a solid enhancing core) and some no enhancement (the
whole core is necrotic / non-enhancing, so the enhancing label is empty).

Sequences are in the Medical Segmentation Decathlon (Task01) order FLAIR, T1w, t1gd, T2w; labels
follow BraTS 2021: 1 necrotic tumour core, 2 peritumoral oedema, 4 enhancing tumour.

Relative intensities, the brightest normal tissue of a sequence near 1 (T1w and t1gd take the
template's own T1 intensities for normal tissue, about CSF 0.35, grey 0.66, white 0.84):

==========  =====  ===========  ============  ============  ==========  =============
sequence    CSF    grey matter  white matter  necrosis (1)  oedema (2)  enhancing (4)
==========  =====  ===========  ============  ============  ==========  =============
FLAIR       0.10   0.62         0.48          0.45          0.95        0.75
T1w         T1     T1           T1            0.35          0.55        0.62
t1gd        T1     T1           T1            0.35          0.55        1.25
T2w         1.00   0.55         0.40          0.95          0.85        0.70
==========  =====  ===========  ============  ============  ==========  =============

So T1w: WM > GM > CSF, oedema a little darker than grey matter; T2w: CSF > GM > WM, necrosis and
oedema bright; FLAIR: GM > WM with dark CSF and bright oedema; t1gd: like T1w, the rim brighter than
white matter around a dark necrotic centre. Per case, each tumour value is scaled by 0.9-1.1 and the
tumour gets a smooth texture (about +-10 %); tumour compartments are blurred by half a voxel
(partial volume); each sequence gets its own bias field and Rician noise. Voxels outside the brain
are 0, as in skull-stripped BraTS scans. Images are stored as int16, relative intensity x 1000.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache, cached_property
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.samples.mni import Template, load_template, resample
from medseg.samples.mri_variants import MriVariant, add_rician_noise, bias_field, head_motion, to_stored, variant_grid
from medseg.samples.phantom.shapes import Ellipsoid, SmoothField, box, rotation

SEQUENCES = ("FLAIR", "T1w", "t1gd", "T2w")
NECROSIS, OEDEMA, ENHANCING = 1, 2, 4
TUMOUR_LABELS = (NECROSIS, OEDEMA, ENHANCING)
BRAIN_THRESHOLD = 0.5  # tissue fraction: brain voxels (kept) and parenchyma (where oedema can spread)
PARTIAL_VOLUME_SIGMA = 0.5  # voxels
TEXTURE_AMPLITUDE = 0.05  # times a field mostly in [-2, 2]
WHOLE_TUMOUR_ML = (12.0, 90.0)  # drawn log-uniformly; the parts outside the parenchyma are cut off
MIN_RIM_MM = 2.0  # thinnest enhancing rim over the necrosis
OEDEMA_RING = 1.3  # the oedema always covers the parenchyma within the core scaled by this
OEDEMA_INNER = 0.6  # and within its own outline scaled by this; further out only white matter
CANDIDATE_STEP = 4  # voxels of the 1 mm template between candidate tumour centres


@dataclass(frozen=True)
class Contrast:
    """Relative intensities of one sequence.

    Args:
        normal: CSF, grey matter, white matter; None takes the template's own T1 intensities.
        tumour: necrosis, oedema, enhancing tumour.
    """

    normal: tuple[float, float, float] | None
    tumour: tuple[float, float, float]


CONTRASTS = {
    "FLAIR": Contrast((0.10, 0.62, 0.48), (0.45, 0.95, 0.75)),
    "T1w": Contrast(None, (0.35, 0.55, 0.62)),
    "t1gd": Contrast(None, (0.35, 0.55, 1.25)),
    "T2w": Contrast((1.00, 0.55, 0.40), (0.95, 0.85, 0.70)),
}


@dataclass(frozen=True)
class Tumour:
    """A tumour's compartments, in world millimetres (after the head turn).

    Args:
        centre_mni: ``(3,)`` centre in the template's frame (mm), in deep white matter.
        core: outline of the tumour core (necrosis and enhancing rim).
        necrosis: the necrotic centre, or None for a solid core.
        oedema: outline of the oedema around the core; it is kept to the brain parenchyma.
        enhancing: whether the core enhances; if not, the whole core is labelled necrotic.
        texture: smooth field that varies the tumour's intensities.
    """

    centre_mni: np.ndarray
    core: Ellipsoid
    necrosis: Ellipsoid | None
    oedema: Ellipsoid
    enhancing: bool
    texture: SmoothField

    @property
    def kind(self) -> str:
        """``"necrotic rim"``, ``"solid enhancing"`` or ``"non-enhancing"``."""
        if not self.enhancing:
            return "non-enhancing"
        return "solid enhancing" if self.necrosis is None else "necrotic rim"


@cache
def _deep_white_matter() -> tuple[np.ndarray, np.ndarray]:
    """Candidate centres: ``(N, 3)`` template points (mm) in white matter above z = 0, and their ``(N,)`` depth (mm).

    Depth is the distance to the brain's outer surface; z > 0 keeps the tumour above the
    cerebellum, where most gliomas grow.
    """
    template = load_template()
    step = CANDIDATE_STEP
    brain = template.t1[::step, ::step, ::step] > 0.02
    depth = ndimage.distance_transform_edt(brain) * step
    voxels = np.argwhere(template.white[::step, ::step, ::step] > 0.9)
    points = (template.affine @ np.c_[voxels * step, np.ones(len(voxels))].T).T[:, :3]
    above = points[:, 2] > 0
    return points[above], depth[tuple(voxels[above].T)]


def _centre(rng: np.random.Generator, depth_mm: float) -> np.ndarray:
    """A random deep white-matter point at least ``depth_mm`` inside the brain (the deepest if none is)."""
    points, depth = _deep_white_matter()
    deep = np.flatnonzero(depth >= depth_mm)
    index = rng.choice(deep) if len(deep) else int(np.argmax(depth))
    return points[index] + rng.uniform(-CANDIDATE_STEP / 2, CANDIDATE_STEP / 2, 3)


def _blob(
    rng: np.random.Generator, centre: np.ndarray, radius: float, wobble: float, wave_mm: tuple[float, float]
) -> Ellipsoid:
    """An irregular ellipsoid of mean radius ``radius`` (mm), randomly turned and stretched."""
    aspect = np.exp(rng.normal(0, 0.15, 3))
    semi_axes = radius * aspect / np.cbrt(aspect.prod())
    field = SmoothField.random(rng, terms=4, wavelength_mm=wave_mm)
    return Ellipsoid(centre, semi_axes, rotation(rng, 180), field, wobble)


def random_tumour(rng: np.random.Generator, motion: np.ndarray) -> Tumour:
    """Draw a tumour.

    Args:
        rng: random generator.
        motion: ``(4, 4)`` head turn (world transform) that carries the template to the scan.
    """
    draw = rng.random()
    enhancing, necrotic = draw >= 0.15, draw >= 0.35
    volume_mm3 = np.exp(rng.uniform(*np.log(WHOLE_TUMOUR_ML))) * 1000
    radius = float(np.cbrt(3 * volume_mm3 / (4 * np.pi)))
    core_radius = radius * rng.uniform(0.5, 0.8)
    centre_mni = _centre(rng, 1.3 * core_radius + 8)
    centre = (motion @ np.append(centre_mni, 1))[:3]
    core = _blob(rng, centre, core_radius, 0.12, (15, 45))
    necrosis_radius = core_radius * rng.uniform(0.4, 0.7)
    necrosis = _blob(rng, centre, necrosis_radius, 0.15, (10, 30)) if necrotic else None
    oedema = _blob(rng, centre + rng.normal(0, 0.1 * radius, 3), radius, 0.3, (12, 40))
    texture = SmoothField.random(rng, terms=4, wavelength_mm=(6, 20))
    return Tumour(centre_mni, core, necrosis, oedema, enhancing, texture)


def _inside(shape: Ellipsoid, axes: tuple[np.ndarray, ...], grid: tuple[int, int, int]) -> np.ndarray:
    """Boolean ``grid`` mask of the voxel centres inside ``shape``; ``axes`` are the grid's ascending coordinates."""
    mask = np.zeros(grid, bool)
    found = box(axes, shape.bounds())  # type: ignore[arg-type]
    if found is not None:
        slices, (x, y, z) = found
        mask[slices] = shape.level(x, y, z) <= 0
    return mask


@dataclass(frozen=True)
class Tissues:
    """The normal brain on the scan's canonical RAS grid, all ``(X, Y, Z)`` float32.

    Args:
        csf: CSF fraction.
        grey: grey-matter fraction.
        white: white-matter fraction.
        t1: the template's T1 intensities.
    """

    csf: np.ndarray
    grey: np.ndarray
    white: np.ndarray
    t1: np.ndarray

    @cached_property
    def brain(self) -> np.ndarray:
        """Fraction of brain tissue."""
        return np.clip(self.csf + self.grey + self.white, 0, 1)

    def normal(self, contrast: Contrast) -> np.ndarray:
        """Intensities of the tumour-free brain in one sequence."""
        if contrast.normal is None:
            return self.t1
        csf, grey, white = contrast.normal
        return self.csf * csf + self.grey * grey + self.white * white


def tumour_labels(tumour: Tumour, tissues: Tissues, axes: tuple[np.ndarray, ...]) -> np.ndarray:
    """BraTS 2021 labels of a tumour on a canonical RAS grid.

    The core replaces whatever tissue it covers; necrosis stays at least :data:`MIN_RIM_MM` and one
    voxel under its surface, so the enhancing rim closes around it. Oedema fills the parenchyma in
    a ring around the core and in the inner part of its outline; further out it takes only white
    matter, so it reaches along the white matter and spares the cortex, as vasogenic oedema does.

    Args:
        tumour: the tumour.
        tissues: the normal brain on the grid.
        axes: voxel-centre world coordinates (mm) along x, y, z, ascending.

    Returns:
        ``(X, Y, Z)`` uint8: 0 background, 1 necrosis, 2 oedema, 4 enhancing tumour.
    """
    grid = tissues.t1.shape
    core = _inside(tumour.core, axes, grid) & (tissues.brain >= BRAIN_THRESHOLD)
    if not tumour.enhancing:
        necrotic = core
    elif tumour.necrosis is None:
        necrotic = np.zeros(grid, bool)
    else:
        spacing = [abs(float(a[1] - a[0])) for a in axes]
        under_rim = ndimage.distance_transform_edt(core, sampling=spacing) > max(MIN_RIM_MM, *spacing)
        necrotic = core & under_rim & _inside(tumour.necrosis, axes, grid)
    spreads = (tissues.white >= tissues.grey) | _inside(tumour.oedema.scaled(OEDEMA_INNER), axes, grid)
    outline = _inside(tumour.oedema, axes, grid) & spreads | _inside(tumour.core.scaled(OEDEMA_RING), axes, grid)
    oedema = outline & (tissues.grey + tissues.white >= BRAIN_THRESHOLD) & ~core
    label = np.zeros(grid, np.uint8)
    label[oedema] = OEDEMA
    label[necrotic] = NECROSIS
    label[core & ~necrotic] = ENHANCING
    return label


def _sequence(
    contrast: Contrast, tissues: Tissues, shares: list[np.ndarray], texture: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Relative intensities ``(X, Y, Z)`` of one noiseless sequence; ``shares`` are the tumour fractions per label."""
    values = np.asarray(contrast.tumour) * rng.uniform(0.9, 1.1, 3)
    tumour = sum(share * np.float32(value) for share, value in zip(shares, values, strict=True))
    return tissues.normal(contrast) * (1 - sum(shares)) + tumour * texture * tissues.brain


def render(
    template: Template, variant: MriVariant, tumour: Tumour, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the four sequences and the labels of a case.

    Args:
        template: the MNI152 template.
        variant: grid (spacing, orientation), head turn, bias strength and noise level.
        tumour: the tumour, placed for ``variant``'s head turn.
        rng: random generator for intensities, bias fields and noise.

    Returns:
        ``(image, label, affine)``: ``(X, Y, Z, 4)`` int16 sequences in :data:`SEQUENCES` order,
        ``(X, Y, Z)`` uint8 BraTS labels, and the ``(4, 4)`` voxel-to-RAS affine of both.
    """
    canonical, shape = variant_grid(template, replace(variant, orientation="RAS"))
    motion = head_motion(template, variant.rotation_deg)
    maps = (template.csf, template.grey, template.white, template.t1)
    tissues = Tissues(*(resample(volume, template.affine, canonical, shape, moved_by=motion) for volume in maps))
    axes = tuple((canonical[i, 3] + canonical[i, i] * np.arange(n)).astype(np.float32) for i, n in enumerate(shape))
    label = tumour_labels(tumour, tissues, axes)
    shares = [
        ndimage.gaussian_filter((label == value).astype(np.float32), PARTIAL_VOLUME_SIGMA) for value in TUMOUR_LABELS
    ]
    x, y, z = axes
    texture = 1 + np.float32(TEXTURE_AMPLITUDE) * tumour.texture(x[:, None, None], y[None, :, None], z[None, None, :])
    skull_stripped = tissues.brain >= BRAIN_THRESHOLD
    channels = []
    for name in SEQUENCES:
        image = _sequence(CONTRASTS[name], tissues, shares, texture, rng)
        image *= bias_field(rng, shape, variant.spacing, variant.bias)
        image = add_rician_noise(image, rng, variant.noise * rng.uniform(0.7, 1.3))
        channels.append(to_stored(image * skull_stripped))
    affine, _ = variant_grid(template, variant)
    flip = (slice(None, None, -1),) * 2 if variant.orientation == "LPS" else ()
    return np.ascontiguousarray(np.stack(channels, axis=-1)[flip]), np.ascontiguousarray(label[flip]), affine


@dataclass(frozen=True)
class BrainTumourScan:
    """One rendered case.

    Args:
        image: ``(X, Y, Z, 4)`` int16 FLAIR, T1w, t1gd, T2w (channel last, as MSD stores them).
        label: ``(X, Y, Z)`` uint8 BraTS 2021 labels.
        affine: ``(4, 4)`` voxel-to-RAS affine of both.
        variant: the grid, head turn, bias and noise that were drawn.
        tumour: the tumour that was drawn.
    """

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    variant: MriVariant
    tumour: Tumour

    def facts(self) -> dict[str, Any]:
        """What was drawn and the label volumes (mL), JSON-ready."""
        voxel_ml = float(np.prod(self.variant.spacing)) / 1000
        counts = {value: int(np.count_nonzero(self.label == value)) for value in TUMOUR_LABELS}
        return {
            "spacing": list(self.variant.spacing),
            "orientation": self.variant.orientation,
            "rotation_deg": [round(float(a), 2) for a in self.variant.rotation_deg],
            "tumour": self.tumour.kind,
            "tumour_centre_mni_mm": [round(float(c), 2) for c in self.tumour.centre_mni],
            "tumour_centre_ras_mm": [round(float(c), 2) for c in self.tumour.core.centre],
            "volume_ml": {
                "necrosis": round(counts[NECROSIS] * voxel_ml, 2),
                "oedema": round(counts[OEDEMA] * voxel_ml, 2),
                "enhancing": round(counts[ENHANCING] * voxel_ml, 2),
                "whole tumour": round(sum(counts.values()) * voxel_ml, 2),
            },
        }


def make_case(seed: int | tuple[int, ...], *, spacing_mm: float = 2.0, name: str = "brats") -> BrainTumourScan:
    """Draw and render one case; the same seed and spacing always give the same voxels.

    Args:
        seed: integer or tuple of integers (for example ``(dataset_seed, case_index)``).
        spacing_mm: isotropic voxel size.
        name: case name.
    """
    rng = np.random.default_rng(seed)
    template = load_template()
    variant = MriVariant(
        name=name,
        spacing=(spacing_mm,) * 3,
        rotation_deg=tuple(rng.uniform(-10, 10, 3)),
        bias=float(rng.uniform(0.05, 0.3)),
        noise=float(rng.uniform(0.01, 0.04)),
        orientation=str(rng.choice(["RAS", "LPS"])),
    )
    tumour = random_tumour(rng, head_motion(template, variant.rotation_deg))
    image, label, affine = render(template, variant, tumour, rng)
    return BrainTumourScan(image, label, affine, variant, tumour)
