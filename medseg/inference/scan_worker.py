"""A bundle's workflow, built once, segmenting the scans it is given into a shared output folder.

One process runs one :class:`ScanWorker`: ``medseg infer`` on its own, or each Ray actor of a
``--ray`` run (:mod:`medseg.inference.cluster`). The worker checks, segments and writes each scan
(staging folder, then a rename into the output folder) and hands back a :class:`ScanResult`; it
never touches the manifest, which is the run's (its driver's) alone.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.bundles import Bundle, load_workflow
from medseg.errors import MedsegError, root_cause
from medseg.inference.cohort_inputs import ScanRequest
from medseg.inference.outputs import CaseRecord, publish_case, write_case_outputs
from medseg.inference.pipeline import Job, detach_postprocessing, postprocessing, preprocessing, run_pipeline
from medseg.io import read_ahead
from medseg.io.paths import CaseFiles, ScanInput
from medseg.memory import release_freed_memory

# ``prepare`` given the worker's scratch folder: the checks a scan passes before the network
Checks = Callable[[Path], Callable[[ScanRequest], ScanInput]]


@dataclass(frozen=True)
class ScanResult:
    """How one scan ended: its mask and output file names, or its one-line error; seconds it took.

    ``warnings`` are ``file: problem`` lines about optional outputs that could not be made.
    """

    request: ScanRequest
    seconds: float
    mask: Path | None = None
    outputs: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    error: MedsegError | None = None


@dataclass(frozen=True)
class WorkerSpec:
    """All a worker needs to build its workflow (picklable, to ship to a Ray actor).

    Args:
        bundle: the bundle to run.
        output: the output folder every worker writes into.
        staging: the run's staging folder inside ``output``; each worker stages in a folder of its own there.
        config: the inference config overrides (weights, device, path options), id to value.
        sample: a scan path for the bundle's dataset to name at build time (never read).
        record: the provenance the statistics carry; None writes masks only.
        checks: the checks each scan passes, given a scratch folder.
        prefetch: scans that may wait for the network, and as many for the writer.
        say: called with a few words as each step starts, for a progress display.
    """

    bundle: Bundle
    output: Path
    staging: Path
    config: dict[str, Any]
    sample: Path
    record: CaseRecord | None
    checks: Checks
    prefetch: int
    say: Callable[[str], None] = field(default=lambda words: None, compare=False)


class ScanWorker:
    """Builds the bundle's workflow once (network, weights, ensemble members) and segments scans with it."""

    def __init__(self, spec: WorkerSpec, *, shared_scratch: bool = False) -> None:
        """Build the workflow.

        Args:
            spec: what to build and where to write.
            shared_scratch: convert DICOM series in the worker's staging folder (on the output's storage,
                which every node sees) rather than in a local temporary folder: on Ray, a scan may be
                loaded on one node and finished on another.
        """
        self.spec = spec
        self.staging = Path(tempfile.mkdtemp(prefix="worker-", dir=spec.staging))
        self.scratch = self.staging if shared_scratch else Path(tempfile.mkdtemp(prefix="medseg-dicom-"))
        writer = {"_target_": "medseg.io.mask_writer.SaveMaskd", "keys": "pred", "output_dir": str(self.staging)}
        spec.say(f"building the workflow of {spec.bundle.name}")
        self.workflow = load_workflow(
            spec.bundle, ["inference"], workflow_type="infer", overrides={**spec.config, "writer": writer}, quiet=True
        )
        # one item, never read (the pipeline feeds the evaluator): a bundle's sampler refuses an empty dataset
        self.workflow.parser["dataset#data"] = [{"image": str(spec.sample.absolute())}]
        detach_postprocessing(self.workflow)
        self.workflow.initialize()
        self.prepare = spec.checks(self.scratch)
        self.preprocess, self.postprocess = preprocessing(self.workflow), postprocessing(self.workflow)

    def segment(self, requests: Sequence[ScanRequest], report: Callable[[ScanResult], None]) -> None:
        """Segment ``requests``, calling ``report`` (from the pipeline's threads) as each one ends."""
        run_pipeline(
            self.workflow,
            requests,
            prefetch=self.spec.prefetch,
            load=self.load,
            finish=lambda job: report(self.finish(job)),
            fail=lambda job, error: report(self.failed(job, error)),
            say=self.spec.say,
        )

    def close(self) -> None:
        """Finalize the workflow and remove the worker's staging and scratch folders."""
        try:
            self.workflow.finalize()
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            shutil.rmtree(self.scratch, ignore_errors=True)

    def load(self, request: ScanRequest) -> tuple[ScanInput, dict[str, Any]]:
        """Check a scan and run the bundle's preprocessing on it: the scan the bundle reads, and its data."""
        scan = self.prepare(request)
        return scan, self.preprocess({"image": str(scan.path.resolve())})

    def finish(self, job: Job) -> ScanResult:
        """Postprocess the network's output and write the scan's other files; then move them all into place.

        ``job.data`` is the network's output with the batch's metadata; the postprocessing resamples it
        back to the scan's grid and writes the mask.
        """
        assert job.scan is not None and job.data is not None
        data, job.data = job.data, None
        self.postprocess(data)
        del data
        spec = self.spec
        staged = CaseFiles(self.staging, job.request.name)
        warnings: list[str] = []
        if spec.record is not None:
            release_freed_memory()  # the scan's network-grid tensors, freed, before the outputs allocate theirs
            warnings = write_case_outputs(spec.bundle, job.scan, staged, spec.record)
        mask = publish_case(staged, spec.output)
        _done_with(job.scan)
        outputs = [path.name for path in case_paths(CaseFiles(spec.output, job.request.name)) if path.is_file()]
        return ScanResult(
            job.request,
            job.seconds,
            mask=mask,
            outputs=tuple(outputs),
            warnings=tuple(f"{job.scan.source}: {warning}" for warning in warnings),
        )

    def failed(self, job: Job, error: BaseException) -> ScanResult:
        """How a scan that ``error`` stopped ended: its one line; its converted NIfTI removed."""
        if job.scan is not None:
            _done_with(job.scan)
        return ScanResult(job.request, job.seconds, error=as_user_error(error, job.request.source))


def as_user_error(error: BaseException, source: Path) -> MedsegError:
    """One line about ``source`` for any failure while segmenting it, from the error that started it."""
    cause = root_cause(error)
    if isinstance(cause, MedsegError):
        return MedsegError(cause.problem, source)
    reason = (str(cause).strip().splitlines() or [""])[0][:300]
    return MedsegError(f"segmentation failed ({type(cause).__name__}: {reason})", source)


def case_paths(files: CaseFiles) -> list[Path]:
    """Every file a case may have in the output folder."""
    return [files.mask, files.segmentation, files.stats, files.overlay, files.viewer, files.dicom_seg]


def _done_with(scan: ScanInput) -> None:
    """Once a scan is done with: forget its read ahead; remove its temporary NIfTI if converted (DICOM) or renamed."""
    read_ahead.forget(scan.path)
    if scan.path != scan.source:
        scan.path.unlink(missing_ok=True)
