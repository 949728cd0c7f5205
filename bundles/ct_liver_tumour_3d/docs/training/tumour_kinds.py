"""What a model calls each kind of synthetic liver tumour: tumour, liver or background.

The phantom draws every tumour as hypodense, hyperdense, or rim-enhancing (a hypodense core inside a
shell 0-30 HU brighter than the liver, where the label covers the shell). This script redraws each
held-out patient's anatomy from its dataset seed, finds each tumour's connected component in the
reference label, and counts what the model's mask calls that component's voxels::

    medseg sample-data ct HELD --cases 10 --test-cases 0 --seed 20261201
    medseg evaluate ct_liver_tumour_3d --data HELD -o OUT
    python tumour_kinds.py [--shells] --run 20261201 HELD OUT/masks [--run SEED HELD MASKS ...]

A component that holds tumours of more than one kind is listed, and left out of the summary by kind.
``--shells`` also prints, per seed, the tumour Dice of the reference with every rim shell called liver.
"""

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.affines import apply_affine
from scipy import ndimage

from medseg.samples.phantom import PRESETS, random_anatomy, random_grid
from medseg.samples.phantom.anatomy import Anatomy, Tumour
from medseg.samples.phantom.grid import CtGrid
from medseg.samples.phantom.render import LIVER, TUMOUR
from medseg.samples.phantom.shapes import box

CALLED = {"tumour": TUMOUR, "liver": LIVER, "background": 0}


@dataclass(frozen=True)
class Component:
    """One connected tumour of a reference label and what a mask calls it.

    Args:
        case: the scan's name.
        kinds: the appearance of each tumour inside it (``"hypo"``, ``"hyper"`` or ``"rim"``).
        diameters_mm: each tumour's mean diameter.
        ml: the component's volume.
        called: fraction of its voxels the mask calls tumour, liver and background.
    """

    case: str
    kinds: tuple[str, ...]
    diameters_mm: tuple[float, ...]
    ml: float
    called: dict[str, float]


def appearance(tumour: Tumour) -> str:
    """``"rim"`` for a rim-enhancing tumour, else its contrast to the liver (``"hypo"``/``"hyper"``)."""
    return "rim" if tumour.rim_enhancing else tumour.kind


@dataclass(frozen=True)
class Patient:
    """One held-out case with the anatomy and grid its seed draws.

    Args:
        case: the scan's name.
        anatomy: the phantom's patient.
        grid: the scan's grid.
        label: ``(X, Y, Z)`` reference label as stored.
    """

    case: str
    anatomy: Anatomy
    grid: CtGrid
    label: np.ndarray


def patients(seed: int, held: Path) -> Iterator[Patient]:
    """Each case of a clinical-preset dataset that ``medseg sample-data ct --seed SEED`` wrote to ``held``.

    Raises:
        ValueError: when a redrawn anatomy is not the one the dataset holds (another seed or preset).
    """
    for index, entry in enumerate(json.loads((held / "cases.json").read_text())):
        case = Path(entry["image"]).name.removesuffix(".nii.gz")
        rng = np.random.default_rng((seed, index))
        anatomy = random_anatomy(rng)
        grid = random_grid(rng, anatomy, PRESETS["clinical"])
        drawn = [round(t.diameter_mm, 1) for t in anatomy.tumours]
        if drawn != entry["tumour_diameters_mm"] or list(grid.shape) != entry["shape"]:
            raise ValueError(
                f"{case}: seed {seed} draws tumours of {drawn} mm, the dataset has {entry['tumour_diameters_mm']} mm"
            )
        yield Patient(case, anatomy, grid, np.asarray(nib.load(held / entry["label"]).dataobj))


def components(patient: Patient, mask: np.ndarray) -> list[Component]:
    """The patient's tumour components, and what ``mask`` (``(X, Y, Z)``, the label's grid) calls each."""
    grid = patient.grid
    numbered, _ = ndimage.label(patient.label == TUMOUR)
    to_voxel = np.linalg.inv(grid.affine())
    found: dict[int, list[Tumour]] = {}
    for tumour in patient.anatomy.tumours:
        world = np.asarray(tumour.layers[0][0].centre) + np.asarray(grid.offset)
        voxel = tuple(np.round(apply_affine(to_voxel, world)).astype(int))
        inside = all(0 <= v < n for v, n in zip(voxel, numbered.shape, strict=True))
        if inside and numbered[voxel]:  # a tumour beyond the scanned slab has no component
            found.setdefault(int(numbered[voxel]), []).append(tumour)
    voxel_ml = float(np.prod(grid.spacing)) / 1000
    rows = []
    for number, tumours in sorted(found.items()):
        called = mask[numbered == number]
        rows.append(
            Component(
                patient.case,
                tuple(appearance(t) for t in tumours),
                tuple(round(t.diameter_mm, 1) for t in tumours),
                called.size * voxel_ml,
                {name: float(np.mean(called == value)) for name, value in CALLED.items()},
            )
        )
    return rows


def shells(patient: Patient) -> np.ndarray:
    """``(X, Y, Z)`` the labelled tumour voxels that lie in a rim-enhancing tumour's shell, outside its core."""
    axes = patient.grid.axes_mm()
    found = np.zeros(patient.label.shape, bool)  # canonical voxel order until the end
    for t in patient.anatomy.tumours:
        if not t.rim_enhancing:
            continue
        (outline, _), (core, _), *_ = t.layers
        inside = box(axes, outline.bounds())
        if inside is not None:  # None: the tumour lies beyond the scanned slab
            slices, (x, y, z) = inside
            found[slices] |= (outline.level(x, y, z) <= 0) & (core.level(x, y, z) > 0)
    return patient.grid.orient(found) & (patient.label == TUMOUR)


def blind_to_shells(patient: Patient) -> float | None:
    """Tumour Dice of the reference itself with every rim-enhancing shell called liver; None without tumour.

    A bound on what a model that cannot see the shells at all would score on this patient.
    """
    tumour = int(np.sum(patient.label == TUMOUR))
    if not tumour:
        return None
    seen = tumour - int(shells(patient).sum())
    return 2 * seen / (seen + tumour)


def read_mask(masks: Path, patient: Patient) -> np.ndarray:
    """``(X, Y, Z)`` the patient's mask as ``medseg evaluate`` writes it to ``masks``."""
    return np.asarray(nib.load(masks / f"{patient.case}_seg.nii.gz").dataobj)


def summary(rows: list[Component]) -> dict[str, dict[str, float]]:
    """Per kind, over components of that kind alone: count, volume, and the volume-weighted fractions."""
    table = {}
    for kind in ("hypo", "hyper", "rim"):
        alike = [r for r in rows if set(r.kinds) == {kind}]
        volume = sum(r.ml for r in alike)
        if alike:
            table[kind] = {"count": len(alike), "ml": volume} | {
                name: sum(r.called[name] * r.ml for r in alike) / volume for name in CALLED
            }
    return table


def main() -> None:
    """Print each component, then the summary by kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs=3, action="append", required=True, metavar=("SEED", "HELD", "MASKS"))
    parser.add_argument("--shells", action="store_true", help="also each seed's bound blind to rim shells")
    args = parser.parse_args()
    rows: list[Component] = []
    for seed, held, masks in args.run:
        bounds = []
        for patient in patients(int(seed), Path(held)):  # one read of each label serves both
            rows += components(patient, read_mask(Path(masks), patient))
            if args.shells and (bound := blind_to_shells(patient)) is not None:
                bounds.append(bound)
        if args.shells:
            print(f"seed {seed}: tumour Dice {np.mean(bounds):.3f} with every rim shell called liver")
    for r in rows:
        called = "  ".join(f"{k} {v:.2f}" for k, v in r.called.items())
        print(f"{r.case}  {'+'.join(r.kinds):<10} {list(r.diameters_mm)!s:<20} {r.ml:7.2f} mL  {called}")
    print("\nkind   tumours   mL     called tumour  liver  background  (volume-weighted)")
    for kind, s in summary(rows).items():
        fractions = f"{s['tumour']:.2f}          {s['liver']:.2f}   {s['background']:.2f}"
        print(f"{kind:<6} {s['count']:>6} {s['ml']:7.1f}   {fractions}")


if __name__ == "__main__":
    main()
