"""Many scans through one bundle workflow, built once, with the CPU stages overlapping the network.

Three stages run at once, joined by bounded queues::

    reader thread   load: check a scan, run the bundle's preprocessing   -> ready   (at most ``prefetch``)
    main thread     the bundle's evaluator: network and inferer          -> written (at most ``prefetch``)
    writer thread   finish: the bundle's postprocessing (resampling back, the mask writer), the case's other files

What loading and finishing do is the caller's (:class:`medseg.inference.scan_worker.ScanWorker`); on
Ray, loading and finishing are Ray tasks of their own and the pipeline runs the network alone.

The evaluator runs once over a stream of preprocessed scans, so the network is built and its
weights (and an ensemble's members) are loaded once for the whole run, whatever the number of
scans. The stages are threads: PyTorch, NumPy, nibabel's decompression and ITK release the GIL
while they work. At most ``prefetch`` scans wait in each queue, so memory stays bounded
(:meth:`medseg.inference.memory.StageBytes.pipeline`).

The bundle's configs still say everything: the evaluator, its network, inferer and handlers are
the bundle's; its dataset's transform (the preprocessing) runs in the reader thread instead of the
data loader, and its evaluator's postprocessing in the writer thread instead of after each iteration.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

from torch.utils.data import IterableDataset

from medseg.errors import interrupted
from medseg.inference.cohort_inputs import ScanRequest
from medseg.io.paths import ScanInput
from medseg.memory import release_freed_memory

POSTPROCESSING_ID = "medseg_cohort_postprocessing"  # where the evaluator's postprocessing is kept
_END = None  # what a queue holds after its last job
_POLL_S = 0.2  # how often a blocked stage looks whether the run was stopped


@dataclass
class Job:
    """One scan going through the stages: what was asked, the checked scan, its data, when it started."""

    request: ScanRequest
    index: int
    started: float
    scan: ScanInput | None = None
    data: dict[str, Any] | None = None

    @property
    def seconds(self) -> float:
        """Seconds since the scan's first stage started."""
        return time.perf_counter() - self.started


Load = Callable[[ScanRequest], tuple[ScanInput, dict[str, Any]]]  # the checked scan and its preprocessed data
Finish = Callable[[Job], None]
Fail = Callable[[Job, BaseException], None]


def preprocessing(workflow: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The bundle's preprocessing (its evaluator dataset's transform) of an initialised workflow."""
    transform: Callable[[dict[str, Any]], dict[str, Any]] = workflow.evaluator.data_loader.dataset.transform
    return transform


def postprocessing(workflow: Any) -> Callable[[dict[str, Any]], Any]:
    """The evaluator's postprocessing that :func:`detach_postprocessing` kept aside, of an initialised workflow."""
    transform: Callable[[dict[str, Any]], Any] = workflow.parser.get_parsed_content(POSTPROCESSING_ID)
    return transform


def detach_postprocessing(workflow: Any) -> None:
    """Move the evaluator's postprocessing of a workflow not yet initialised to ``POSTPROCESSING_ID``.

    The evaluator then ends each iteration with the network's output, which :func:`run_pipeline`
    hands to its writer thread, where the postprocessing runs.
    """
    workflow.parser[POSTPROCESSING_ID] = workflow.parser["evaluator#postprocessing"]
    workflow.parser["evaluator#postprocessing"] = None


class _Stream(IterableDataset):
    """The evaluator's data: preprocessed scans from the reader, each noted as in flight as it goes."""

    def __init__(self, stages: _Stages, total: int | None) -> None:
        super().__init__()
        self.stages, self.ready, self.in_flight, self.total = stages, stages.ready, stages.in_flight, total

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (job := self._next()) is not _END:
            data, job.data = job.data, None  # the batch the loader makes is the only copy kept
            assert data is not None  # the reader queues a job once its data is made
            self.in_flight.append(job)
            of = f"/{self.total}" if self.total is not None else ""
            self.stages.say(f"segmenting {job.request.name} ({job.index}{of})")
            yield data
        self.ready.put(_END)  # a later pass (after a failed scan) ends too

    def _next(self) -> Job | None:
        """The next preprocessed scan; the end once the reader is done, or the run was stopped."""
        while True:
            try:
                return self.ready.get(timeout=_POLL_S)
            except queue.Empty:
                if self.stages.stop.is_set():
                    return _END


def _put(target: queue.Queue[Job | None], job: Job | None, stop: threading.Event) -> bool:
    """Put ``job`` into a bounded queue, waiting for room; False when the run was stopped first."""
    while not stop.is_set():
        try:
            target.put(job, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class _Stages:
    """The reader and writer threads of one run, and what they share."""

    def __init__(self, prefetch: int, load: Load, finish: Finish, fail: Fail, say: Callable[[str], None]) -> None:
        self.load, self.finish, self.fail, self.say = load, finish, fail, say
        self.ready: queue.Queue[Job | None] = queue.Queue(maxsize=prefetch)
        self.written: queue.Queue[Job | None] = queue.Queue(maxsize=prefetch)
        self.in_flight: deque[Job] = deque()
        self.stop = threading.Event()
        self.crashed: BaseException | None = None  # what stopped a stage's thread itself (not one scan)

    def guarded(self, stage: Callable[..., None]) -> Callable[..., None]:
        """``stage`` for a thread: an error that escapes it (its ``fail`` failing, say) stops the whole run."""

        def run(*args: Any) -> None:
            try:
                stage(*args)
            except BaseException as error:
                self.crashed = error
                self.stop.set()

        return run

    def read(self, requests: Iterable[ScanRequest]) -> None:
        """Check and preprocess each scan in turn; hand it to the network, or report its failure."""
        for index, request in enumerate(requests, start=1):
            if self.stop.is_set():
                return
            job = Job(request, index, time.perf_counter())
            try:
                job.scan, job.data = self.load(request)
                release_freed_memory()  # the full-size copies, freed in this thread's heap, which no other stage reuses
            except Exception as error:  # one scan's failure is its own
                self.fail(job, error)
                continue
            if not _put(self.ready, job, self.stop):
                return
        _put(self.ready, _END, self.stop)

    def write(self) -> None:
        """Finish (resample back, write the mask and the other files) each scan the network is done with."""
        while not self.stop.is_set():
            try:
                job = self.written.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if job is _END:
                return
            try:
                self.finish(job)
            except Exception as error:  # one scan's failure is its own
                self.fail(job, error)

    def hand_over(self, engine: Any) -> None:
        """After the network: pass the scan (its input's metadata and the network's output) to the writer."""
        job = self.in_flight.popleft()
        job.data = {**engine.state.batch[0], **engine.state.output[0]}
        engine.state.batch = engine.state.output = None
        _put(self.written, job, self.stop)


def run_pipeline(
    workflow: Any,
    requests: Iterable[ScanRequest],
    *,
    prefetch: int,
    load: Load,
    finish: Finish,
    fail: Fail,
    say: Callable[[str], None] = lambda words: None,
) -> None:
    """Segment ``requests`` through ``workflow``: initialised, its postprocessing detached.

    The workflow is left as it was found, so that it can segment more scans in another call.

    Args:
        workflow: the bundle's inference ``ConfigWorkflow``, after :func:`detach_postprocessing` and ``initialize()``.
        requests: the scans, in order: a sequence, or an iterator that waits for the next scan (a stream).
        prefetch: scans that may wait, read and preprocessed, for the network; and as many for the writer.
        load: checks a request and returns the scan the bundle reads and its preprocessed data (raises for a
            bad one).
        finish: called in the writer thread with the scan and the network's output (``job.data``: the
            batch's metadata and ``pred``), to postprocess it and write the files.
        fail: called (from any stage's thread) with a scan and the error that stopped it.
        say: called with ``segmenting <name> (i/n)`` as each scan reaches the network.
    """
    from monai.data import DataLoader
    from monai.engines.utils import IterationEvents

    stages = _Stages(prefetch, load, finish, fail, say)
    evaluator = workflow.evaluator
    bundle_loader = evaluator.data_loader  # put back at the end, so that the workflow can run more scans later
    evaluator.data_loader = DataLoader(
        _Stream(stages, len(requests) if isinstance(requests, Sized) else None),
        batch_size=1,
        num_workers=0,
        collate_fn=evaluator.data_loader.collate_fn,
    )
    evaluator.add_event_handler(IterationEvents.MODEL_COMPLETED, stages.hand_over)
    reader = threading.Thread(target=stages.guarded(stages.read), args=(requests,), name="medseg-reader", daemon=True)
    writer = threading.Thread(target=stages.guarded(stages.write), name="medseg-writer", daemon=True)
    reader.start()
    writer.start()
    try:
        _run_evaluator(evaluator, stages)
        _put(stages.written, _END, stages.stop)
        writer.join()
    finally:
        stages.stop.set()
        reader.join()
        writer.join()
        evaluator.data_loader = bundle_loader
        evaluator.remove_event_handler(stages.hand_over, IterationEvents.MODEL_COMPLETED)
    if stages.crashed is not None:
        raise stages.crashed


def _run_evaluator(evaluator: Any, stages: _Stages) -> None:
    """Run the evaluator over the stream; a scan that fails in the network is reported and the run goes on."""
    while True:
        evaluator.state.epoch_length = None  # a stream: the epoch ends when the reader does
        try:
            evaluator.run()
            return
        except Exception as error:
            if interrupted(error):
                raise KeyboardInterrupt from error
            if not stages.in_flight:
                raise
            stages.fail(stages.in_flight.popleft(), error)
