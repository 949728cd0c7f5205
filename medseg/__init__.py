"""medseg: medical image segmentation on MONAI.

The Python API (:mod:`medseg.api`), the same functions the ``medseg`` command runs:

- :func:`segment` scans with a bundle, into masks that open in 3D Slicer;
- :func:`train` a bundle on a dataset (the run folder becomes a bundle);
- :func:`evaluate` a bundle on a dataset's labelled cases (Dice, HD95);
- :func:`find_bundle` by name or folder;
- :func:`check_dataset` before training, and fingerprint it.

Also :class:`InferenceOptions` (how :func:`segment` runs) and :class:`Launcher` (several training
processes). They are imported on first use, so that ``import medseg`` does not import MONAI or torch.

Examples:
    >>> import medseg
    >>> report = medseg.segment("ct_liver_tumour_3d", ["scan.nii.gz"], "out")  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from medseg.api import check_dataset, evaluate, find_bundle, segment, train
    from medseg.inference.options import InferenceOptions
    from medseg.training.distributed import Launcher

# Each public name and the module it lives in, imported on first access (PEP 562).
_LAZY = {
    "segment": "medseg.api",
    "train": "medseg.api",
    "evaluate": "medseg.api",
    "find_bundle": "medseg.api",
    "check_dataset": "medseg.api",
    "InferenceOptions": "medseg.inference.options",
    "Launcher": "medseg.training.distributed",
}
__all__ = ["InferenceOptions", "Launcher", "check_dataset", "evaluate", "find_bundle", "segment", "train"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'medseg' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
