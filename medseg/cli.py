"""The ``medseg`` command line. Thin by design: parse options, call the module that does the work.

Heavy imports (MONAI, torch) happen inside the commands, so ``medseg --help`` and argument errors
answer at once.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
from typer.core import TyperGroup

from medseg.cli_flags import option_flags, with_flags
from medseg.cli_help import examples, tidy_value_names
from medseg.defaults import DEFAULT_MIN_LESION_ML, DEFAULT_PREFETCH
from medseg.engine_logs import DEBUG_LOGGER
from medseg.errors import MedsegError, interrupted
from medseg.stderr import write_line

if TYPE_CHECKING:
    from medseg.bundles import Bundle
    from medseg.inference.predict import SegmentReport

app = typer.Typer(
    help="Medical image segmentation on MONAI: train, infer and ship bundles; masks that open in 3D Slicer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sample_data = typer.Typer(help="Write embedded sample datasets (MSD layout).", no_args_is_help=True)
app.add_typer(sample_data, name="sample-data")

OverrideOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--override", help="Config override KEY=VALUE (repeatable), e.g. overlap=0.25; VALUE is JSON or text."
    ),
]
INTERRUPTED = 130  # exit status after Ctrl-C: 128 + SIGINT
DEBUG = "--debug"
BundleArg = Annotated[str, typer.Argument(help="Bundle name (see `medseg bundles`) or path to a bundle folder.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust", help="Run a bundle from outside medseg's bundle folders: its configs run Python code (SECURITY.md)."
    ),
]
DATA_LAYOUTS = (
    "MSD (dataset.json, imagesTr/, labelsTr/), nnU-Net v2 raw (dataset.json with channel_names; "
    "imagesTr/CASE_0000.nii.gz, one file per channel), images/ + labels/ subfolders, case.nii.gz beside "
    "case_seg.nii.gz (or _label), or a CSV file of image,label columns"
)
WeightsOpt = Annotated[
    Path | None, typer.Option("--weights", help="Weights file (default: the bundle's models/model.pt).")
]


def _command() -> TyperGroup:
    """The click command that typer makes of :data:`app`."""
    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup)  # an app of several commands
    return command


@functools.cache
def _flags() -> dict[str, tuple[str, str]]:
    """Each option's Python name and its flag, for :func:`medseg.cli_flags.with_flags`."""
    return option_flags(_command())


def _say(line: str) -> None:
    """Print a line of the library's, with the arguments it names written as this command's flags."""
    typer.echo(with_flags(line, _flags()))


def _warn(line: str) -> None:
    """:func:`_say` on stderr (never lost to another thread's silenced C output: :mod:`medseg.stderr`)."""
    write_line(with_flags(line, _flags()))


def _bundle(name_or_path: str, trust: bool) -> Bundle:
    """The bundle, refused if it lies outside the trusted bundle folders and ``trust`` is not given."""
    from medseg.api import find_bundle

    return find_bundle(name_or_path, trust=trust, say=_warn)


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MedsegError(f"--override needs KEY=VALUE, got {pair!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _in_unit_interval(value: float | None) -> float | None:
    """An option's value, refused (a usage error) unless it lies in [0, 1)."""
    if value is not None and not 0 <= value < 1:
        raise typer.BadParameter(f"{value} is not in [0, 1)")
    return value


@app.command("bundles", epilog=examples("medseg bundles", "MEDSEG_BUNDLES=~/bundles medseg bundles"))
def bundles_command() -> None:
    """List the available bundles with their labels and whether trained weights are present."""
    from medseg.bundles import list_bundles

    found = list_bundles()
    if not found:
        typer.echo("no bundles found")
        return
    for bundle in found:
        labels = ", ".join(f"{label.value}={label.name}" for label in bundle.labels)
        weights = bundle.weights
        status = f"weights {weights.stat().st_size / 1e6:.1f} MB" if weights.is_file() else "no weights"
        typer.echo(f"{bundle.name:<24} {status:<18} labels: {labels} (source: {bundle.source})")


@app.command(
    "download",
    epilog=examples(
        "medseg download spleen_ct_segmentation",
        "medseg download wholeBody_ct_segmentation --version 0.2.5",
        "medseg download spleen_ct_segmentation --url file:///data/bundles/spleen_ct_segmentation_v0.5.9.zip",
    ),
)
def download_command(
    name: Annotated[str, typer.Argument(help="Model-zoo bundle name, e.g. spleen_ct_segmentation.")],
    version: Annotated[str | None, typer.Option(help="Bundle version (default: the latest).")] = None,
    url: Annotated[str | None, typer.Option(help="Fetch this bundle zip instead (a mirror, or file://).")] = None,
) -> None:
    """Fetch a MONAI model-zoo bundle into $MEDSEG_BUNDLES (default ~/.medseg/bundles) and check it."""
    from medseg.download import download

    bundle = download(name, version=version, url=url)
    labels = ", ".join(f"{label.value}={label.name}" for label in bundle.labels)
    typer.echo(f"downloaded {bundle.name} to {bundle.root} (labels: {labels})")


@sample_data.command(
    "ct",
    epilog=examples(
        "medseg sample-data ct data/ct", "medseg sample-data ct data/ct_small --cases 6 --test-cases 2 --preset small"
    ),
)
def sample_ct(
    directory: Annotated[Path, typer.Argument(help="Output folder (must not exist, or be empty).")],
    cases: Annotated[int, typer.Option(help="Number of training cases.")] = 20,
    test_cases: Annotated[int | None, typer.Option(help="Number of test cases (default: a quarter).")] = None,
    seed: Annotated[int, typer.Option(help="Dataset seed; the same seed gives the same voxels.")] = 0,
    preset: Annotated[
        str, typer.Option(help="Grid preset: clinical (0.6-0.9 mm, 1-5 mm slices) or small.")
    ] = "clinical",
) -> None:
    """Write a synthetic abdominal CT dataset with liver and tumour labels (MSD layout)."""
    from tqdm import tqdm

    from medseg.samples.datasets import case_count, write_ct_dataset

    total = case_count("ct", cases, test_cases)
    with tqdm(total=total, desc="synthetic CT cases", unit="case") as bar:
        write_ct_dataset(
            directory,
            cases=cases,
            test_cases=test_cases,
            seed=seed,
            preset=preset,
            progress=lambda n: bar.update(1),
        )
    typer.echo(f"wrote {total} cases to {directory}")


@sample_data.command(
    "mri",
    epilog=examples(
        "medseg sample-data mri data/mri", "medseg sample-data mri data/mri_small --cases 4 --test-cases 1"
    ),
)
def sample_mri(
    directory: Annotated[Path, typer.Argument(help="Output folder (must not exist, or be empty).")],
    cases: Annotated[int, typer.Option(help="Training cases: the template and cases-1 random versions of it.")] = 12,
    test_cases: Annotated[
        int | None,
        typer.Option(
            help="Test cases: the first N of the held-out checks (1.5 mm, 3 mm, bias field, rotated; default all 4)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random versions.")] = 0,
) -> None:
    """Write the real MNI152 T1 brain (from nilearn) with grey/white-matter labels, and versions of it."""
    from tqdm import tqdm

    from medseg.samples.datasets import case_count, write_mri_dataset
    from medseg.samples.mni import require_nilearn

    require_nilearn()  # before any folder is made

    total = case_count("mri", cases, test_cases)
    with tqdm(total=total, desc="MNI152 T1 cases", unit="case") as bar:
        write_mri_dataset(directory, cases=cases, test_cases=test_cases, seed=seed, progress=lambda n: bar.update(1))
    typer.echo(f"wrote {total} cases to {directory}")


@sample_data.command(
    "brats",
    epilog=examples(
        "medseg sample-data brats data/brats", "medseg sample-data brats data/brats_small --cases 6 --spacing 4"
    ),
)
def sample_brats(
    directory: Annotated[Path, typer.Argument(help="Output folder (must not exist, or be empty).")],
    cases: Annotated[int, typer.Option(help="Number of training cases.")] = 16,
    test_cases: Annotated[int | None, typer.Option(help="Number of test cases (default: a quarter).")] = None,
    seed: Annotated[int, typer.Option(help="Dataset seed; the same seed gives the same voxels.")] = 0,
    spacing: Annotated[float, typer.Option(help="Isotropic voxel size in mm.")] = 2.0,
) -> None:
    """Write synthetic brain tumour MRI (FLAIR, T1w, t1gd, T2w) in the real MNI152 brain, BraTS labels (MSD layout)."""
    from tqdm import tqdm

    from medseg.samples.datasets import case_count, write_brats_dataset
    from medseg.samples.mni import require_nilearn

    require_nilearn()  # before any folder is made

    total = case_count("brats", cases, test_cases)
    with tqdm(total=total, desc="brain tumour MRI cases", unit="case") as bar:
        write_brats_dataset(
            directory, cases=cases, test_cases=test_cases, seed=seed, spacing=spacing, progress=lambda n: bar.update(1)
        )
    typer.echo(f"wrote {total} cases to {directory}")


@app.command(
    "check-dataset",
    epilog=examples(
        "medseg check-dataset data/ct", "medseg check-dataset data/ct --bundle ct_liver_tumour_3d --fingerprint fp.json"
    ),
)
def check_dataset_command(
    data: Annotated[Path, typer.Argument(help=f"Dataset: {DATA_LAYOUTS}.")],
    bundle: Annotated[
        str | None, typer.Option(help="Check labels and channels against this bundle instead of the dataset's own.")
    ] = None,
    fingerprint_file: Annotated[
        Path | None, typer.Option("--fingerprint", help="Also write the fingerprint to this JSON file.")
    ] = None,
) -> None:
    """Validate a dataset: one line per problem, a summary table and the fingerprint; exit 1 on errors."""
    from medseg.api import check_dataset

    check = check_dataset(data, bundle=bundle, fingerprint_file=fingerprint_file, strict=False, progress=True)
    _say(check.describe())
    if not check.ok:
        raise typer.Exit(1)


@app.command(
    "train",
    epilog=examples(
        "medseg train ct_liver_tumour_3d --data data/ct --epochs 50 --output runs/liver",
        "medseg train ct_liver_tumour_3d --data data/ct --weights runs/liver/models/model.pt --output runs/liver-tuned",
        "medseg train ct_liver_tumour_3d --data data/ct --nproc 2 --device cuda",
    ),
)
def train_command(
    bundle: BundleArg,
    data: Annotated[Path, typer.Option("--data", help=f"Dataset: {DATA_LAYOUTS}.")],
    epochs: Annotated[int | None, typer.Option(help="Number of epochs (default: the bundle's).")] = None,
    device: DeviceOpt = "auto",
    output: Annotated[Path | None, typer.Option(help="Run folder (default: runs/<bundle>-<time>).")] = None,
    weights: Annotated[Path | None, typer.Option("--weights", help="Start from these weights (fine-tune).")] = None,
    fold: Annotated[int, typer.Option(help="Cross-validation fold (splits.json of the dataset or the run).")] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed of every random generator (default: the bundle's).")] = None,
    presets: Annotated[
        str,
        typer.Option(help="Spacing, patch, CT intensities from: fingerprint, bundle, or auto (bundle if fine-tuning)."),
    ] = "auto",
    cache: Annotated[
        str, typer.Option(help="Cache preprocessed cases on the gpu, in memory, on disk, or auto (what fits).")
    ] = "auto",
    cache_memory: Annotated[
        float | None, typer.Option(help="GB of RAM for caching preprocessed cases (default: half the free memory).")
    ] = None,
    tracking: Annotated[
        str, typer.Option(help="tensorboard (RUN/tensorboard), or mlflow as well (RUN/mlflow; needs the mlflow extra).")
    ] = "tensorboard",
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: on in a terminal).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --output from its last checkpoint.")
    ] = False,
    nproc: Annotated[
        int | None, typer.Option(help="Train in N processes under torchrun (one per GPU, or CPU processes).")
    ] = None,
    nnodes: Annotated[str, typer.Option(help="Nodes taking part (with --nproc), e.g. 2.")] = "1",
    rdzv_backend: Annotated[str, typer.Option(help="torchrun rendezvous backend for several nodes.")] = "c10d",
    rdzv_endpoint: Annotated[str | None, typer.Option(help="HOST:PORT where the nodes meet (several nodes).")] = None,
    override: OverrideOpt = None,
    trust: TrustOpt = False,
) -> None:
    """Train a bundle on a dataset through its train.json; the run folder becomes a bundle."""
    from medseg.api import train
    from medseg.training.distributed import Launcher

    result = train(
        _bundle(bundle, trust),
        data,
        output=output,
        epochs=epochs,
        device=device,
        weights=weights,
        fold=fold,
        seed=seed,
        presets=presets,
        cache=cache,
        cache_memory=cache_memory,
        tracking=tracking,
        progress=sys.stderr.isatty() if progress is None else progress,
        resume=resume,
        launcher=None if nproc is None else Launcher(nproc, nnodes, rdzv_backend, rdzv_endpoint),
        overrides=_parse_overrides(override or []),
        say=_say,
    )
    typer.echo(f"trained bundle: {result.bundle.root}\nbest weights: {result.best_weights}")
    typer.echo(f"per-epoch history: {result.history}")
    typer.echo(f"segment with: medseg infer --trust {result.bundle.root} SCAN -o OUTDIR")


@app.command(
    "infer",
    epilog=examples(
        "medseg infer ct_liver_tumour_3d scan.nii.gz -o out",
        "medseg infer ct_liver_tumour_3d dicom/series1 scans/ -o out --device cuda --window large",
        "medseg infer ct_liver_tumour_3d --list cohort.csv -o out --retry-failed",
    ),
)
def infer_command(
    bundle: BundleArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder for <name>_seg.nii.gz masks.")],
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Scans to segment: NIfTI files (.nii, .nii.gz), DICOM folders (one image series each), "
            "enhanced multi-frame DICOM files, or folders of NIfTI files or of DICOM series folders.",
            show_default=False,
        ),
    ] = None,
    weights: Annotated[
        list[Path] | None,
        typer.Option(
            "--weights",
            help="Weights file (default: the bundle's models/model.pt). Several (--weights a.pt b.pt, or the "
            "option repeated) segment with their ensemble: the members' probabilities are averaged.",
        ),
    ] = None,
    device: DeviceOpt = "auto",
    overlap: Annotated[
        float | None,
        typer.Option(
            callback=_in_unit_interval,
            help="Window overlap in [0, 1) (default: the bundle's; with --window large, 0.25 in 3D and 0 in 2D).",
        ),
    ] = None,
    window: Annotated[
        str,
        typer.Option(
            help="patch: the bundle's own sliding windows (the stock recipe's answer); large: the volume in as few "
            "windows as fit, faster, a slightly different answer (2D bundles: slices without overlap)."
        ),
    ] = "patch",
    tta: Annotated[bool, typer.Option("--tta", help="Mirror test-time augmentation (if trained with it).")] = False,
    fast: Annotated[bool, typer.Option("--fast", help="Network on 1.5x coarser voxels: faster, less exact.")] = False,
    stock: Annotated[bool, typer.Option("--stock", help="The bundle's own recipe (sliding windows, Invertd).")] = False,
    label_rules: Annotated[
        bool,
        typer.Option(
            help="Apply the bundle's anatomical clean-up (largest organ component, tumours inside their organ); "
            "off by default, so that the masks are the bundle's recipe's. Fast path only."
        ),
    ] = False,
    masks_only: Annotated[
        bool,
        typer.Option(
            "--masks-only", "--no-extras", help="Write the masks alone (no .seg.nrrd, statistics, pictures, report)."
        ),
    ] = False,
    override: OverrideOpt = None,
    max_memory: Annotated[
        float | None,
        typer.Option(help="GB of memory a scan may need; larger scans are refused (default: the memory available)."),
    ] = None,
    ignore_modality: Annotated[
        bool,
        typer.Option(
            "--ignore-modality", help="Segment scans whose DICOM modality is not the bundle's (refused by default)."
        ),
    ] = False,
    min_lesion_ml: Annotated[
        float,
        typer.Option(
            "--min-lesion-ml",
            min=0.0,
            help="Lesions smaller than this (mL) are counted in the statistics and report, not listed.",
        ),
    ] = DEFAULT_MIN_LESION_ML,
    scan_list: Annotated[
        list[Path] | None,
        typer.Option(
            "--list",
            help="File listing scans: one path a line, or a CSV with a 'path' column (and 'case_id', which names "
            "the outputs). Relative paths are read from the list's folder.",
        ),
    ] = None,
    prefetch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Scans read and preprocessed ahead of the network, and as many waiting to be written: memory "
            "grows by about 2 x PREFETCH x one scan on the network's grid.",
        ),
    ] = DEFAULT_PREFETCH,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="Segment again the scans that failed in an earlier run into OUTDIR."),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Segment on a Ray cluster (Ray is medseg's 'cluster' extra): local starts Ray on this machine, "
            "auto joins the cluster this node belongs to, host:port joins that head. OUTDIR must be on storage "
            "every node sees.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --ray: actors that segment, each loading the network once (default: one per GPU on CUDA, "
            "else 1); on CPU each takes cores / WORKERS threads.",
        ),
    ] = None,
    trust: TrustOpt = False,
) -> None:
    """Segment scans; writes OUTDIR/<name>_seg.nii.gz (uint8, on the scan's own grid) and more.

    Unless --masks-only, also <name>.seg.nrrd (Slicer segmentation), <name>_stats.json, <name>_overlay.png,
    and for the run stats.csv, report.html, <bundle>_colors.ctbl and open_in_slicer.py.
    <name> is a NIfTI file's name without .nii/.nii.gz, or a DICOM series folder's name. A scan that
    fails is reported and skipped; the others are finished (exit status 1 if any failed).
    A run of two or more scans keeps OUTDIR/manifest.jsonl: run the same command again to finish an
    interrupted run (scans done since are skipped), and sums up in OUTDIR/cohort.csv and cohort.html.
    """
    if not inputs and not scan_list:
        raise typer.BadParameter("give the scans to segment, or --list FILE", param_hint="INPUTS")
    # One scan's process spends a third of its time importing torch and MONAI: read the scan meanwhile. A
    # cohort gains a second of many from it, and its pipeline's peak memory would vary with the timing.
    if inputs and len(inputs) == 1 and not scan_list and not stock and ray_address is None:
        from medseg.io import read_ahead

        read_ahead.start(inputs[0], keep_image=not masks_only)
    from medseg.api import segment
    from medseg.devices import resolve_device
    from medseg.inference.cohort_inputs import expand_inputs
    from medseg.inference.options import InferenceOptions, Window
    from medseg.inference.progress import run_display
    from medseg.weights import weights_among

    weights, scans = weights_among(weights, inputs or [])  # `--weights a.pt b.pt scan.nii.gz`: b.pt arrives as a scan

    chosen = cast("Window", window)  # any other word is refused with the choices when the options are applied
    options = InferenceOptions(
        stock=stock, overlap=overlap, tta=tta, coarse=fast, label_rules=label_rules, window=chosen
    )
    found = _bundle(bundle, trust)
    requests = expand_inputs(scans, scan_list or [])
    path = "stock path (the bundle's own recipe)" if stock else f"fast path (--window {window})"
    first_line = f"segmenting with {found.name} on {resolve_device(device)}, {path}"
    with run_display(len(requests), first_line, lambda line: with_flags(line, _flags())) as (step, progress):
        report = segment(
            found,
            requests,
            output,
            weights=weights,
            device=device,
            options=options,
            overrides=_parse_overrides(override or []),
            masks_only=masks_only,
            max_memory=max_memory,
            ignore_modality=ignore_modality,
            min_lesion_ml=min_lesion_ml,
            prefetch=prefetch,
            retry_failed=retry_failed,
            keep_going=True,
            progress=progress,
            step=step,
            ray_address=ray_address,
            workers=workers,
        )
    _render_report(report, bundle, output, stock=stock, ignore_modality=ignore_modality, extras=not masks_only)
    raise typer.Exit(report.exit_status)


def _render_report(
    report: SegmentReport, bundle: str, output: Path, *, stock: bool, ignore_modality: bool, extras: bool
) -> None:
    """Print what a ``medseg infer`` run did (its failures were printed as they happened)."""
    from medseg.inference.summary import scan_summary

    if report.path != "fast path" and not stock:  # a fallback is news; --stock was asked for
        _warn(f"{bundle}: {report.path}")
    if ignore_modality:
        typer.echo("warning: --ignore-modality: scans are segmented whatever modality their files record", err=True)
    for warning in report.warnings:
        _warn(f"warning: {warning}")
    for mask in report.written:
        typer.echo(scan_summary(mask))
    if report.skipped:
        typer.echo(f"skipped {len(report.skipped)} scans done by an earlier run ({output / 'manifest.jsonl'})")
    if report.written and extras:
        typer.echo(f"report: {output / 'report.html'}\nopen in 3D Slicer: medseg slicer {output}")
    if report.summary is not None:
        typer.echo(f"cohort summary: {report.summary}")


@app.command("slicer", epilog=examples("medseg slicer out", "medseg slicer out --scan-dir scans"))
def slicer_command(
    output: Annotated[Path, typer.Argument(help="A `medseg infer` output folder.")],
    scan_dir: Annotated[
        Path | None,
        typer.Option(help="Folder holding the scans (<name>.nii.gz or DICOM folder <name>); default: as recorded."),
    ] = None,
) -> None:
    """Print (and write OUTDIR/open_in_slicer.py) Slicer Python code that loads each scan with its segmentation."""
    from medseg.io.slicer_script import find_cases, slicer_snippet, write_slicer_script

    cases = find_cases(output, scan_dir)
    write_slicer_script(output, cases)
    typer.echo(slicer_snippet(cases), nl=False)


@app.command(
    "evaluate",
    epilog=examples(
        "medseg evaluate ct_liver_tumour_3d --data data/ct -o evaluation",
        "medseg evaluate --trust runs/liver --data data/ct --device cuda",
    ),
)
def evaluate_command(
    bundle: BundleArg,
    data: Annotated[Path, typer.Option("--data", help=f"Dataset with labels: {DATA_LAYOUTS}.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder for masks and metrics.csv.")] = Path(
        "evaluation"
    ),
    cases: Annotated[
        str, typer.Option(help="Which labelled cases: all (test and training), test or training.")
    ] = "all",
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    trust: TrustOpt = False,
) -> None:
    """Segment a dataset's labelled cases; print each case's Dice and HD95 (mm) per label, and their means."""
    from medseg.api import evaluate
    from medseg.report import dice_table

    found = _bundle(bundle, trust)
    results = evaluate(found, data, output, cases=cases, weights=weights, device=device)
    typer.echo(dice_table(results, [label.name for label in found.labels if label.value]))
    typer.echo(f"per-case metrics: {output / 'metrics.csv'}")


@app.command(
    "export",
    epilog=examples(
        "medseg export ct_liver_tumour_3d --format onnx",
        "medseg export --trust runs/liver --format torchscript -o liver.ts",
    ),
)
def export_command(
    bundle: BundleArg,
    fmt: Annotated[str, typer.Option("--format", help="torchscript or onnx.")] = "torchscript",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: models/model.ts or model.onnx).")
    ] = None,
    weights: WeightsOpt = None,
    trust: TrustOpt = False,
) -> None:
    """Export the trained network; ONNX is checked against PyTorch under ONNX Runtime."""
    from medseg.export import export

    typer.echo(f"wrote {export(_bundle(bundle, trust), fmt, output=output, weights=weights, say=typer.echo)}")


@app.command("demo", epilog=examples("medseg demo", "medseg demo --output demo --epochs 2 --device cpu"))
def demo_command(
    output: Annotated[Path, typer.Option(help="Folder for the demo's data, model and masks.")] = Path("demo_output"),
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 2,
    device: DeviceOpt = "auto",
) -> None:
    """The whole job on embedded data: sample CT, train briefly, segment, score, open in Slicer."""
    from medseg.demo import run_demo

    run_demo(output, epochs=epochs, device=device)


def _print_versions(asked: bool) -> None:
    """Print medseg's, MONAI's and torch's versions and stop (read from package metadata: no heavy import)."""
    if asked:
        from importlib.metadata import version

        from medseg import __version__

        typer.echo(f"medseg {__version__} (MONAI {version('monai')}, torch {version('torch')})")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_versions, is_eager=True, help="Print the versions and exit."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show full tracebacks and the engines' log lines on errors (anywhere on the line)."
        ),
    ] = False,
) -> None:
    """Options that apply to every command (``--version`` acts alone; ``--debug`` is also read in :func:`main`)."""
    if debug:
        logging.getLogger(DEBUG_LOGGER).setLevel(logging.DEBUG)  # the engines' log lines are shown


def _debug_first(args: list[str]) -> list[str]:
    """``args`` with ``--debug`` moved to the front, where click accepts the app's options: it works anywhere."""
    others = [arg for arg in args if arg != DEBUG]
    return [DEBUG, *others] if len(others) < len(args) else others


def _end_interrupted() -> NoReturn:
    """End the process at once with the status of Ctrl-C, once the command's own cleanup has run.

    Not through the interpreter's shutdown: a run's threads (the pipeline's reader and writer, the read
    ahead) may still be inside a library's C++ code, and a shutdown that stops them there aborts the
    process (``terminate called without an active exception``, SIGABRT) instead of exiting 130.
    Nor does CPython then end it by SIGINT, as it does at shutdown after a KeyboardInterrupt escaped
    code run by ``eval`` of a string (MONAI runs a bundle's ``"$@evaluator.run()"`` so).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED)


def main() -> None:
    """Console entry point: typer reports usage errors (exit 2); medseg errors become one line and exit 1."""
    args = _debug_first(sys.argv[1:])
    debug = DEBUG in args
    if not debug:
        from medseg.quiet import quiet_libraries

        quiet_libraries()
    try:
        command = _command()
        tidy_value_names(command)
        command(args=args, prog_name="medseg")  # standalone: usage errors and help printed, the command's status
    except SystemExit as exited:
        if exited.code == INTERRUPTED:  # typer turns Ctrl-C into this status; the command's own cleanup has run
            typer.echo("interrupted", err=True)
            _end_interrupted()
        raise
    except MedsegError as error:
        if debug:
            raise
        _warn(f"error: {error}")
        sys.exit(1)
    except Exception as error:  # an unexpected failure deep in a library
        if interrupted(error):  # a Ctrl-C that a library wrapped (pydoc.locate, importing a config's _target_)
            typer.echo("interrupted", err=True)
            _end_interrupted()
        if debug:
            raise
        typer.echo(f"error: unexpected {type(error).__name__}: {error} (run with --debug for details)", err=True)
        sys.exit(1)
