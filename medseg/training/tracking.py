"""Experiment tracking of a training run: TensorBoard always (in the bundle's configs), MLflow when asked.

MLflow goes through MONAI's own ``ConfigWorkflow(tracking="mlflow")``, which adds an
``MLFlowHandler`` to the trainer and the validator (on rank 0 only). medseg points it at a SQLite
store inside the run folder (MLflow keeps the artifacts beside it), names the experiment after the
bundle and the run after its folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from medseg.errors import MedsegError

TRACKING_CHOICES = ("tensorboard", "mlflow")


def tracking_overrides(tracking: str, run_dir: Path, bundle_name: str) -> tuple[str | None, dict[str, Any]]:
    """The ``ConfigWorkflow`` tracking argument and the config overrides for ``--tracking``.

    Raises:
        MedsegError: for an unknown choice, or MLflow asked for but not installed.
    """
    if tracking not in TRACKING_CHOICES:
        raise MedsegError(f"`tracking` must be one of {', '.join(TRACKING_CHOICES)}, got {tracking!r}")
    if tracking == "tensorboard":
        return None, {}
    if importlib.util.find_spec("mlflow") is None:
        raise MedsegError("`tracking='mlflow'` needs MLflow: pip install 'medseg[mlflow]'")
    store = run_dir.resolve() / "mlflow" / "mlruns.db"
    store.parent.mkdir(parents=True, exist_ok=True)
    return "mlflow", {
        "tracking_uri": f"sqlite:///{store}",
        "experiment_name": bundle_name,
        "run_name": run_dir.resolve().name,
    }
