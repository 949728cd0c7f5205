"""Choose where a training run caches its preprocessed cases: on the GPU, in memory, or on disk.

MONAI's ``CacheDataset`` keeps every preprocessed case in RAM, which is fast but kills a run
whose data outgrow the machine. ``PersistentDataset`` writes them to disk once and reads them
back. On a CUDA device, cases that fit a quarter of the free GPU memory are cached there instead
(``ToDeviced`` at the end of the deterministic transforms, ``ThreadDataLoader``), so the random
augmentations run on the GPU and no batch crosses the PCIe bus. The choice is made from the
fingerprint before training starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.data.fingerprint import Fingerprint
from medseg.errors import MedsegError
from medseg.memory import available_memory

BYTES_PER_VOXEL_CHANNEL = 4  # MONAI keeps images and labels as float32 after resampling
DEFAULT_BUDGET_FRACTION = 0.5
GPU_BUDGET_FRACTION = 0.25  # the rest is for the network, its activations and the optimiser
CACHE_CHOICES = ("auto", "gpu", "memory", "disk")


def gpu_budget(device: str) -> int | None:
    """Bytes of a CUDA device's free memory that caching may use; None for the CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free * GPU_BUDGET_FRACTION)


@dataclass(frozen=True)
class CacheChoice:
    """Where preprocessed cases are cached.

    Args:
        kind: ``"gpu"``, ``"memory"`` or ``"disk"``.
        estimate: bytes the cached cases are expected to take.
        budget: bytes allowed on the GPU (``kind == "gpu"``) or in memory.
        directory: the disk cache folder (``kind == "disk"``).
    """

    kind: str
    estimate: int
    budget: int
    directory: Path | None = None

    def __str__(self) -> str:
        memory = "GPU memory" if self.kind == "gpu" else "memory"
        sizes = f"about {self.estimate / 1e9:.1f} GB for a {self.budget / 1e9:.1f} GB {memory} budget"
        where = {"gpu": "on the GPU", "memory": "in memory"}.get(self.kind, f"on disk in {self.directory}")
        return f"caching preprocessed cases {where} ({sizes})"


def estimate_bytes(fp: Fingerprint, spacing: list[float], cases: int) -> int:
    """Expected size of ``cases`` preprocessed cases (image channels plus label) at ``spacing``.

    A spacing entry that is not positive keeps that axis's own spacing, as ``Spacingd``'s ``-1`` does.
    """
    median = np.asarray(fp.spacing_median)
    target = np.asarray(spacing, dtype=float)
    target = np.where(target > 0, target, median)
    voxels = np.prod(np.asarray(fp.shape_median) * median / target)
    return int(voxels * (fp.channels + 1) * BYTES_PER_VOXEL_CHANNEL * cases)


def choose_cache(
    estimate: int, cache_dir: Path, budget: int | None = None, *, gpu: int | None = None, kind: str = "auto"
) -> CacheChoice:
    """Where to cache ``estimate`` bytes of preprocessed cases.

    Args:
        estimate: expected size of the cached cases.
        cache_dir: the disk cache folder.
        budget: memory budget; default half the available memory.
        gpu: GPU memory budget (see :func:`gpu_budget`), None when training on the CPU.
        kind: ``auto`` (the GPU if the cases fit its budget, else memory if they fit that, else
            disk) or a forced ``gpu``, ``memory`` or ``disk``.

    Raises:
        MedsegError: for an unknown ``kind``, or ``gpu`` without a CUDA device.
    """
    if kind not in CACHE_CHOICES:
        raise MedsegError(f"`cache` must be one of {', '.join(CACHE_CHOICES)}, got {kind!r}")
    if kind == "gpu" and gpu is None:
        raise MedsegError("`cache='gpu'` needs a CUDA device")
    if kind == "gpu" or (kind == "auto" and gpu is not None and estimate <= gpu):
        assert gpu is not None
        return CacheChoice("gpu", estimate, gpu)
    allowed = budget if budget is not None else int(available_memory() * DEFAULT_BUDGET_FRACTION)
    if kind == "memory" or (kind == "auto" and estimate <= allowed):
        return CacheChoice("memory", estimate, allowed)
    return CacheChoice("disk", estimate, allowed, cache_dir)


def on_device(base_transforms: list[Any]) -> dict[str, Any]:
    """Overrides that cache on the training device: ``ToDeviced`` after the deterministic transforms.

    Args:
        base_transforms: the bundle's ``base_transforms`` (cached by ``CacheDataset``).
    """
    to_device = {"_target_": "ToDeviced", "keys": ["image", "label"], "device": "@device"}
    overrides: dict[str, Any] = {"base_transforms": [*base_transforms, to_device]}
    for stage in ("train", "validate"):  # CUDA tensors cannot cross into worker processes
        overrides |= {f"{stage}#dataloader#_target_": "ThreadDataLoader", f"{stage}#dataloader#num_workers": 0}
    return overrides


def cache_overrides(
    choice: CacheChoice, train: list[dict[str, Any]], val: list[dict[str, Any]], base_transforms: list[Any]
) -> dict[str, Any]:
    """Config overrides that put the train and validation datasets where ``choice`` says.

    Args:
        choice: where to cache.
        train: training cases.
        val: validation cases.
        base_transforms: the bundle's deterministic transforms (``base_transforms``).
    """
    data = {"train#dataset#data": train, "validate#dataset#data": val}
    if choice.kind == "gpu":
        return {**data, **on_device(base_transforms)}
    if choice.kind == "memory":
        return data
    assert choice.directory is not None
    return {
        f"{stage}#dataset": {
            "_target_": "PersistentDataset",
            "data": data,
            "transform": f"@{stage}#preprocessing",
            "cache_dir": str(choice.directory / stage),
        }
        for stage, data in (("train", train), ("validate", val))
    }
