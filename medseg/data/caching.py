"""Choose where a training run caches its preprocessed cases: in memory, or on disk when they won't fit.

MONAI's ``CacheDataset`` keeps every preprocessed case in RAM, which is fastest but kills a run
whose data outgrow the machine. ``PersistentDataset`` writes them to disk once and reads them
back. The choice is made from the fingerprint before training starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.data.fingerprint import Fingerprint

BYTES_PER_VOXEL_CHANNEL = 4  # MONAI keeps images and labels as float32 after resampling
DEFAULT_BUDGET_FRACTION = 0.5


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class CacheChoice:
    """Where preprocessed cases are cached.

    Args:
        kind: ``"memory"`` or ``"disk"``.
        estimate: bytes the cached cases are expected to take.
        budget: bytes allowed in memory.
        directory: the disk cache folder (``kind == "disk"``).
    """

    kind: str
    estimate: int
    budget: int
    directory: Path | None = None

    def __str__(self) -> str:
        sizes = f"about {self.estimate / 1e9:.1f} GB for a {self.budget / 1e9:.1f} GB memory budget"
        where = "in memory" if self.kind == "memory" else f"on disk in {self.directory}"
        return f"caching preprocessed cases {where} ({sizes})"


def estimate_bytes(fp: Fingerprint, spacing: list[float], cases: int) -> int:
    """Expected size of ``cases`` preprocessed cases (image channels plus label) at ``spacing``."""
    voxels = np.prod(np.asarray(fp.shape_median) * np.asarray(fp.spacing_median) / np.asarray(spacing))
    return int(voxels * (fp.channels + 1) * BYTES_PER_VOXEL_CHANNEL * cases)


def choose_cache(estimate: int, cache_dir: Path, budget: int | None = None) -> CacheChoice:
    """Memory if ``estimate`` fits ``budget`` (default: half the available memory), else disk."""
    allowed = budget if budget is not None else int(available_memory() * DEFAULT_BUDGET_FRACTION)
    if estimate <= allowed:
        return CacheChoice("memory", estimate, allowed)
    return CacheChoice("disk", estimate, allowed, cache_dir)


def cache_overrides(choice: CacheChoice, train: list[dict[str, Any]], val: list[dict[str, Any]]) -> dict[str, Any]:
    """Config overrides that put the train and validation datasets where ``choice`` says."""
    if choice.kind == "memory":
        return {"train#dataset#data": train, "validate#dataset#data": val}
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
