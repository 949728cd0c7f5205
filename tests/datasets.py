"""Builders of tiny datasets in each layout medseg discovers, from the small synthetic CT cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.io.nifti import write_nifti

LABELS = {"0": "background", "1": "liver", "2": "tumour"}


def tiny_cases(small_ct: Path, count: int = 4) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(id, image, label, affine)`` of the first cases, every second voxel kept (about 48 x 48 x 23)."""
    cases = []
    for index in range(count):
        name = f"liver_{index:03d}.nii.gz"
        image, label = nib.load(small_ct / "imagesTr" / name), nib.load(small_ct / "labelsTr" / name)
        affine = image.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
        cases.append(
            (f"case{index}", np.asarray(image.dataobj)[::2, ::2, ::2], np.asarray(label.dataobj)[::2, ::2, ::2], affine)
        )
    return cases


def channels_of(image: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` different-looking versions of a scan, like several MR sequences of one patient."""
    return [(image * (1 + 0.2 * c) + 30 * c).astype(np.float32) for c in range(count)]


def msd(root: Path, cases, channels: int = 1) -> Path:
    training = []
    for case_id, image, label, affine in cases:
        data = image if channels == 1 else np.stack(channels_of(image, channels), axis=-1)
        write_nifti(root / "imagesTr" / f"{case_id}.nii.gz", data, affine)
        write_nifti(root / "labelsTr" / f"{case_id}.nii.gz", label, affine)
        training.append({"image": f"./imagesTr/{case_id}.nii.gz", "label": f"./labelsTr/{case_id}.nii.gz"})
    modality = {str(c): f"MR{c}" for c in range(channels)} if channels > 1 else {"0": "CT"}
    description = {"name": "tiny", "modality": modality, "labels": LABELS, "training": training, "test": []}
    (root / "dataset.json").write_text(json.dumps(description))
    return root


def nnunet(root: Path, cases, channels: int = 2) -> Path:
    for case_id, image, label, affine in cases:
        for c, data in enumerate(channels_of(image, channels)):
            write_nifti(root / "imagesTr" / f"{case_id}_{c:04d}.nii.gz", data, affine)
        write_nifti(root / "labelsTr" / f"{case_id}.nii.gz", label, affine)
    description = {
        "channel_names": {str(c): f"CT{c}" for c in range(channels)},
        "labels": {name: int(value) for value, name in LABELS.items()},
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(description))
    return root


def folder_pairs(root: Path, cases, subfolders: bool = False) -> Path:
    for case_id, image, label, affine in cases:
        if subfolders:
            write_nifti(root / "images" / f"{case_id}.nii.gz", image, affine)
            write_nifti(root / "labels" / f"{case_id}.nii.gz", label, affine)
        else:
            write_nifti(root / f"{case_id}.nii.gz", image, affine)
            write_nifti(root / f"{case_id}_seg.nii.gz", label, affine)
    return root


def csv_table(root: Path, cases) -> Path:
    folder_pairs(root / "data", cases)
    with (root / "cases.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label"])
        for case_id, *_ in cases:
            writer.writerow([f"data/{case_id}.nii.gz", f"data/{case_id}_seg.nii.gz"])
    return root / "cases.csv"
