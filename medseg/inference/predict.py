"""``medseg infer``: run a bundle's ``inference.json`` on scans and write one mask per scan.

The bundle's preprocessing and network always run as its configs say. By default medseg's fast
path (:mod:`medseg.inference.options`) replaces the inferer and the inversion step by override;
``stock`` keeps the bundle's recipe whole. The writer is always
:class:`medseg.io.mask_writer.SaveMaskd` (uint8, the source's exact grid, atomic).

The inputs are expanded into scans (:mod:`medseg.inference.cohort_inputs`: files, folders, lists),
and the bundle's workflow is built once for all of them. Each scan is checked (what the file is, its
modality, header, dimensions, truncation, voxel size, the memory it needs) just before its
preprocessing, while the network works on the scan before it (:mod:`medseg.inference.pipeline`). A
scan that fails, whatever the error, is reported in one line and skipped; the others are finished. A
run of two or more scans keeps ``OUTDIR/manifest.jsonl`` (:mod:`medseg.inference.manifest`), so that
running it again finishes what is left, and sums itself up (:mod:`medseg.inference.cohort_summary`).
With ``ray_address`` the scans are segmented by Ray actors instead (:mod:`medseg.inference.cluster`),
each running the same per-scan work (:mod:`medseg.inference.scan_worker`); this process alone keeps
the manifest and writes the run's files.
An optional output that cannot be made (overlay, DICOM SEG, report) costs only itself: a warning
says why. Each mask, and with ``extras`` its Slicer segmentation, statistics and overlay
(:mod:`medseg.inference.outputs`), is written to a staging folder and moved into place when all of
its scan's files are done, so no half-written file and no partial set of files is ever left. The
run's table, report, colour table and Slicer snippet follow at the end. A DICOM folder (or
multi-frame file) is first converted to a temporary NIfTI on its grid.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medseg.bundles import Bundle, check_override_ids
from medseg.data.validate import check_finite_voxels, check_scan_header
from medseg.defaults import DEFAULT_MIN_LESION_ML, DEFAULT_PREFETCH
from medseg.devices import device_expression
from medseg.engine_logs import engine_logs_silenced
from medseg.errors import MedsegError, interrupted
from medseg.inference.cluster import ClusterOptions, check_ray
from medseg.inference.cohort_inputs import ScanRequest, expand_inputs
from medseg.inference.cohort_summary import write_cohort_summary
from medseg.inference.manifest import MANIFEST, Entry, Manifest, fingerprint, now, run_key
from medseg.inference.memory import check_memory
from medseg.inference.options import InferenceOptions, chosen_path, held_channels, inference_overrides
from medseg.inference.outputs import CaseRecord, write_run_outputs
from medseg.inference.plausibility import check_spacing
from medseg.inference.progress import RunProgress
from medseg.inference.provenance import options_record, run_provenance
from medseg.inference.requirements import check_network, check_packages
from medseg.inference.scan_worker import ScanResult, ScanWorker, WorkerSpec, as_user_error
from medseg.io.dicom import find_image, image_to_nifti
from medseg.io.dicom_objects import MODALITY_WORDS
from medseg.io.paths import ScanInput, check_output_folder, is_nifti, nifti_stem
from medseg.memory import available_memory
from medseg.weights import check_weights

STAGING_PREFIX = ".medseg-staging-"  # + the run's process id: where a run's files wait to be moved into place


@dataclass
class SegmentReport:
    """What a run produced: masks written, one error per scan that failed, warnings (``file: problem``), path.

    ``path`` says which path ran and why (:func:`~medseg.inference.options.chosen_path`); ``skipped``
    the inputs an earlier run had finished (the output folder's manifest); ``summary`` the cohort page.

    The failure policy of a run lives here: one scan's failure never stops the others, and the run
    fails (:attr:`exit_status` 1) when any scan failed.
    """

    path: str = ""
    written: list[Path] = field(default_factory=list)
    failed: list[MedsegError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    summary: Path | None = None

    @property
    def exit_status(self) -> int:
        """The status a command exits with: 1 when any scan failed, else 0."""
        return 1 if self.failed else 0

    def raise_for_failures(self) -> None:
        """Raise the one failure of a run that wrote nothing, or one error that counts several.

        Raises:
            MedsegError: some scan failed (the masks of the others are kept).
        """
        if len(self.failed) == 1 and not self.written:
            raise self.failed[0]
        if self.failed:
            total = len(self.failed) + len(self.written) + len(self.skipped)
            details = "; ".join(str(error) for error in self.failed[:3])
            raise MedsegError(f"{len(self.failed)} of {total} scans failed: {details}")


def _unique_names(requests: Sequence[ScanRequest]) -> None:
    seen: dict[str, Path] = {}
    for request in requests:
        if request.name in seen:
            raise MedsegError(
                f"two inputs would write the same mask {request.name}_seg.nii.gz (also {seen[request.name]})",
                request.source,
            )
        seen[request.name] = request.source


def _as_nifti(request: ScanRequest, scratch: Path) -> tuple[Path, str | None]:
    """The request's scan as a NIfTI file named ``<name>.nii[.gz]`` and the modality its file records.

    A DICOM image is converted into ``scratch``; a NIfTI file named otherwise (a list's ``case_id``)
    is linked there under the request's name, which the mask writer names the mask after.
    """
    source = request.source
    if not source.exists() or (is_nifti(source) and nifti_stem(source) == request.name):
        return source, None
    if is_nifti(source):
        link = scratch / (request.name + source.name.removeprefix(nifti_stem(source)))
        link.symlink_to(source.absolute())
        return link, None
    image = find_image(source)
    return image_to_nifti(image, scratch / f"{request.name}.nii.gz"), image.modality


def _check_modality(found: str | None, bundle: Bundle, source: Path) -> None:
    """Refuse a scan whose file names a modality other than the bundle's."""
    if found is not None and found != bundle.modality:
        raise MedsegError(
            f"is {MODALITY_WORDS.get(found, found)} scan; bundle {bundle.name} segments {bundle.modality} "
            "(`ignore_modality=True` runs it anyway)",
            source,
        )


def _checked_scan(
    request: ScanRequest,
    scratch: Path,
    bundle: Bundle,
    budget: int,
    *,
    channels: int,
    ignore_modality: bool,
    prefetch: int = 0,
) -> ScanInput:
    """Check a request's scan and return it as a NIfTI scan (a DICOM image is converted into ``scratch``).

    Checked: what the file is (a DICOM folder must hold one CT, MR or PET image), its modality
    against the bundle's, the header (:func:`check_scan_header`), the voxel size, the memory the scan
    needs (:func:`check_memory`: ``budget`` bytes, with ``channels`` of the network's output held
    whole), then the voxels of a floating-point scan (NaN or infinite values).
    Any failure becomes one error that names ``source``, never the converted file.
    """
    source = request.source
    try:
        scan, modality = _as_nifti(request, scratch)
        if not ignore_modality:
            _check_modality(modality, bundle, source)
        info = check_scan_header(scan, channels=bundle.input_channels)
        check_spacing(info.affine, source)
        check_memory(info, bundle, budget, channels, prefetch)
        check_finite_voxels(info.path)
    except Exception as error:  # a library's own exception from an odd file is that file's one line too
        if interrupted(error):
            raise KeyboardInterrupt from error
        raise as_user_error(error, source) from None
    return ScanInput(source, info.path, modality)


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
    inputs: Sequence[str | Path | ScanRequest],
    output_dir: str | Path,
    *,
    lists: Sequence[str | Path] = (),
    weights: str | Path | Sequence[str | Path] | None = None,
    device: str = "auto",
    options: InferenceOptions | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: Callable[[RunProgress], None] | None = None,
    extras: bool = True,
    max_memory: int | None = None,
    ignore_modality: bool = False,
    min_lesion_ml: float = DEFAULT_MIN_LESION_ML,
    prefetch: int = DEFAULT_PREFETCH,
    retry_failed: bool = False,
    step: Callable[[str], None] | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
) -> SegmentReport:
    """Segment scans, skipping (and reporting) those that fail.

    The bundle's workflow is built and its weights loaded once; scans are read and preprocessed
    ahead of the network, and written behind it (:mod:`medseg.inference.pipeline`). A run of two or
    more scans keeps ``OUTDIR/manifest.jsonl`` (:mod:`medseg.inference.manifest`): a re-run skips the
    scans done since with the same inputs and settings, and ``cohort.csv`` and ``cohort.html`` sum it up.

    Args:
        bundle: the bundle to run.
        inputs: NIfTI scans, DICOM series folders, or folders of either
            (:func:`medseg.inference.cohort_inputs.expand_inputs`; the mask of folder ``X`` is
            ``X_seg.nii.gz``, on the series' grid).
        output_dir: where ``<name>_seg.nii.gz`` masks go (created if missing).
        lists: files that list scans, one path a line or a CSV with ``path`` and ``case_id`` columns.
        weights: weights file, or several for an ensemble that averages their probabilities;
            defaults to the bundle's ``models/model.pt``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        options: fast path or stock recipe, overlap, TTA, coarse, label rules.
        overrides: further config overrides, id to value.
        progress: called as each scan ends (done, failed) with the run's counts and the scan's error.
        extras: also write each case's ``.seg.nrrd``, ``_stats.json`` and ``_overlay.png``, and the run's
            ``stats.csv``, ``report.html``, colour table and ``open_in_slicer.py``; False writes masks only.
        max_memory: bytes the run may need (:meth:`medseg.inference.memory.StageBytes.pipeline`); a scan
            that needs more is refused before work starts. Default: the memory available now.
        ignore_modality: segment a scan whose file names another modality than the bundle's (DICOM
            records it; NIfTI does not) instead of refusing it.
        min_lesion_ml: lesions smaller than this (mL) are counted in the statistics and the report, not listed.
        prefetch: scans that may wait, preprocessed, for the network (and as many for the writer).
        retry_failed: segment again the scans that failed in an earlier run into ``output_dir``.
        step: called with a few words as each step starts, for a progress display.
        ray_address: segment on Ray (:mod:`medseg.inference.cluster`): ``local`` starts Ray on this
            machine, ``auto`` joins this node's cluster, ``host:port`` joins that head; None runs here.
        workers: Ray actors that segment (default: one per GPU on CUDA, else 1).

    Raises:
        MedsegError: for unusable inputs, list files, weights, options, override ids or output folder, or
            duplicate output names (before any work).
    """
    requests = expand_inputs(inputs, lists)
    if not requests:
        raise MedsegError("no input scans given")
    if not min_lesion_ml >= 0:
        raise MedsegError(f"the smallest lesion to list must be 0 mL or more, not {min_lesion_ml}")
    if prefetch < 1:
        raise MedsegError(f"`prefetch` must be 1 or more, not {prefetch}")
    _unique_names(requests)
    if ray_address is not None:
        check_ray()
    elif workers is not None:
        raise MedsegError("`workers` is for a Ray run: give `ray_address` too")
    if workers is not None and workers < 1:
        raise MedsegError(f"`workers` must be 1 or more, not {workers}")
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
    record = None
    if extras:  # the statistics, table and report carry the run's provenance
        options_used = options_record(options, overrides or {}, min_lesion_ml=min_lesion_ml)
        record = CaseRecord(run_provenance(bundle, members, device=device, options=options_used), min_lesion_ml)
    run = _Run(
        bundle,
        Path(output_dir),
        record,
        SegmentReport(chosen_path(bundle, options)),
        manifest=Manifest(Path(output_dir)) if _keeps_manifest(requests, Path(output_dir)) else None,
        key=run_key({**config, "extras": extras, "min_lesion_ml": min_lesion_ml}, members),
        progress=progress,
    )
    todo = run.to_do(requests, retry_failed)
    budget = available_memory() if max_memory is None else max_memory
    channels = held_channels(bundle, options, overrides)
    checks = _Checks(bundle, budget, channels, ignore_modality, min(prefetch, len(todo) - 1) if todo else 0)
    say = step or (lambda words: None)
    if todo:
        output = Path(output_dir)  # the staging folder is set when the run makes it
        spec = WorkerSpec(bundle, output, output, config, todo[0].source, record, checks.prepare_into, prefetch, say)
        cluster = None if ray_address is None else ClusterOptions(ray_address, workers)
        with engine_logs_silenced():
            run.segment(todo, spec, cluster)
    run.write_run_files(say, cohort=run.manifest is not None)
    return run.report


def _keeps_manifest(requests: Sequence[ScanRequest], output: Path) -> bool:
    """A run keeps a manifest when it is a cohort (two scans or more), or one was kept in its folder before."""
    return len(requests) > 1 or (output / MANIFEST).is_file()


@dataclass(frozen=True)
class _Checks:
    """The checks each scan passes before the network, with what they need."""

    bundle: Bundle
    budget: int
    channels: int
    ignore_modality: bool
    prefetch: int

    def prepare_into(self, scratch: Path) -> Callable[[ScanRequest], ScanInput]:
        """The reader's ``prepare``: check a request, converting a DICOM image into ``scratch``."""
        return lambda request: _checked_scan(
            request,
            scratch,
            self.bundle,
            self.budget,
            channels=self.channels,
            ignore_modality=self.ignore_modality,
            prefetch=self.prefetch,
        )


class _Run:
    """One run into an output folder: its report, manifest and staging folder, and each scan's end."""

    def __init__(
        self,
        bundle: Bundle,
        output: Path,
        record: CaseRecord | None,
        report: SegmentReport,
        *,
        manifest: Manifest | None,
        key: str,
        progress: Callable[[RunProgress], None] | None,
    ) -> None:
        self.bundle, self.output, self.record, self.report = bundle, output, record, report
        self.manifest, self.key, self.progress = manifest, key, progress
        self.staging = output
        self.lock = threading.Lock()
        self.counts = RunProgress(total=0)
        self.fingerprints: dict[Path, str] = {}  # each input's, taken once before any is read

    def to_do(self, requests: Sequence[ScanRequest], retry_failed: bool) -> list[ScanRequest]:
        """The requests this run segments: all, less those its manifest says are finished."""
        todo = []
        for request in requests:
            source = str(request.source.absolute())
            self.fingerprints[request.source] = fingerprint(request.source)
            if self.manifest and self.manifest.is_finished(
                source, self.fingerprints[request.source], self.key, self.output, retry_failed
            ):
                self.report.skipped.append(request.source)
            else:
                todo.append(request)
        self.counts = RunProgress(total=len(requests), skipped=len(self.report.skipped))
        return todo

    def segment(self, todo: list[ScanRequest], spec: WorkerSpec, cluster: ClusterOptions | None) -> None:
        """Segment ``todo`` in this process, or on Ray, into a staging folder then the output."""
        created = not self.output.exists()
        self.output.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(self.output)
        self.staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.output))
        try:
            self._note([self._entry(request, "pending") for request in todo])
            spec = replace(spec, staging=self.staging)
            if cluster is None:
                worker = ScanWorker(spec)
                try:
                    worker.segment(todo, self.ended)
                finally:
                    worker.close()
            else:
                from medseg.inference.cluster import segment_on_ray

                segment_on_ray(spec, todo, cluster, self.ended)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            if created and not self.report.written:  # a run that made the folder and wrote nothing leaves nothing
                (self.output / MANIFEST).unlink(missing_ok=True)
                if not any(self.output.iterdir()):
                    self.output.rmdir()

    def ended(self, result: ScanResult) -> None:
        """Record how a scan ended (done with its files, or failed with its one line): the only manifest writer."""
        with self.lock:
            if result.error is None:
                assert result.mask is not None
                self.report.written.append(result.mask)
                self.report.warnings += list(result.warnings)
                entry = self._entry(result.request, "done", outputs=list(result.outputs), seconds=result.seconds)
                self._note([entry])
                self._tick(done=1)
            else:
                self.report.failed.append(result.error)
                entry = self._entry(result.request, "failed", error=result.error.problem, seconds=result.seconds)
                self._note([entry])
                self._tick(failed=1, error=result.error)

    def _entry(self, request: ScanRequest, state: str, **details: Any) -> Entry:
        return Entry(
            input=str(request.source.absolute()),
            name=request.name,
            fingerprint=self.fingerprints[request.source],
            run=self.key,
            state=state,
            time=now(),
            **details,
        )

    def _note(self, entries: list[Entry]) -> None:
        if self.manifest is not None:
            self.manifest.append(entries)

    def _tick(self, *, done: int = 0, failed: int = 0, error: MedsegError | None = None) -> None:
        counts = self.counts
        self.counts = replace(counts, done=counts.done + done, failed=counts.failed + failed, error=error)
        if self.progress is not None:
            self.progress(self.counts)

    def write_run_files(self, say: Callable[[str], None], *, cohort: bool) -> None:
        """The run's table, report, colour table and Slicer snippet; for a cohort, its summary too."""
        if self.record is None or not (self.report.written or self.report.skipped):
            return
        say("writing stats.csv, report.html and open_in_slicer.py")
        self.report.warnings += [f"{self.output}: {w}" for w in write_run_outputs(self.bundle, self.output)]
        if cohort and self.manifest is not None:
            say("writing cohort.csv and cohort.html")
            self.report.summary = write_cohort_summary(self.bundle, self.output, self.manifest)


def remove_stale_staging(output: Path) -> None:
    """Remove the staging folders that runs killed before they could clean up left in ``output``.

    A staging folder is named after its run's process; one whose process is gone is stale.
    """
    for folder in output.glob(f"{STAGING_PREFIX}*"):
        pid = folder.name.removeprefix(STAGING_PREFIX).partition("-")[0]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def segment(bundle: Bundle, inputs: Sequence[str | Path], output_dir: str | Path, **kwargs: Any) -> list[Path]:
    """Like :func:`segment_report`, but raise if any scan fails (:meth:`SegmentReport.raise_for_failures`)."""
    report = segment_report(bundle, inputs, output_dir, **kwargs)
    report.raise_for_failures()
    return report.written
