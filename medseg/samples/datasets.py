"""Embedded sample data written as Medical Segmentation Decathlon (MSD) datasets.

- ``ct``: synthetic abdominal CT with liver and tumour labels (:mod:`medseg.samples.phantom`);
- ``mri``: the real MNI152 T1 from nilearn and versions of it as other scanners would show it,
  with grey- and white-matter labels (:mod:`medseg.samples.mri_variants`);
- ``brats``: synthetic brain tumours inside the real MNI152 brain, four MR sequences per case in
  one 4D file, with BraTS 2021 labels (:mod:`medseg.samples.brain_tumour`).

Each dataset folder gets ``imagesTr/``, ``labelsTr/``, ``imagesTs/`` and ``dataset.json`` as the
MSD defines them, plus ``labelsTs/`` (test labels, for evaluation) and ``cases.json`` (what was
drawn for each case). Cases are rendered in parallel; each depends only on the dataset seed and
its index. The folder appears only when complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medseg.errors import MedsegError
from medseg.io.atomic import atomic_directory
from medseg.io.nifti import write_nifti
from medseg.samples import brain_tumour
from medseg.samples.phantom import PRESETS, make_case

CT_LABELS = {"0": "background", "1": "liver", "2": "tumour"}
MRI_LABELS = {"0": "background", "1": "grey matter", "2": "white matter"}
BRATS_LABELS = {"0": "background", "1": "necrotic tumour core", "2": "peritumoral oedema", "4": "enhancing tumour"}
Rendered = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]
SampleKind = Literal["ct", "mri", "brats"]


def case_count(kind: SampleKind, cases: int, test_cases: int | None = None) -> int:
    """How many cases ``write_<kind>_dataset`` writes: ``cases`` for training, and the test cases.

    The test cases default to a quarter of ``cases`` (at least 1), or for ``mri`` to every held-out check.

    Examples:
        >>> case_count("ct", 20), case_count("ct", 2), case_count("brats", 6, test_cases=0)
        (25, 3, 6)
    """
    if test_cases is not None:
        return cases + test_cases
    if kind == "mri":
        from medseg.samples.mri_variants import HELD_OUT

        return cases + len(HELD_OUT)
    return cases + max(1, cases // 4)


@dataclass(frozen=True)
class _Job:
    folder: Path
    name: str
    split: str  # "Tr" or "Ts"
    render: Callable[[], Rendered]


def _run(job: _Job) -> dict[str, Any]:
    image, label, affine, facts = job.render()
    file = f"{job.name}.nii.gz"
    write_nifti(job.folder / f"images{job.split}" / file, image, affine)
    write_nifti(job.folder / f"labels{job.split}" / file, label, affine)
    return {"image": f"./images{job.split}/{file}", "label": f"./labels{job.split}/{file}", **facts}


def _numbered_jobs(
    prefix: str, cases: int, test_cases: int | None, render: Callable[[int], Callable[[], Rendered]]
) -> Callable[[Path], list[_Job]]:
    """Jobs for cases ``prefix_000 ...``: ``cases`` training cases, then the test cases.

    ``test_cases`` defaults to a quarter of ``cases`` (at least 1); test cases take the indices after
    the training cases, so the two never share a patient.
    """
    if cases < 1:
        raise MedsegError(f"`cases` must be at least 1, got {cases}")
    if test_cases is not None and test_cases < 0:
        raise MedsegError(f"`test_cases` must not be negative, got {test_cases}")
    total = case_count("ct", cases, test_cases)

    def jobs(folder: Path) -> list[_Job]:
        return [_Job(folder, f"{prefix}_{i:03d}", "Tr" if i < cases else "Ts", render(i)) for i in range(total)]

    return jobs


def _write_msd(
    directory: str | Path,
    jobs: Callable[[Path], list[_Job]],
    description: dict[str, Any],
    workers: int | None,
    progress: Callable[[int], None] | None,
) -> Path:
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise MedsegError("already exists and is not an empty folder; choose a new output folder", target)
    with atomic_directory(target) as folder:
        (folder / "imagesTs").mkdir()
        records = []
        with ProcessPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
            for done, record in enumerate(pool.map(_run, jobs(folder)), start=1):
                records.append(record)
                if progress is not None:
                    progress(done)
        training = [r for r in records if r["image"].startswith("./imagesTr/")]
        test = [r["image"] for r in records if r["image"].startswith("./imagesTs/")]
        dataset = {
            "tensorImageSize": "3D",
            **description,
            "numTraining": len(training),
            "numTest": len(test),
            "training": [{"image": r["image"], "label": r["label"]} for r in training],
            "test": test,
        }
        (folder / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
        (folder / "cases.json").write_text(json.dumps(records, indent=2) + "\n")
    return target


def write_ct_dataset(
    directory: str | Path,
    *,
    cases: int = 20,
    test_cases: int | None = None,
    seed: int = 0,
    preset: str = "clinical",
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write a synthetic abdominal CT liver/tumour dataset.

    Args:
        directory: output folder; must not exist or be empty.
        cases: number of training cases.
        test_cases: number of test cases; defaults to a quarter of ``cases`` (at least 1). Test
            cases follow the training cases, so the two never share a patient.
        seed: dataset seed; case ``i`` depends only on ``(seed, i)``.
        preset: grid preset name (``clinical``, ``small`` or ``benchmark``).
        workers: processes to render with; defaults to the number of CPUs (at most 4).
        progress: called with the number of cases finished so far, after each case.
    """
    if preset not in PRESETS:
        raise MedsegError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    jobs = _numbered_jobs("liver", cases, test_cases, lambda i: _CtRender(seed, i, preset))
    description = {
        "name": "SyntheticLiverCT",
        "description": "Synthetic contrast-enhanced abdominal CT with liver and tumour labels",
        "reference": f"medseg sample-data ct, seed {seed}, preset {preset}",
        "licence": "CC0-1.0",
        "modality": {"0": "CT"},
        "labels": CT_LABELS,
    }
    return _write_msd(directory, jobs, description, workers, progress)


@dataclass(frozen=True)
class _CtRender:
    seed: int
    index: int
    preset: str

    def __call__(self) -> Rendered:
        case = make_case((self.seed, self.index), self.preset)
        facts = {
            "shape": list(case.image.shape),
            "spacing": [round(s, 4) for s in case.grid.spacing],
            "orientation": case.grid.orientation,
            "phase": case.anatomy.hu.phase,
            "tumour_diameters_mm": [round(t.diameter_mm, 1) for t in case.anatomy.tumours],
        }
        return case.image, case.label, case.grid.affine(), facts


@dataclass(frozen=True)
class _MriRender:
    seed: int
    index: int
    held_out: bool

    def __call__(self) -> Rendered:
        from medseg.samples.mni import load_template
        from medseg.samples.mri_variants import HELD_OUT, MriVariant, render_variant

        rng = np.random.default_rng((self.seed, self.index))
        if self.held_out:
            variant = HELD_OUT[self.index]
        elif self.index == 0:
            variant = MriVariant("template")
        else:
            variant = MriVariant.random(rng, f"variant_{self.index:03d}")
        image, label, affine = render_variant(load_template(), variant, rng)
        return image, label, affine, {"variant": variant.__dict__}


def write_mri_dataset(
    directory: str | Path,
    *,
    cases: int = 12,
    test_cases: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write the real MNI152 T1 brain with grey/white-matter labels, and versions of it.

    Training case 0 is the template itself (1 mm); the other training cases are random variants
    (:meth:`MriVariant.random`). The test cases are the fixed held-out checks (1.5 mm and 3 mm
    resampled, bias field, rotated 15 degrees), each labelled.

    Args:
        directory: output folder; must not exist or be empty.
        cases: number of training cases (the template plus ``cases - 1`` variants).
        test_cases: how many of the held-out checks to write, in the order above; default all.
        seed: seed of the random variants.
        workers: processes to render with; defaults to the number of CPUs (at most 4).
        progress: called with the number of cases finished so far.
    """
    from medseg.samples.mri_variants import HELD_OUT

    if cases < 1:
        raise MedsegError(f"`cases` must be at least 1, got {cases}")
    held_out = case_count("mri", cases, test_cases) - cases
    if not 0 <= held_out <= len(HELD_OUT):
        raise MedsegError(f"`test_cases` must be between 0 and {len(HELD_OUT)} (the held-out checks), got {held_out}")

    def jobs(folder: Path) -> list[_Job]:
        training = [_Job(folder, f"mni_{i:03d}", "Tr", _MriRender(seed, i, False)) for i in range(cases)]
        checks = enumerate(HELD_OUT[:held_out])
        test = [_Job(folder, f"mni_{v.name}", "Ts", _MriRender(seed, i, True)) for i, v in checks]
        return training + test

    description = {
        "name": "MNI152BrainTissue",
        "description": "The MNI152 2009a symmetric T1 template (nilearn) and resampled, turned, biased versions",
        "reference": "Fonov et al., NeuroImage 2011; templates as shipped by nilearn",
        "licence": "see the MNI ICBM 2009 licence (copyright McConnell Brain Imaging Centre)",
        "modality": {"0": "T1w"},
        "labels": MRI_LABELS,
    }
    return _write_msd(directory, jobs, description, workers, progress)


@dataclass(frozen=True)
class _BratsRender:
    seed: int
    index: int
    spacing: float

    def __call__(self) -> Rendered:
        scan = brain_tumour.make_case((self.seed, self.index), spacing_mm=self.spacing, name=f"brats_{self.index:03d}")
        return scan.image, scan.label, scan.affine, scan.facts()


def write_brats_dataset(
    directory: str | Path,
    *,
    cases: int = 16,
    test_cases: int | None = None,
    seed: int = 0,
    spacing: float = 2.0,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write a synthetic brain tumour MRI dataset in the layout of MSD Task01 (BrainTumour).

    Each image is one 4D NIfTI, channel last: FLAIR, T1w, t1gd, T2w (int16). Labels follow BraTS
    2021: 1 necrotic tumour core, 2 peritumoral oedema, 4 enhancing tumour (uint8). See
    :mod:`medseg.samples.brain_tumour` for how a case is drawn.

    Args:
        directory: output folder; must not exist or be empty.
        cases: number of training cases.
        test_cases: number of labelled test cases; defaults to a quarter of ``cases`` (at least 1).
        seed: dataset seed; case ``i`` depends only on ``(seed, i)`` (and ``spacing``).
        spacing: isotropic voxel size (mm).
        workers: processes to render with; defaults to the number of CPUs (at most 4).
        progress: called with the number of cases finished so far, after each case.
    """
    if spacing <= 0:
        raise MedsegError(f"`spacing` must be positive, got {spacing}")
    jobs = _numbered_jobs("brats", cases, test_cases, lambda i: _BratsRender(seed, i, spacing))
    description = {
        "name": "SyntheticBrainTumourMRI",
        "description": "Synthetic gliomas in the MNI152 2009a brain (nilearn): FLAIR, T1w, t1gd, T2w",
        "reference": f"medseg sample-data brats, seed {seed}, spacing {spacing} mm; Fonov et al., NeuroImage 2011",
        "licence": "see the MNI ICBM 2009 licence (copyright McConnell Brain Imaging Centre)",
        "tensorImageSize": "4D",
        "modality": {str(i): name for i, name in enumerate(brain_tumour.SEQUENCES)},
        "labels": BRATS_LABELS,
    }
    return _write_msd(directory, jobs, description, workers, progress)
