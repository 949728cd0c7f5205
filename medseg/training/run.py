"""``medseg train``: check a dataset, derive the run's bundle, and run its ``train.json``.

Steps, all before the first epoch:

1. discover the dataset and check every case (training refuses a dataset with errors);
2. fingerprint it and, unless told otherwise, derive the bundle's target spacing, patch size and
   CT normalisation from the fingerprint (:mod:`medseg.data.fingerprint`);
3. copy the bundle into the run folder with those values written into its configs, so that the
   run folder *is* a bundle: ``medseg infer RUN_FOLDER scan.nii.gz`` uses the same preprocessing;
4. pick the fold's training and validation cases (:mod:`medseg.data.splits`) and where to cache
   them (:mod:`medseg.data.caching`);
5. write the launch spec (:mod:`medseg.training.launch`): the data lists, device, seed, output
   folder and tracking as overrides, and medseg's handlers (history, progress bar);
6. run the run-bundle's ``train.json`` through ``monai.bundle`` from that spec, in this process or
   in ``nproc`` processes under ``torchrun`` with ``multi_gpu_train.json`` merged on top. The
   training loop is the bundle's own.

``resume=True`` skips steps 1-5: it continues the run in ``output`` from its last checkpoint with
the spec it was prepared with.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medseg import __version__
from medseg.bundles import Bundle, derive_bundle, top_level_values
from medseg.data.caching import cache_overrides, choose_cache, estimate_bytes, gpu_budget
from medseg.data.discover import discover
from medseg.data.fingerprint import Fingerprint, bundle_presets, fingerprint
from medseg.data.splits import fold_cases
from medseg.data.validate import DatasetReport, check_dataset
from medseg.devices import device_expression, resolve_device
from medseg.errors import MedsegError
from medseg.io.atomic import write_text
from medseg.training import handlers as medseg_handlers
from medseg.training.distributed import Launcher, run_torchrun
from medseg.training.launch import SPEC_FILE, LaunchSpec, run_spec
from medseg.training.resume import epochs_done, latest_checkpoint
from medseg.training.tracking import tracking_overrides
from medseg.weights import check_weights

PRESET_KEYS = ("spacing", "patch_size", "intensity")
PRESET_CHOICES = ("auto", "fingerprint", "bundle")


@dataclass(frozen=True)
class TrainResult:
    """Where a training run left its files.

    Args:
        bundle: the run folder, a complete bundle (configs, ``models/model.pt``, docs).
        best_weights: ``models/model.pt``, the weights with the best validation metric.
        history: ``history.csv``, one row per epoch.
    """

    bundle: Bundle
    best_weights: Path
    history: Path

    @property
    def output(self) -> Path:
        """The run folder."""
        return self.bundle.root


def default_output(bundle: Bundle) -> Path:
    """``runs/<bundle>-<date>-<time>`` in the current folder."""
    return Path("runs") / f"{bundle.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def checked_dataset(bundle: Bundle, data_dir: str | Path, say: Callable[[str], None]) -> DatasetReport:
    """Discover and check a dataset against the bundle's labels and channels; raise on errors."""
    dataset = discover(data_dir)
    report = check_dataset(
        dataset, labels={label.value for label in bundle.labels} or None, channels=bundle.input_channels
    )
    for problem in report.problems:
        say(str(problem))
    if report.errors:
        raise MedsegError(f"the dataset has {len(report.errors)} error(s), listed above; not training", data_dir)
    if len(dataset.training) < 2:
        raise MedsegError(f"training needs at least 2 labelled cases, found {len(dataset.training)}", data_dir)
    return report


def _presets(bundle: Bundle, fp: Fingerprint, mode: str, fine_tuning: bool) -> dict[str, Any]:
    """Settings from the fingerprint, never finer than the bundle's own spacing (its compute budget)."""
    if mode not in PRESET_CHOICES:
        raise MedsegError(f"`presets` must be one of {', '.join(PRESET_CHOICES)}, got {mode!r}")
    if mode == "bundle" or (mode == "auto" and fine_tuning):
        return {}
    defaults = top_level_values(bundle, "train", PRESET_KEYS)
    presets = bundle_presets(fp, defaults, bundle.modality)
    if "spacing" in presets:  # a bundle spacing <= 0 keeps each scan's own spacing on that axis, as MONAI does
        pairs = zip(presets["spacing"], defaults["spacing"], strict=True)
        presets["spacing"] = [own if own <= 0 else max(data, own) for data, own in pairs]
    return presets


def _versions() -> dict[str, str]:
    import monai
    import torch

    return {
        "medseg": __version__,
        "monai": monai.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _record(run_dir: Path, **facts: Any) -> None:
    facts |= {"versions": _versions(), "command": sys.argv}
    write_text(run_dir / "run.json", json.dumps(facts, indent=2, default=str) + "\n")


@dataclass(frozen=True)
class Preparation:
    """The settings of a new run (see :func:`train` for each)."""

    epochs: int | None = None
    fold: int = 0
    init_weights: str | Path | None = None
    presets: str = "auto"
    cache: str = "auto"
    cache_memory: int | None = None
    seed: int | None = None
    tracking: str = "tensorboard"
    progress: bool = False
    overrides: Mapping[str, Any] = field(default_factory=dict)
    handlers: Sequence[Mapping[str, Any]] = ()


def _prepare(
    bundle: Bundle, data_dir: str | Path, run_dir: Path, device: str, plan: Preparation, say: Callable[[str], None]
) -> LaunchSpec:
    """Steps 1-5 of the module docstring: check, fingerprint, derive the run bundle, split, cache; the spec."""
    if (run_dir / "configs").exists():
        raise MedsegError("already holds a training run; choose a new `output`, or `resume=True` it", run_dir)
    report = checked_dataset(bundle, data_dir, say)
    fp = fingerprint(report.stats)
    seed = {} if plan.seed is None else {"seed": plan.seed}
    values = {**_presets(bundle, fp, plan.presets, plan.init_weights is not None), **seed, **plan.overrides}
    tracking, tracking_config = tracking_overrides(plan.tracking, run_dir, bundle.name)
    dataset = report.dataset
    training, validation, splits = fold_cases(dataset.training, plan.fold, dataset_dir=dataset.root, output_dir=run_dir)
    spacing = {**top_level_values(bundle, "train", ["spacing"]), **values}.get("spacing", fp.target_spacing)
    estimate = estimate_bytes(fp, spacing, len(training) + len(validation))
    cache = choose_cache(
        estimate, run_dir / "cache", plan.cache_memory, gpu=gpu_budget(resolve_device(device)), kind=plan.cache
    )
    say(str(cache))
    # every option is checked by now: the run folder becomes a bundle only for a run that can start
    run_bundle = derive_bundle(bundle, run_dir, {k: v for k, v in values.items() if "#" not in k})
    write_text(run_dir / "fingerprint.json", json.dumps(fp.to_dict(), indent=2) + "\n")
    train_config = run_bundle.parsed("train").content
    cases = [c.as_dict() for c in training], [c.as_dict() for c in validation]
    config: dict[str, Any] = {
        **cache_overrides(cache, *cases, train_config["base_transforms"]),
        "ckpt_dir": str((run_dir / "models").resolve()),
        "output_dir": str(run_dir.resolve()),
        **medseg_handlers.checkpoint_entries(train_config),
        **medseg_handlers.atomic_checkpoints(train_config),
        **medseg_handlers.last_epoch_validation(train_config),
        **tracking_config,
        **seed,
        **plan.overrides,
    }
    if plan.epochs is not None:
        config["train#trainer#max_epochs"] = plan.epochs
    display, handlers = _trainer_handlers(plan, run_dir, train_config)
    _record(
        run_dir,
        bundle=str(bundle.root),
        data=str(Path(data_dir).resolve()),
        fold=plan.fold,
        splits=str(splits),
        train_cases=[c.id for c in training],
        validation_cases=[c.id for c in validation],
        presets=values,
        seed=top_level_values(run_bundle, "train", ["seed"]).get("seed"),
        epochs=plan.epochs,
        device=device,
        init_weights=str(plan.init_weights) if plan.init_weights else None,
        cache=str(cache),
        tracking=plan.tracking,
    )
    return LaunchSpec(str(run_bundle.root.resolve()), ["train"], {**config, **display}, handlers, tracking)


def _trainer_handlers(
    plan: Preparation, run_dir: Path, train_config: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The trainer handlers medseg adds (starting weights, history, progress bar, the caller's), their overrides."""
    handlers: list[dict[str, Any]] = []
    if plan.init_weights is not None:
        handlers.append(medseg_handlers.init_weights_handler(check_weights(plan.init_weights).resolve()))
    handlers.append(medseg_handlers.history_handler((run_dir / "history.csv").resolve()))
    overrides: dict[str, Any] = {}
    if plan.progress:
        overrides, bar = medseg_handlers.progress_bar(train_config)
        handlers.append(bar)
    return overrides, [*handlers, *map(dict, plan.handlers)]


def _resumed(run_dir: Path, data_dir: str | Path, epochs: int | None) -> LaunchSpec:
    """The spec of the run in ``run_dir``, set to continue from its last checkpoint."""
    spec_path = run_dir / SPEC_FILE
    if not spec_path.is_file():
        raise MedsegError(f"`resume=True`: no prepared training run here ({SPEC_FILE} is missing)", run_dir)
    facts = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    if Path(data_dir).resolve() != Path(facts["data"]):
        raise MedsegError(f"`resume=True`: this run trains on {facts['data']}, not on the `data` given", data_dir)
    spec = LaunchSpec.load(spec_path)
    checkpoint = latest_checkpoint(run_dir / "models")
    planned = spec.overrides.get("train#trainer#max_epochs") or _bundle_epochs(Bundle(Path(spec.bundle)))
    if epochs is not None and epochs != planned:
        raise MedsegError(
            f"`resume=True` continues the {planned} epochs the run's learning-rate schedule was made for; "
            "to train longer, start a new run from its weights (`weights=RUN/models/model.pt`)"
        )
    done = epochs_done(checkpoint)
    if done >= planned:
        raise MedsegError(f"`resume=True`: the run has finished its {planned} epochs", run_dir)
    facts.setdefault("resumed", []).append({"from": str(checkpoint), "epochs_done": done, "command": sys.argv})
    write_text(run_dir / "run.json", json.dumps(facts, indent=2, default=str) + "\n")
    spec.resume_from = str(checkpoint.resolve())
    return spec


def _bundle_epochs(bundle: Bundle) -> int:
    return int(bundle.parsed("train").content["train"]["trainer"]["max_epochs"])


def _placed(spec: LaunchSpec, device: str, launcher: Launcher | None) -> LaunchSpec:
    """The spec with the configs and device for one process, or for ``torchrun``'s processes.

    Under ``torchrun`` each process takes the GPU of its local rank (``multi_gpu_train.json``), so
    the device is left to the config unless it is the CPU.
    """
    overrides = {k: v for k, v in spec.overrides.items() if k != "device"}
    if launcher is None:
        return replace(spec, configs=["train"], overrides={**overrides, "device": device_expression(device)})
    name = resolve_device(device)
    if name != "cpu" and device.strip().lower() not in ("auto", "cuda"):
        raise MedsegError(f"`nproc` runs one process per GPU; use `device='cuda'` (or auto), not {device!r}")
    cpu = {"device": device_expression("cpu")} if name == "cpu" else {}
    return replace(spec, configs=["train", "multi_gpu_train"], overrides={**overrides, **cpu})


def train(
    bundle: Bundle,
    data_dir: str | Path,
    *,
    output: str | Path | None = None,
    epochs: int | None = None,
    device: str = "auto",
    fold: int = 0,
    init_weights: str | Path | None = None,
    presets: str = "auto",
    cache: str = "auto",
    cache_memory: int | None = None,
    seed: int | None = None,
    tracking: str = "tensorboard",
    progress: bool = False,
    overrides: Mapping[str, Any] | None = None,
    handlers: Sequence[Mapping[str, Any]] = (),
    launcher: Launcher | None = None,
    resume: bool = False,
    say: Callable[[str], None] = print,
) -> TrainResult:
    """Train a bundle on a dataset, or resume a run.

    Args:
        bundle: the bundle whose ``train.json`` runs.
        data_dir: dataset folder or CSV (see :func:`medseg.data.discover.discover`).
        output: run folder; defaults to :func:`default_output`. It must not hold a run already,
            unless ``resume``.
        epochs: overrides ``train#trainer#max_epochs``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        fold: cross-validation fold (see :mod:`medseg.data.splits`).
        init_weights: start from these weights (fine-tuning) instead of a random initialisation.
        presets: ``fingerprint`` (spacing, patch size and CT normalisation from the data),
            ``bundle`` (the bundle's own values) or ``auto`` (fingerprint, except when fine-tuning).
        cache: ``auto``, ``gpu``, ``memory`` or ``disk`` (see :mod:`medseg.data.caching`).
        cache_memory: memory budget in bytes for caching preprocessed cases; default half the
            available memory.
        seed: the seed of every random generator (the bundle's ``seed``).
        tracking: ``tensorboard`` (always written, in ``RUN/tensorboard``) or ``mlflow`` (as well).
        progress: show a progress bar instead of per-iteration log lines.
        overrides: further config overrides (e.g. ``{"learning_rate": 1e-4}``); top-level keys are
            also written into the run's configs.
        handlers: further trainer handlers (config dicts).
        launcher: run under ``torchrun`` in several processes (and nodes); None trains in this process.
        resume: continue the run in ``output`` from its last checkpoint, with the settings it was
            prepared with; only ``device`` and ``launcher`` may change.
        say: where progress messages go.

    Returns:
        The run folder (a bundle), its best weights and its per-epoch history.
    """
    if epochs is not None and epochs < 1:
        raise MedsegError(f"`epochs` must be at least 1, got {epochs}")
    if resume and output is None:
        raise MedsegError("`resume=True` needs `output`: the run folder to continue")
    run_dir = Path(output) if output is not None else default_output(bundle)
    if resume:
        spec = _resumed(run_dir, data_dir, epochs)
    else:
        plan = Preparation(
            epochs=epochs,
            fold=fold,
            init_weights=init_weights,
            presets=presets,
            cache=cache,
            cache_memory=cache_memory,
            seed=seed,
            tracking=tracking,
            progress=progress,
            overrides=overrides or {},
            handlers=handlers,
        )
        spec = _prepare(bundle, data_dir, run_dir, device, plan, say)
    spec = _placed(spec, device, launcher)
    spec_path = spec.save(run_dir / SPEC_FILE)
    if launcher is None:
        run_spec(spec)
    else:
        say(f"launching {launcher.nproc} training processes: {' '.join(launcher.command(spec_path))}")
        run_torchrun(launcher, spec_path)
    run_bundle = Bundle(Path(spec.bundle))
    return TrainResult(run_bundle, run_bundle.weights, run_dir / "history.csv")
