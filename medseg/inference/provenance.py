"""Provenance: what made a mask, recorded in each ``<name>_stats.json``, ``stats.csv`` and ``report.html``.

A run's record (:func:`run_provenance`) holds when it ran (UTC, ISO 8601), the versions of medseg, MONAI
and torch, the bundle's name and version (its ``metadata.json``), the SHA-256 of each weights file, the
options and the device. A scan's record (:func:`scan_geometry`) holds its size in voxels, its voxel
spacing (mm) and its orientation as axis codes: the patient direction each voxel axis points to, as
nibabel's ``aff2axcodes`` and DICOM write it (``LPS``: the first index grows towards the patient's left,
the second towards posterior, the third towards superior).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medseg import __version__
from medseg.bundles import Bundle
from medseg.devices import resolve_device
from medseg.inference.options import InferenceOptions
from medseg.io.fast_nifti import read_nifti


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hexadecimal digits."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def device_description(device: str) -> str:
    """The device a run uses: ``cpu``, or ``cuda:N`` with the GPU's name (``cuda:0 (NVIDIA H200)``).

    Raises:
        MedsegError: for an unknown device or CUDA on a machine without it.
    """
    name = resolve_device(device)
    if name == "cpu":
        return name
    import torch

    return f"{name} ({torch.cuda.get_device_name(name)})"


def run_provenance(
    bundle: Bundle,
    weights: Sequence[str | Path],
    *,
    device: str,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON-ready record of a run: date, versions, bundle, weights, options and device.

    Args:
        bundle: the bundle run.
        weights: the weights files (several for an ensemble), hashed here.
        device: the ``--device`` asked for (``auto`` is recorded as the device it chose).
        options: the run's options as JSON-ready values (see :func:`options_record`).
    """
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "medseg_version": __version__,
        "monai_version": version("monai"),
        "torch_version": version("torch"),
        "bundle": bundle.name,
        "bundle_version": bundle.metadata.get("version"),
        "weights": [str(path) for path in weights],
        "weights_sha256": [sha256(path) for path in weights],
        "device": device_description(device),
        "options": dict(options),
    }


def options_record(options: InferenceOptions, overrides: Mapping[str, Any], *, min_lesion_ml: float) -> dict[str, Any]:
    """A run's options as JSON-ready values.

    The inference options, less the ensemble's weights (the record lists the weights on their own), the
    config overrides (each value that JSON cannot hold given as its text) and the smallest lesion listed.
    """
    record: dict[str, Any] = {key: value for key, value in asdict(options).items() if key != "ensemble"}
    record["overrides"] = {key: _plain(value) for key, value in overrides.items()}
    record["min_lesion_ml"] = min_lesion_ml
    return record


def _plain(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def scan_geometry(scan: str | Path) -> dict[str, Any]:
    """A NIfTI scan's size (voxels, per spatial axis), channels, voxel spacing (mm) and orientation codes."""
    image = read_nifti(scan)
    shape = image.shape
    return {
        "size": [int(n) for n in shape[:3]],
        "channels": int(np.prod(shape[3:], dtype=int)),
        "spacing_mm": [round(float(v), 4) for v in np.linalg.norm(image.affine[:3, :3], axis=0)],
        "orientation": "".join(nib.aff2axcodes(image.affine)),
    }
