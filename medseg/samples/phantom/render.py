"""Render an :class:`Anatomy` on a :class:`CtGrid`: Hounsfield units and the liver/tumour labels.

Structures are painted in order, later ones over earlier ones, each only inside its bounding box.
The image then gets scanner noise and a point-spread/slice-profile blur (partial volume); the
labels stay sharp, as an annotator would draw them at voxel centres.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medseg.samples.phantom.anatomy import Anatomy
from medseg.samples.phantom.grid import CtGrid
from medseg.samples.phantom.shapes import Bounds, Box, Capsule, Ellipsoid, box

AIR_HU = -1000.0
HU_RANGE = (-1024, 3071)
LIVER, TUMOUR = 1, 2
# In-plane point-spread function (sigma, mm): a typical soft-tissue kernel resolves about 1 mm.
PSF_SIGMA_MM = 0.45

Shape = Ellipsoid | Capsule
Value = float | Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _fluid_level(level: float, fluid: float) -> Value:
    """Fluid below ``level`` (along y) and air above it, as a loop of bowel holds them."""

    def values(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.where(y > level, AIR_HU, fluid)

    return values


@dataclass
class Canvas:
    """The image and label being painted, in canonical ``(X, Y, Z)`` order, with voxel coordinates."""

    hu: np.ndarray
    label: np.ndarray
    axes: tuple[np.ndarray, np.ndarray, np.ndarray]

    @classmethod
    def empty(cls, grid: CtGrid) -> Canvas:
        """An all-air canvas with all-background labels."""
        return cls(np.full(grid.shape, AIR_HU, np.float32), np.zeros(grid.shape, np.uint8), grid.axes_mm())

    def box(self, bounds: Bounds) -> Box | None:
        """Index slices and broadcastable coordinates of the voxels inside ``bounds``; None if empty."""
        return box(self.axes, bounds)

    def paint(
        self,
        shape: Shape,
        value: Value,
        *,
        label: int | None = 0,
        within: np.ndarray | None = None,
        over_label: int | None = None,
    ) -> None:
        """Fill ``shape`` with ``value`` HU.

        Args:
            shape: region to fill.
            value: HU, or a function of ``(x, y, z)`` giving HU per voxel.
            label: label to write there; None leaves the labels as they are.
            within: full-size boolean array limiting where to paint (for example the body cavity).
            over_label: paint only over voxels that already hold this label.
        """
        found = self.box(shape.bounds())
        if found is None:
            return
        slices, (x, y, z) = found
        mask = shape.level(x, y, z) <= 0
        if within is not None:
            mask &= within[slices]
        if over_label is not None:
            mask &= self.label[slices] == over_label
        hu = self.hu[slices]
        hu[mask] = np.broadcast_to(value(x, y, z), mask.shape)[mask] if callable(value) else value
        if label is not None:
            self.label[slices][mask] = label


def _body(canvas: Canvas, anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Paint skin fat, the muscle wall and the visceral fat; return the cavity and the body masks."""
    body, hu = anatomy.body, anatomy.hu
    x, y, z = canvas.axes
    rho = body.radius_field(x[:, None], y[None, :])[..., None]
    scale = body.scale(z)[None, None, :]
    fat = np.float32(body.fat_mm / body.mean_radius)
    muscle = np.float32(body.muscle_mm / body.mean_radius)
    inside = rho <= scale
    cavity = rho <= scale - fat - muscle
    wall_muscle = (rho <= scale - fat) & ~cavity
    canvas.hu[inside] = hu.fat
    canvas.hu[wall_muscle] = hu.muscle
    canvas.hu[cavity] = hu.fat + 20  # mesenteric fat is a little denser than subcutaneous fat
    return cavity, inside


def _extruded(canvas: Canvas, mask2d: np.ndarray, value: float | np.ndarray, within: np.ndarray) -> None:
    """Paint a 2D ``(X, Y)`` mask through every slice; ``value`` may vary along z as ``(Z,)``."""
    column = np.broadcast_to(np.asarray(value, np.float32), (canvas.hu.shape[2],))
    region = mask2d[..., None] & within
    canvas.hu[region] = np.broadcast_to(column, canvas.hu.shape)[region]
    canvas.label[region] = 0


def _disc(x: np.ndarray, y: np.ndarray, centre: tuple[float, float], radius: tuple[float, float]) -> np.ndarray:
    return ((x - centre[0]) / radius[0]) ** 2 + ((y - centre[1]) / radius[1]) ** 2 <= 1


def _spine_and_muscles(canvas: Canvas, anatomy: Anatomy, body_mask: np.ndarray) -> None:
    """Paraspinal muscles, psoas, vertebral bodies with discs, spinal canal and posterior arch."""
    spine, hu = anatomy.spine, anatomy.hu
    x, y = canvas.axes[0][:, None], canvas.axes[1][None, :]
    for side in (-1, 1):
        _extruded(canvas, _disc(x, y, (side * 35, spine.y - 40), (28, 26)), hu.muscle, body_mask)
    for psoas in anatomy.psoas:
        canvas.paint(psoas, hu.muscle, within=body_mask)
    column = np.where(spine.is_disc(canvas.axes[2]), hu.disc, hu.cancellous_bone)
    cortex = _disc(x, y, (spine.x, spine.y), (spine.radius, spine.radius))
    marrow = _disc(x, y, (spine.x, spine.y), (spine.radius - spine.CORTEX_MM,) * 2)
    _extruded(canvas, cortex, np.where(spine.is_disc(canvas.axes[2]), hu.disc, hu.cortical_bone), body_mask)
    _extruded(canvas, marrow, column, body_mask)
    canal_y = spine.y - spine.radius - 10
    arch = _disc(x, y, (spine.x, canal_y), (14, 13)) | _disc(x, y, (spine.x, canal_y - 22), (4, 14))
    _extruded(canvas, arch, 0.5 * (hu.cortical_bone + hu.cancellous_bone), body_mask)
    _extruded(canvas, _disc(x, y, (spine.x, canal_y), (8, 7)), hu.csf, body_mask)


def _ribs(canvas: Canvas, anatomy: Anatomy, cavity: np.ndarray, body_mask: np.ndarray) -> None:
    """Rib cross-sections in the wall, sloping down anteriorly, ending at the costal margin."""
    body = anatomy.body
    x, y, z = canvas.axes
    rho = body.radius_field(x[:, None], y[None, :])
    depth = (body.fat_mm + 0.7 * body.muscle_mm) / body.mean_radius
    half_width = 4 / body.mean_radius
    scale = body.scale(z)
    # Work on the pixels that can hold a rib at some height, then on their whole columns.
    near = (rho > scale.min() - depth - half_width) & (rho < scale.max() - depth + half_width)
    near &= ~((np.abs(x)[:, None] < 30) & (y[None, :] > 0))  # sternum and costal cartilage gap
    ix, iy = np.nonzero(near)
    # Distance along the wall from the spine (mm): the angle from the posterior midline times the radius.
    arc = (np.abs(np.arctan2(x[ix], -y[iy])) * body.mean_radius)[:, None]
    zz = z[None, :]
    region = np.abs(rho[ix, iy][:, None] - (scale[None, :] - depth)) < half_width
    region &= np.mod(zz + 0.35 * arc - anatomy.rib_phase, anatomy.rib_period) < 10
    region &= zz > anatomy.diaphragm.right_top - 160 + 120 * arc / (np.pi * body.mean_radius)
    region &= body_mask[ix, iy] & ~cavity[ix, iy]
    column_hu = canvas.hu[ix, iy]
    column_hu[region] = 0.6 * anatomy.hu.cortical_bone
    canvas.hu[ix, iy] = column_hu
    column_label = canvas.label[ix, iy]
    column_label[region] = 0
    canvas.label[ix, iy] = column_label


def _abdomen(canvas: Canvas, anatomy: Anatomy, below_dome: np.ndarray) -> None:
    """Bowel loops and stomach (fluid, some with gas in the anterior, non-dependent part)."""
    hu = anatomy.hu
    for loop, has_gas in anatomy.bowel:
        canvas.paint(loop, hu.muscle - 10, within=below_dome)
        inner = loop.scaled(0.8)
        canvas.paint(inner, hu.bowel_fluid, within=below_dome)
        if has_gas:
            level = float(loop.centre[1])
            canvas.paint(inner, _fluid_level(level, hu.bowel_fluid), within=below_dome)
    stomach, level = anatomy.stomach, anatomy.stomach_air_level
    canvas.paint(stomach, hu.muscle, within=below_dome)
    canvas.paint(
        stomach.scaled(0.9),
        lambda x, y, z: np.where(y > level, AIR_HU, hu.bowel_fluid - 10),
        within=below_dome,
    )


def _liver_and_tumours(canvas: Canvas, anatomy: Anatomy, liver_space: np.ndarray) -> None:
    hu = anatomy.hu
    parenchyma = lambda x, y, z: hu.liver + 4 * anatomy.liver_texture(x, y, z)  # noqa: E731
    for lobe in anatomy.liver:
        canvas.paint(lobe, parenchyma, label=LIVER, within=liver_space)
    for vessel in anatomy.liver_vessels:
        canvas.paint(vessel, hu.liver_vessels, label=None, over_label=LIVER)
    for tumour in anatomy.tumours:
        (outline, lesion_hu), *inner = tumour.layers
        canvas.paint(outline, lesion_hu, label=TUMOUR, over_label=LIVER)
        for layer, layer_hu in inner:
            canvas.paint(layer, layer_hu, label=None, over_label=TUMOUR)


def _other_organs(canvas: Canvas, anatomy: Anatomy, below_dome: np.ndarray, body_mask: np.ndarray) -> None:
    """Gallbladder, spleen, kidneys and the great vessels; they displace the liver where they meet."""
    hu = anatomy.hu
    if anatomy.gallbladder is not None:
        canvas.paint(anatomy.gallbladder, hu.bile, within=below_dome)
    canvas.paint(anatomy.spleen, hu.spleen, within=below_dome)
    for kidney in anatomy.kidneys:
        canvas.paint(kidney, hu.kidney_cortex, within=below_dome)
        canvas.paint(kidney.scaled(0.6), hu.kidney_medulla, within=below_dome)
        canvas.paint(kidney.scaled(0.25), hu.fat, within=below_dome)
    x, y = canvas.axes[0][:, None], canvas.axes[1][None, :]
    for (cx, cy, r), value in ((anatomy.aorta, hu.aorta), (anatomy.ivc, hu.ivc)):
        _extruded(canvas, _disc(x, y, (cx, cy), (r, r * 0.9)), value, body_mask)


def _chest(canvas: Canvas, anatomy: Anatomy, cavity: np.ndarray, dome: np.ndarray) -> None:
    """Diaphragm muscle, the heart resting on it and the lung bases around it."""
    hu = anatomy.hu
    z = canvas.axes[2][None, None, :]
    above = cavity & (z > dome)
    diaphragm = cavity & (z > dome - 4) & ~above
    canvas.hu[diaphragm] = hu.muscle
    canvas.label[diaphragm] = 0
    canvas.hu[above] = hu.lung
    canvas.label[above] = 0
    canvas.paint(anatomy.heart, hu.heart, within=above)


def _scanner(hu: np.ndarray, grid: CtGrid, noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    """Add noise, then blur image and noise together with the point-spread and slice profile."""
    sigma_mm = np.array([PSF_SIGMA_MM, PSF_SIGMA_MM, grid.spacing[2] / 2.355])  # slice FWHM = thickness
    sigma = sigma_mm / np.asarray(grid.spacing)
    impulse = np.zeros(9, np.float32)
    impulse[4] = 1
    # The blur shrinks white noise by the kernel's L2 norm; pre-scale so the result has noise_sd.
    gain = np.prod([np.linalg.norm(ndimage.gaussian_filter1d(impulse, s, truncate=3)) for s in sigma])
    noise = rng.standard_normal(hu.shape, np.float32)
    noise *= np.float32(noise_sd / gain)
    hu += noise
    del noise
    ndimage.gaussian_filter(hu, sigma, output=hu, truncate=3)
    np.rint(hu, out=hu)
    np.clip(hu, *HU_RANGE, out=hu)
    return hu.astype(np.int16)


def render(anatomy: Anatomy, grid: CtGrid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render one scan.

    Args:
        anatomy: the patient.
        grid: where and how finely to sample.
        rng: random source for the scanner noise.

    Returns:
        ``(image, label)`` in the grid's stored orientation, shape ``grid.shape`` reordered as
        stored: int16 HU and uint8 labels (0 background, 1 liver, 2 tumour).
    """
    canvas = Canvas.empty(grid)
    cavity, body_mask = _body(canvas, anatomy)
    x, y, z = canvas.axes
    dome = anatomy.diaphragm.height(x[:, None], y[None, :])[..., None]
    below_dome = cavity & (z[None, None, :] <= dome - 4)
    _chest(canvas, anatomy, cavity, dome)
    _abdomen(canvas, anatomy, below_dome)
    _liver_and_tumours(canvas, anatomy, below_dome)
    _other_organs(canvas, anatomy, below_dome, body_mask)
    _spine_and_muscles(canvas, anatomy, body_mask)
    _ribs(canvas, anatomy, cavity, body_mask)
    image = _scanner(canvas.hu, grid, anatomy.noise_sd, rng)
    return grid.orient(image), grid.orient(canvas.label)
