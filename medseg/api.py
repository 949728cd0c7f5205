"""medseg's Python API: the functions that ``import medseg`` gives, and the ``medseg`` command calls.

Each function takes a bundle by name (``"ct_liver_tumour_3d"``), by folder, or as a
:class:`~medseg.bundles.Bundle`, and runs the library code that does the work; the command line
adds only its options' parsing and its display. A bundle is code: a folder outside medseg's bundle
folders runs only with ``trust=True`` (see :mod:`medseg.trust`); a ``Bundle`` object is taken as
trusted, since its caller chose the folder.

Problems a caller can fix raise :class:`~medseg.errors.MedsegError`, one line that names the file
and the problem, and the argument to change in backticks (``` `ignore_modality=True` ```).

MONAI and torch are imported inside the functions, so that ``import medseg`` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.defaults import DEFAULT_MIN_LESION_ML, DEFAULT_PREFETCH
from medseg.errors import MedsegError
from medseg.stderr import write_line

if TYPE_CHECKING:
    from medseg.bundles import Bundle
    from medseg.data.report import DatasetCheck
    from medseg.evaluation import CaseResult
    from medseg.inference.cohort_inputs import ScanRequest
    from medseg.inference.options import InferenceOptions
    from medseg.inference.predict import SegmentReport
    from medseg.inference.progress import RunProgress
    from medseg.training.distributed import Launcher
    from medseg.training.run import TrainResult

Say = Callable[[str], None]
GB = 1e9


def _to_stderr(line: str) -> None:
    write_line(line)


def _bytes(gigabytes: float | None) -> int | None:
    return None if gigabytes is None else int(gigabytes * GB)


def find_bundle(name_or_path: str | Path | Bundle, *, trust: bool = False, say: Say = _to_stderr) -> Bundle:
    """A bundle by name (medseg's own, then ``$MEDSEG_BUNDLES``) or by folder, checked to be trusted.

    Args:
        name_or_path: a bundle name (see ``medseg bundles``), a bundle folder, or a ``Bundle`` (returned as is).
        trust: run a bundle from outside medseg's bundle folders; its configs run Python code.
        say: where the notice goes that a trusted outside bundle's code will run.

    Returns:
        The bundle: its labels, configs, weights and metadata.

    Raises:
        MedsegError: no bundle has that name (the message lists those that exist), or the folder is
            outside the bundle folders and ``trust`` is False.

    Examples:
        >>> import medseg
        >>> bundle = medseg.find_bundle("ct_liver_tumour_3d")
        >>> [label.name for label in bundle.labels]
        ['background', 'liver', 'tumour']
    """
    from medseg.bundles import Bundle, find_bundle
    from medseg.trust import check_trusted

    if isinstance(name_or_path, Bundle):
        return name_or_path
    bundle = find_bundle(name_or_path)
    check_trusted(bundle, trust=trust, say=say)
    return bundle


def segment(
    bundle: str | Path | Bundle,
    inputs: Sequence[str | Path | ScanRequest],
    output: str | Path,
    *,
    weights: str | Path | Sequence[str | Path] | None = None,
    device: str = "auto",
    options: InferenceOptions | None = None,
    overrides: Mapping[str, Any] | None = None,
    masks_only: bool = False,
    max_memory: float | None = None,
    ignore_modality: bool = False,
    min_lesion_ml: float = DEFAULT_MIN_LESION_ML,
    lists: Sequence[str | Path] = (),
    prefetch: int = DEFAULT_PREFETCH,
    retry_failed: bool = False,
    keep_going: bool = False,
    trust: bool = False,
    progress: Callable[[RunProgress], None] | None = None,
    step: Say | None = None,
    say: Say = _to_stderr,
    ray_address: str | None = None,
    workers: int | None = None,
) -> SegmentReport:
    """Segment scans into ``OUTPUT/<name>_seg.nii.gz`` masks (uint8, on each scan's own grid) and more.

    Unless ``masks_only``, each scan also gets ``<name>.seg.nrrd`` (a Slicer segmentation),
    ``<name>_stats.json`` and ``<name>_overlay.png``, and the folder ``stats.csv``, ``report.html``,
    a colour table and ``open_in_slicer.py``. Every scan is checked before any is segmented.

    Args:
        bundle: bundle name, bundle folder or ``Bundle``.
        inputs: NIfTI files (3D, or 4D channel last), DICOM series folders, multi-frame DICOM files, or
            folders of NIfTI files or of DICOM series folders.
        output: the output folder (created if missing).
        weights: weights file, or several for an ensemble (their probabilities are averaged);
            default the bundle's ``models/model.pt``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        options: the path (fast or the bundle's stock recipe), window overlap, test-time
            augmentation, coarse voxels, label rules; default the fast path with the bundle's windows.
        overrides: further config overrides, config id to value (``{"inferer#sw_batch_size": 4}``).
        masks_only: write the masks alone.
        max_memory: GB of memory a scan may need; larger scans are refused. Default: the memory free now.
        ignore_modality: segment scans whose DICOM modality is not the bundle's.
        min_lesion_ml: lesions smaller than this (mL) are counted in the statistics, not listed.
        lists: files that list scans, one path a line or a CSV with ``path`` and ``case_id`` columns.
        prefetch: scans read ahead of the network, and as many waiting to be written (memory bound:
            :meth:`medseg.inference.memory.StageBytes.pipeline`).
        retry_failed: segment again the scans that failed in an earlier run into ``output``; scans
            done before (``output/manifest.jsonl``) with unchanged inputs are skipped either way.
        keep_going: a scan that fails is recorded in the report and the others are finished;
            without it, a failure raises once the scans that succeeded are written.
        trust: run a bundle from outside medseg's bundle folders.
        progress: called as each scan ends with the run's counts (done, failed, skipped) and its error.
        step: called with a few words as each step starts, for a progress display.
        say: where the notice about a trusted outside bundle goes.
        ray_address: segment on a Ray cluster (``pip install 'medseg[cluster]'``): ``local`` starts Ray
            on this machine, ``auto`` joins the cluster this node belongs to, ``host:port`` joins that
            head. The output folder must be on storage every node sees.
        workers: Ray actors that segment, each loading the network once (default: one per GPU on
            CUDA, else 1); on CPU each takes cores / workers threads.

    Returns:
        The masks written (``written``), the scans that failed with ``keep_going`` (``failed``), the
        warnings, and which path ran (``path``).

    Raises:
        MedsegError: for unusable options, weights or output folder (before any work), or, without
            ``keep_going``, for a scan that failed (several are counted in one error).

    Examples:
        >>> import medseg
        >>> report = medseg.segment("ct_liver_tumour_3d", ["scan.nii.gz"], "out", device="cpu")
        >>> report.written
        [PosixPath('out/scan_seg.nii.gz')]
        >>> from medseg import InferenceOptions
        >>> report = medseg.segment("ct_liver_tumour_3d", ["scan.nii.gz"], "out", options=InferenceOptions(tta=True))
    """
    from medseg.inference.predict import segment_report

    found = find_bundle(bundle, trust=trust, say=say)
    report = segment_report(
        found,
        inputs,
        output,
        weights=weights,
        device=device,
        options=options,
        overrides=overrides,
        progress=progress,
        extras=not masks_only,
        max_memory=_bytes(max_memory),
        ignore_modality=ignore_modality,
        min_lesion_ml=min_lesion_ml,
        lists=lists,
        prefetch=prefetch,
        retry_failed=retry_failed,
        step=step,
        ray_address=ray_address,
        workers=workers,
    )
    if not keep_going:
        report.raise_for_failures()
    return report


def train(
    bundle: str | Path | Bundle,
    data: str | Path,
    *,
    output: str | Path | None = None,
    epochs: int | None = None,
    device: str = "auto",
    weights: str | Path | None = None,
    fold: int = 0,
    seed: int | None = None,
    presets: str = "auto",
    cache: str = "auto",
    cache_memory: float | None = None,
    tracking: str = "tensorboard",
    progress: bool = False,
    resume: bool = False,
    launcher: Launcher | None = None,
    overrides: Mapping[str, Any] | None = None,
    trust: bool = False,
    say: Say = print,
) -> TrainResult:
    """Train a bundle on a dataset through its ``train.json``; the run folder becomes a bundle.

    The dataset is checked first (a dataset with errors is refused), fingerprinted, and its spacing,
    patch size and CT intensities set the run's configs (see ``presets``).

    Args:
        bundle: bundle name, bundle folder or ``Bundle``.
        data: dataset: MSD, nnU-Net v2 raw, ``images/`` + ``labels/``, ``case.nii.gz`` beside
            ``case_seg.nii.gz``, or a CSV file of image,label columns.
        output: the run folder; default ``runs/<bundle>-<date>-<time>``.
        epochs: number of epochs; default the bundle's.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        weights: start from these weights (fine-tuning).
        fold: cross-validation fold (the dataset's or the run's ``splits.json``).
        seed: seed of every random generator; default the bundle's.
        presets: ``fingerprint``, ``bundle`` or ``auto`` (the bundle's values when fine-tuning).
        cache: ``auto``, ``gpu``, ``memory`` or ``disk``: where preprocessed cases are cached.
        cache_memory: GB of memory for caching; default half the free memory.
        tracking: ``tensorboard`` (``RUN/tensorboard``), or ``mlflow`` as well.
        progress: a progress bar instead of per-iteration log lines.
        resume: continue the run in ``output`` from its last checkpoint.
        launcher: train in several processes (and nodes) under torchrun; default this process.
        overrides: further config overrides (``{"learning_rate": 1e-4}``).
        trust: run a bundle from outside medseg's bundle folders.
        say: where progress messages go.

    Returns:
        The run folder as a bundle, its best weights (``models/model.pt``) and ``history.csv``.

    Raises:
        MedsegError: for a dataset with errors, a bad option, or a training process that failed.

    Examples:
        >>> import medseg
        >>> run = medseg.train("ct_liver_tumour_3d", "data/ct", epochs=2, output="runs/liver", device="cpu")
        >>> run.best_weights
        PosixPath('runs/liver/models/model.pt')
        >>> from medseg import Launcher
        >>> run = medseg.train("ct_liver_tumour_3d", "data/ct", output="runs/ddp", launcher=Launcher(nproc=2))
    """
    from medseg.training.run import train as train_bundle

    return train_bundle(
        find_bundle(bundle, trust=trust, say=say),
        data,
        output=output,
        epochs=epochs,
        device=device,
        fold=fold,
        init_weights=weights,
        presets=presets,
        cache=cache,
        cache_memory=_bytes(cache_memory),
        seed=seed,
        tracking=tracking,
        progress=progress,
        overrides=overrides,
        launcher=launcher,
        resume=resume,
        say=say,
    )


def evaluate(
    bundle: str | Path | Bundle,
    data: str | Path,
    output: str | Path = "evaluation",
    *,
    cases: str = "all",
    weights: str | Path | Sequence[str | Path] | None = None,
    device: str = "auto",
    trust: bool = False,
    say: Say = _to_stderr,
) -> list[CaseResult]:
    """Segment a dataset's labelled cases and score Dice and HD95 (mm) per label on each case's own grid.

    Writes the masks to ``OUTPUT/masks/`` and one row per case and label to ``OUTPUT/metrics.csv``.

    Args:
        bundle: bundle name, bundle folder or ``Bundle``.
        data: a dataset with labels (the layouts :func:`train` takes).
        output: where the masks and ``metrics.csv`` go.
        cases: ``all`` labelled cases (test and training), ``test`` or ``training``.
        weights: weights file(s); default the bundle's.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        trust: run a bundle from outside medseg's bundle folders.
        say: where the notice about a trusted outside bundle goes.

    Returns:
        One result per case: its set (``test`` or ``training``) and, per label, Dice, HD95 and volumes.

    Examples:
        >>> import medseg
        >>> results = medseg.evaluate("ct_liver_tumour_3d", "data/ct", "evaluation", cases="test")
        >>> round(results[0].scores["liver"].dice, 2)
        0.94
    """
    from medseg.evaluation import evaluate as evaluate_bundle

    found = find_bundle(bundle, trust=trust, say=say)
    return evaluate_bundle(found, data, output, weights=weights, device=device, cases=cases)


def check_dataset(
    data: str | Path,
    *,
    bundle: str | Path | Bundle | None = None,
    fingerprint_file: str | Path | None = None,
    strict: bool = True,
    progress: bool = False,
) -> DatasetCheck:
    """Check every case of a dataset and fingerprint its labelled cases.

    Checks that images and labels read, pair up, share a grid, and hold the expected labels and
    channels; the fingerprint summarises spacings, sizes, foreground intensities and label volumes.

    Args:
        data: the dataset (the layouts :func:`train` takes).
        bundle: check labels and channels against this bundle (name, folder or ``Bundle``) instead
            of the dataset's own ``dataset.json``. Only its metadata is read.
        fingerprint_file: also write the fingerprint to this JSON file.
        strict: raise when the dataset has errors; False returns them in the result.
        progress: show a progress bar on stderr.

    Returns:
        The problems found (``report.problems``), the fingerprint, ``ok`` and a printable ``describe()``.

    Raises:
        MedsegError: for a dataset that cannot be read at all, or, with ``strict``, one that has errors.

    Examples:
        >>> import medseg
        >>> check = medseg.check_dataset("data/ct")
        >>> check.fingerprint.target_spacing
        [0.8, 0.8, 2.5]
        >>> print(medseg.check_dataset("data/messy", strict=False).describe())  # doctest: +SKIP
    """
    from medseg.bundles import Bundle, find_bundle
    from medseg.data.report import check_and_fingerprint

    found = bundle if isinstance(bundle, Bundle) or bundle is None else find_bundle(bundle)
    check = check_and_fingerprint(data, found, fingerprint_file, progress=progress)
    if strict and not check.ok:
        errors, first = check.report.errors, check.report.errors[0]
        raise MedsegError(
            f"the dataset has {len(errors)} error(s), the first: {first.path}: {first.message}; "
            "`strict=False` returns them all",
            data,
        )
    return check
