"""``medseg infer``: run a bundle's ``inference.json`` on scans and write one mask per scan.

The bundle's preprocessing and network always run as its configs say. By default medseg's fast
path (:mod:`medseg.inference.options`) replaces the inferer and the inversion step by override;
``stock`` keeps the bundle's recipe whole. The writer is always
:class:`medseg.io.mask_writer.SaveMaskd` (uint8, the source's exact grid, atomic).

Scans are checked up front (what the file is, its modality, header, dimensions, truncation, voxel
size) and then segmented one at a time. A scan that fails, whatever the error, is reported in one
line and skipped; the others are finished. An optional output that cannot be made (overlay, DICOM
SEG, report) costs only itself: a warning says why. Each mask, and with ``extras`` its
Slicer segmentation, statistics and overlay (:mod:`medseg.inference.outputs`), is written to a staging
folder and moved into place when all of its scan's files are done, so no half-written file and no
partial set of files is ever left. The run's table, report, colour table and Slicer snippet follow at
the end. A DICOM folder (or multi-frame file) is first converted to a temporary NIfTI on its grid.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medseg.bundles import Bundle, check_override_ids, load_workflow
from medseg.data.validate import check_finite_voxels, check_scan_header
from medseg.devices import device_expression
from medseg.engine_logs import engine_logs_silenced
from medseg.errors import MedsegError, interrupted, root_cause
from medseg.inference.memory import check_memory
from medseg.inference.options import InferenceOptions, chosen_path, held_channels, inference_overrides
from medseg.inference.outputs import CaseRecord, publish_case, write_case_outputs, write_run_outputs
from medseg.inference.plausibility import check_spacing
from medseg.inference.provenance import options_record, run_provenance
from medseg.inference.requirements import check_network, check_packages
from medseg.io.dicom import find_image, image_to_nifti
from medseg.io.dicom_objects import MODALITY_WORDS
from medseg.io.paths import CaseFiles, ScanInput, check_output_folder, is_nifti, nifti_stem, scan_name
from medseg.lesions import DEFAULT_MIN_LESION_ML
from medseg.memory import available_memory
from medseg.weights import check_weights


@dataclass
class SegmentReport:
    """What a run produced: masks written, one error per scan that failed, warnings (``file: problem``), path.

    ``path`` says which path ran and why (:func:`~medseg.inference.options.chosen_path`).
    """

    path: str = ""
    written: list[Path] = field(default_factory=list)
    failed: list[MedsegError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _unique_names(paths: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in paths:
        name = scan_name(path)
        if name in seen:
            raise MedsegError(f"two inputs would write the same mask {name}_seg.nii.gz (also {seen[name]})", path)
        seen[name] = path


def _as_nifti(source: Path, scratch: Path) -> tuple[Path, str | None]:
    """``source`` as a NIfTI file and the modality its file records: a DICOM image is converted into ``scratch``."""
    if is_nifti(source) or not source.exists():
        return source, None
    image = find_image(source)
    return image_to_nifti(image, scratch / f"{scan_name(source)}.nii.gz"), image.modality


def _check_modality(found: str | None, bundle: Bundle, source: Path) -> None:
    """Refuse a scan whose file names a modality other than the bundle's."""
    if found is not None and found != bundle.modality:
        raise MedsegError(
            f"is {MODALITY_WORDS.get(found, found)} scan; bundle {bundle.name} segments {bundle.modality} "
            "(--ignore-modality runs it anyway)",
            source,
        )


def _checked_scan(
    source: Path, scratch: Path, bundle: Bundle, budget: int, channels: int, ignore_modality: bool
) -> ScanInput:
    """Check ``source`` and return it as a NIfTI scan (a DICOM image is converted into ``scratch``).

    Checked: what the file is (a DICOM folder must hold one CT, MR or PET image), its modality
    against the bundle's, the header (:func:`check_scan_header`), the voxel size, the memory the scan
    needs (:func:`check_memory`: ``budget`` bytes, with ``channels`` of the network's output held
    whole), then the voxels of a floating-point scan (NaN or infinite values).
    Any failure becomes one error that names ``source``, never the converted file.
    """
    try:
        scan, modality = _as_nifti(source, scratch)
        if not ignore_modality:
            _check_modality(modality, bundle, source)
        info = check_scan_header(scan, channels=bundle.input_channels)
        check_spacing(info.affine, source)
        check_memory(info, bundle, budget, channels)
        check_finite_voxels(info.path)
    except Exception as error:  # a library's own exception from an odd file is that file's one line too
        if interrupted(error):
            raise KeyboardInterrupt from error
        raise _as_user_error(error, source) from None
    return ScanInput(source, info.path, modality)


def _as_user_error(error: Exception, source: Path) -> MedsegError:
    """One line about ``source`` for any failure while segmenting it, from the error that started it."""
    cause = root_cause(error)
    if isinstance(cause, MedsegError):
        return MedsegError(cause.problem, source)
    reason = (str(cause).strip().splitlines() or [""])[0][:300]
    return MedsegError(f"segmentation failed ({type(cause).__name__}: {reason})", source)


def _weights_files(bundle: Bundle, weights: str | Path | Sequence[str | Path] | None) -> list[str]:
    """The checked weights files as absolute paths: the bundle's own by default."""
    if weights is None:
        weights = bundle.weights
    paths = [weights] if isinstance(weights, str | Path) else list(weights)
    if not paths:
        raise MedsegError("no weights files given")
    return [str(check_weights(path).resolve()) for path in paths]


def _checkpoint_id(bundle: Bundle) -> str:
    """The config id that names the weights file: the ``load_path`` of the bundle's ``CheckpointLoader``."""
    loader = bundle.parsed("inference").checkpoint_loader()
    if loader is None:
        raise MedsegError("has no CheckpointLoader to load weights with", bundle.config("inference"))
    return loader


def segment_report(
    bundle: Bundle,
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    weights: str | Path | Sequence[str | Path] | None = None,
    device: str = "auto",
    options: InferenceOptions | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    extras: bool = True,
    max_memory: int | None = None,
    ignore_modality: bool = False,
    min_lesion_ml: float = DEFAULT_MIN_LESION_ML,
    step: Callable[[str], None] | None = None,
) -> SegmentReport:
    """Segment scans, skipping (and reporting) those that fail.

    Args:
        bundle: the bundle to run.
        inputs: NIfTI scans, or folders that each hold one DICOM series (the mask of folder ``X`` is
            ``X_seg.nii.gz``, on the series' grid).
        output_dir: where ``<name>_seg.nii.gz`` masks go (created if missing).
        weights: weights file, or several for an ensemble that averages their probabilities;
            defaults to the bundle's ``models/model.pt``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        options: fast path or stock recipe, overlap, TTA, coarse, label rules.
        overrides: further config overrides, id to value.
        progress: called with the number of scans finished so far.
        extras: also write each case's ``.seg.nrrd``, ``_stats.json`` and ``_overlay.png``, and the run's
            ``stats.csv``, ``report.html``, colour table and ``open_in_slicer.py``; False writes masks only.
        max_memory: bytes a scan may need (:func:`medseg.inference.memory.inference_bytes`); a scan
            that needs more is refused before work starts. Default: the memory available now.
        ignore_modality: segment a scan whose file names another modality than the bundle's (DICOM
            records it; NIfTI does not) instead of refusing it.
        min_lesion_ml: lesions smaller than this (mL) are counted in the statistics and the report, not listed.
        step: called with a few words as each step starts (checking the scans, segmenting one,
            writing its files, writing the run's files), for a progress display.

    Raises:
        MedsegError: for unusable weights, options, override ids or output folder, or duplicate output
            names (before any work).
    """
    if not inputs:
        raise MedsegError("no input scans given")
    if not min_lesion_ml >= 0:
        raise MedsegError(f"the smallest lesion to list must be 0 mL or more, not {min_lesion_ml}")
    sources = [Path(path) for path in inputs]
    _unique_names(sources)
    check_output_folder(output_dir)
    check_override_ids(bundle, "inference", overrides or {})
    check_packages(bundle, dict(overrides or {}))
    check_network(bundle, dict(overrides or {}))
    members = _weights_files(bundle, weights)
    options = replace(options or InferenceOptions(), ensemble=tuple(members) if len(members) > 1 else ())
    config: dict[str, Any] = {
        _checkpoint_id(bundle): members[0],
        "device": device_expression(device),
        **inference_overrides(bundle, options, overrides),
    }
    budget = available_memory() if max_memory is None else max_memory
    record = None
    if extras:  # the statistics, table and report carry the run's provenance
        options_used = options_record(options, overrides or {}, min_lesion_ml=min_lesion_ml)
        record = CaseRecord(run_provenance(bundle, members, device=device, options=options_used), min_lesion_ml)
    report = SegmentReport(chosen_path(bundle, options))
    say = step or (lambda words: None)
    say(f"checking {len(sources)} scan{'s' if len(sources) > 1 else ''}")
    with tempfile.TemporaryDirectory(prefix="medseg-dicom-") as scratch:
        scans, channels = [], held_channels(bundle, options, overrides)
        for source in sources:  # every input is checked before any work starts
            try:
                scans.append(_checked_scan(source, Path(scratch), bundle, budget, channels, ignore_modality))
            except MedsegError as error:
                report.failed.append(error)
        if scans:
            skipped = len(sources) - len(scans)
            counted = None if progress is None else (lambda done: progress(skipped + done))
            with engine_logs_silenced():  # a failure is reported in one line, not again by the engines' logs
                _run_scans(bundle, scans, Path(output_dir), config, report, counted, record, say)
    return report


def _run_scans(
    bundle: Bundle,
    scans: list[ScanInput],
    output: Path,
    config: dict[str, Any],
    report: SegmentReport,
    progress: Callable[[int], None] | None,
    record: CaseRecord | None,
    say: Callable[[str], None],
) -> None:
    """Segment checked scans one by one into ``output``; failures and warnings go to ``report``.

    With a ``record`` (provenance, smallest lesion listed), each case's other outputs and the run's
    follow its mask.
    """
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".medseg-staging-", dir=output))
    writer = {"_target_": "medseg.io.mask_writer.SaveMaskd", "keys": "pred", "output_dir": str(staging)}
    config = {**config, "writer": writer}
    try:
        workflow = load_workflow(bundle, ["inference"], workflow_type="infer", overrides=config, quiet=True)
        for done, scan in enumerate(scans, start=1):
            try:
                say(f"segmenting {scan_name(scan.source)} ({done}/{len(scans)})")
                workflow.parser["dataset#data"] = [{"image": str(scan.path.resolve())}]
                workflow.initialize()
                workflow.run()
                staged = CaseFiles(staging, nifti_stem(scan.path))
                if record is not None:
                    say(f"writing the statistics, overlay and Slicer files of {scan_name(scan.source)}")
                warnings = [] if record is None else write_case_outputs(bundle, scan, staged, record)
                report.written.append(publish_case(staged, output))
                report.warnings += [f"{scan.source}: {warning}" for warning in warnings]
            except Exception as error:  # one scan's failure must not stop the others; Ctrl-C stops them all
                if interrupted(error):
                    raise KeyboardInterrupt from error
                report.failed.append(_as_user_error(error, scan.source))
            if progress is not None:
                progress(done)
        workflow.finalize()
        if record is not None and report.written:
            say("writing stats.csv, report.html and open_in_slicer.py")
            report.warnings += [f"{output}: {warning}" for warning in write_run_outputs(bundle, output)]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not report.written and output.is_dir() and not any(output.iterdir()):
            output.rmdir()


def segment(bundle: Bundle, inputs: Sequence[str | Path], output_dir: str | Path, **kwargs: Any) -> list[Path]:
    """Like :func:`segment_report`, but raise if any scan fails.

    A single failing scan raises its own one-line error; several raise one error that counts them
    (the masks of the scans that succeeded are kept).
    """
    report = segment_report(bundle, inputs, output_dir, **kwargs)
    if len(report.failed) == 1 and not report.written:
        raise report.failed[0]
    if report.failed:
        details = "; ".join(str(error) for error in report.failed[:3])
        raise MedsegError(f"{len(report.failed)} of {len(inputs)} scans failed: {details}")
    return report.written
