"""Embedded sample data written as Medical Segmentation Decathlon (MSD) datasets."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from medseg.data.phantom import PRESETS, make_case
from medseg.errors import MedsegError
from medseg.io.atomic import atomic_directory
from medseg.io.nifti import write_nifti

CT_LABELS = {"0": "background", "1": "liver", "2": "tumour"}


@dataclass(frozen=True)
class _CtJob:
    folder: Path
    seed: int
    index: int
    preset: str
    split: str  # "Tr" or "Ts"

    @property
    def name(self) -> str:
        return f"liver_{self.index:03d}.nii.gz"


def _write_ct_case(job: _CtJob) -> dict[str, object]:
    case = make_case((job.seed, job.index), job.preset)
    affine = case.grid.affine()
    write_nifti(job.folder / f"images{job.split}" / job.name, case.image, affine)
    write_nifti(job.folder / f"labels{job.split}" / job.name, case.label, affine)
    return {
        "image": f"./images{job.split}/{job.name}",
        "label": f"./labels{job.split}/{job.name}",
        "shape": list(case.image.shape),
        "spacing": [round(s, 4) for s in case.grid.spacing],
        "orientation": case.grid.orientation,
        "phase": case.anatomy.hu.phase,
        "tumour_diameters_mm": [round(t.diameter_mm, 1) for t in case.anatomy.tumours],
    }


def _empty_or_missing(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise MedsegError("already exists and is not an empty folder; choose a new output folder", directory)


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
    """Write a synthetic abdominal CT liver/tumour dataset in MSD layout.

    The folder gets ``imagesTr/``, ``labelsTr/``, ``imagesTs/`` and ``dataset.json`` as the MSD
    defines them, plus ``labelsTs/`` (the test labels, for evaluation) and ``cases.json`` (what was
    drawn for each case). Case ``i`` depends only on ``(seed, i)``, and test cases follow the
    training cases, so the two never share a patient. The folder appears only when complete.

    Args:
        directory: output folder; must not exist or be empty.
        cases: number of training cases.
        test_cases: number of test cases; defaults to a quarter of ``cases`` (at least 1).
        seed: dataset seed.
        preset: grid preset name (``clinical``, ``small`` or ``benchmark``).
        workers: processes to render with; defaults to the number of CPUs (at most 4).
        progress: called with the number of cases finished so far, after each case.

    Returns:
        The dataset folder.
    """
    if preset not in PRESETS:
        raise MedsegError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if cases < 1:
        raise MedsegError(f"--cases must be at least 1, got {cases}")
    target = Path(directory)
    _empty_or_missing(target)
    n_test = max(1, cases // 4) if test_cases is None else test_cases
    with atomic_directory(target) as folder:
        jobs = [_CtJob(folder, seed, i, preset, "Tr") for i in range(cases)]
        jobs += [_CtJob(folder, seed, cases + i, preset, "Ts") for i in range(n_test)]
        records = []
        with ProcessPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
            for done, record in enumerate(pool.map(_write_ct_case, jobs), start=1):
                records.append(record)
                if progress is not None:
                    progress(done)
        training, test = records[:cases], records[cases:]
        dataset = {
            "name": "SyntheticLiverCT",
            "description": "Synthetic contrast-enhanced abdominal CT with liver and tumour labels",
            "reference": f"medseg sample-data ct, seed {seed}, preset {preset}",
            "licence": "CC0-1.0",
            "tensorImageSize": "3D",
            "modality": {"0": "CT"},
            "labels": CT_LABELS,
            "numTraining": cases,
            "numTest": n_test,
            "training": [{"image": r["image"], "label": r["label"]} for r in training],
            "test": [r["image"] for r in test],
        }
        (folder / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
        (folder / "cases.json").write_text(json.dumps(records, indent=2) + "\n")
    return target
