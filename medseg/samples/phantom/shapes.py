"""Implicit 3D shapes for the synthetic scans (CT phantom, brain tumours), evaluated on broadcast grids.

Every shape has a ``level(x, y, z)`` function that is negative inside and positive outside, and a
world bounding box so that it is only ever evaluated on the voxels it can touch. Coordinates are
millimetres in the phantom's RAS frame; ``x``, ``y`` and ``z`` are broadcastable arrays, typically of
shapes ``(X, 1, 1)``, ``(1, Y, 1)`` and ``(1, 1, Z)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Bounds = tuple[np.ndarray, np.ndarray]
Box = tuple[tuple[slice, ...], tuple[np.ndarray, ...]]


def box(axes: tuple[np.ndarray, np.ndarray, np.ndarray], bounds: Bounds) -> Box | None:
    """The voxels of a grid that lie inside ``bounds``.

    Args:
        axes: voxel-centre coordinates (mm) along x, y and z, each ascending, shapes ``(X,)``, ``(Y,)``, ``(Z,)``.
        bounds: ``(lo, hi)`` world box, each ``(3,)`` mm.

    Returns:
        Index slices into the ``(X, Y, Z)`` grid and the coordinates of those voxels as broadcastable
        ``(X', 1, 1)``, ``(1, Y', 1)``, ``(1, 1, Z')`` arrays; None if no voxel is inside.
    """
    slices, coords = [], []
    for axis, (lo, hi) in enumerate(zip(*bounds, strict=True)):
        ticks = axes[axis]
        start, stop = np.searchsorted(ticks, lo), np.searchsorted(ticks, hi, side="right")
        if start >= stop:
            return None
        slices.append(slice(int(start), int(stop)))
        coords.append(ticks[start:stop].reshape([-1 if a == axis else 1 for a in range(3)]))
    return tuple(slices), tuple(coords)


@dataclass(frozen=True)
class SmoothField:
    """A smooth random scalar field: a normalised sum of plane waves, values mostly in [-2, 2].

    Args:
        wavevectors: ``(K, 3)`` angular wave numbers in rad/mm.
        phases: ``(K,)`` phases in rad.
    """

    wavevectors: np.ndarray
    phases: np.ndarray

    @classmethod
    def random(
        cls, rng: np.random.Generator, *, terms: int = 4, wavelength_mm: tuple[float, float] = (40.0, 140.0)
    ) -> SmoothField:
        """Draw a field with ``terms`` waves of random direction and wavelength."""
        directions = rng.normal(size=(terms, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(*wavelength_mm, size=(terms, 1))
        return cls(2 * np.pi * directions / wavelengths, rng.uniform(0, 2 * np.pi, size=terms))

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Evaluate the field; the result broadcasts ``x``, ``y`` and ``z`` together (float32).

        Each wave is the real part of a product of one complex exponential per axis, so on grids
        given as ``(X, 1, 1)``, ``(1, Y, 1)``, ``(1, 1, Z)`` the cosine is never taken per voxel.
        """
        total = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z)), np.float32)
        for (kx, ky, kz), phase in zip(self.wavevectors, self.phases, strict=True):
            wave_x = np.exp(1j * (kx * np.asarray(x, np.float64) + phase)).astype(np.complex64)
            wave_y = np.exp(1j * ky * np.asarray(y, np.float64)).astype(np.complex64)
            wave_z = np.exp(1j * kz * np.asarray(z, np.float64)).astype(np.complex64)
            total += (wave_x * wave_y * wave_z).real
        return total * np.float32(np.sqrt(2.0 / len(self.phases)))


def rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """A random ``(3, 3)`` rotation made of turns of at most ``max_degrees`` about each axis."""
    rx, ry, rz = np.deg2rad(rng.uniform(-max_degrees, max_degrees, size=3))
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    turn_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    turn_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    turn_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return turn_z @ turn_y @ turn_x


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid whose surface is pushed in and out by a smooth random field.

    Args:
        centre: ``(3,)`` centre in mm.
        semi_axes: ``(3,)`` semi-axis lengths in mm, along the columns of ``rotation``.
        rotation: ``(3, 3)`` rotation whose columns are the ellipsoid's axes in the world.
        wobble: field that deforms the surface, or None for a plain ellipsoid.
        wobble_amplitude: how far the surface moves, as a fraction of the semi-axes.
    """

    centre: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray
    wobble: SmoothField | None = None
    wobble_amplitude: float = 0.0

    def bounds(self) -> Bounds:
        """World bounding box ``(lo, hi)``, each ``(3,)`` mm, that holds every inside point."""
        reach = np.abs(self.rotation) @ self.semi_axes * (1 + 2.5 * self.wobble_amplitude)
        return self.centre - reach, self.centre + reach

    def level(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Normalised radius minus one: ``<= 0`` inside; broadcast shape of the inputs, float32."""
        dx, dy, dz = (np.float32(c) for c in self.centre)
        x, y, z = x - dx, y - dy, z - dz
        squared = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z)), np.float32)
        for axis in range(3):
            r = self.rotation[:, axis] / self.semi_axes[axis]
            squared += (np.float32(r[0]) * x + np.float32(r[1]) * y + np.float32(r[2]) * z) ** 2
        level = np.sqrt(squared) - np.float32(1)
        if self.wobble is not None:
            level -= np.float32(self.wobble_amplitude) * self.wobble(x, y, z)
        return level

    def scaled(self, factor: float) -> Ellipsoid:
        """The same ellipsoid with every semi-axis multiplied by ``factor``."""
        return Ellipsoid(self.centre, self.semi_axes * factor, self.rotation, self.wobble, self.wobble_amplitude)


@dataclass(frozen=True)
class Capsule:
    """A tube of constant radius around a line segment (a vessel).

    Args:
        start: ``(3,)`` one end of the axis in mm.
        end: ``(3,)`` the other end in mm.
        radius: tube radius in mm.
    """

    start: np.ndarray
    end: np.ndarray
    radius: float

    def bounds(self) -> Bounds:
        """World bounding box ``(lo, hi)`` in mm."""
        return np.minimum(self.start, self.end) - self.radius, np.maximum(self.start, self.end) + self.radius

    def level(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Distance to the axis over the radius, minus one: ``<= 0`` inside (float32)."""
        axis = (self.end - self.start).astype(np.float32)
        length2 = np.float32(axis @ axis)
        px, py, pz = (
            x - np.float32(self.start[0]),
            y - np.float32(self.start[1]),
            z - np.float32(self.start[2]),
        )
        t = np.clip((px * axis[0] + py * axis[1] + pz * axis[2]) / length2, 0, 1)
        dist2 = (px - t * axis[0]) ** 2 + (py - t * axis[1]) ** 2 + (pz - t * axis[2]) ** 2
        return np.sqrt(dist2) / np.float32(self.radius) - np.float32(1)
