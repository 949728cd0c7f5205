"""``medseg infer --ray ADDRESS``: a cohort on a Ray cluster, the manifest kept by the driver.

Each scan goes through three Ray calls, chained by their results (Ray runs each as soon as the one
before has ended, on any node with room)::

    load task      check the scan, read it, run the bundle's preprocessing   (any node, one CPU)
    network actor  the bundle's evaluator: network and inferer               (one GPU each, or CPU threads)
    finish task    postprocessing (resample back, write the mask), the case's other files   (any node, one CPU)

- The driver (this process) has expanded the inputs and read the manifest. It keeps
  :data:`IN_FLIGHT` scans per actor going, so an actor's next scan is loaded while it runs one.
- The actors build the bundle's workflow and load the weights once; on CUDA one GPU each, on CPU
  ``cores / workers`` PyTorch threads each. The tasks run in Ray's worker processes, which build the
  workflow's preprocessing and postprocessing once per process (:func:`_worker`) and keep it.
- Scans travel between the calls through Ray's object store: the preprocessed image on the network's
  grid, then the network's output with its metadata. Files are written by the finish task into the
  shared output folder (staging, then rename); DICOM series are converted into the same storage, so that
  a scan loaded on one node can be finished on another. Only the driver writes the manifest.
- A task whose process dies is run again (:data:`RETRIES` times) by Ray. An actor that dies is restarted,
  on any node with room, at most :data:`RETRIES` times, and the calls it had not finished run again
  there. A scan whose actor died for good fails with one line; a scan that fails in a stage fails with
  its own line. Either way every scan is recorded once.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medseg.errors import MedsegError
from medseg.inference.cohort_inputs import ScanRequest
from medseg.inference.pipeline import Job
from medseg.inference.scan_worker import ScanResult, ScanWorker, WorkerSpec, as_user_error
from medseg.io.paths import ScanInput

INSTALL = "pip install 'medseg[cluster]'"
RETRIES = 3  # times Ray runs a task again, or restarts an actor, whose process died
IN_FLIGHT = 2  # scans going per actor: the next one is loaded while the network runs one

Loaded = tuple[ScanInput, dict[str, Any]]  # a checked scan and its data: preprocessed, or the network's output


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how wide a ``--ray`` run goes.

    Args:
        address: ``local`` (start Ray here, on 127.0.0.1), ``auto`` (the cluster this node belongs to)
            or ``host:port`` of a head.
        workers: actors that segment; default one per GPU on CUDA, else 1.
    """

    address: str
    workers: int | None = None


_cached: tuple[Path, ScanWorker] | None = None  # the workflow a Ray worker process built for a run's tasks


def _worker(spec: WorkerSpec) -> ScanWorker:
    """This process's :class:`ScanWorker` for ``spec``'s run, built at its first task and kept for the next ones.

    A run is known by its staging folder (a new one each run).
    """
    global _cached
    if _cached is None or _cached[0] != spec.staging:
        _cached = spec.staging, ScanWorker(spec, shared_scratch=True)
    return _cached[1]


def _load(spec: WorkerSpec, request: ScanRequest) -> Loaded:
    """The load task: check and preprocess one scan."""
    return _worker(spec).load(request)


def _finish(spec: WorkerSpec, request: ScanRequest, predicted: Loaded) -> ScanResult:
    """The finish task: postprocess the network's output of one scan and write its files."""
    scan, data = predicted
    return _worker(spec).finish(Job(request, 0, time.perf_counter(), scan, data))


class _Network:
    """The body of a network actor: the bundle's evaluator, run once over the stream of scans its calls bring.

    Each :meth:`predict` call (several at once: a threaded actor) adds its scan to the stream and waits for
    the network's output. The evaluator runs in a thread of its own for the actor's life
    (:func:`medseg.inference.pipeline.run_pipeline`), so the network is built and the weights loaded once.
    """

    def __init__(self, spec: WorkerSpec, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.worker = ScanWorker(spec, shared_scratch=True)
        self.stream: queue.Queue[ScanRequest | None] = queue.Queue()
        self.loaded: dict[str, Loaded] = {}
        self.waiting: dict[str, Future[Loaded]] = {}
        self.lock = threading.Lock()
        self.evaluator = self._start()

    def _start(self) -> threading.Thread:
        evaluator = threading.Thread(target=self._run, name="medseg-network", daemon=True)
        evaluator.start()
        return evaluator

    def _run(self) -> None:
        from medseg.inference.pipeline import run_pipeline

        try:
            run_pipeline(
                self.worker.workflow,
                iter(self.stream.get, None),
                prefetch=1,
                load=lambda request: self.loaded.pop(request.name),
                finish=lambda job: self.waiting.pop(job.request.name).set_result(_output(job)),
                fail=lambda job, error: self.waiting.pop(job.request.name).set_exception(error),
            )
        except BaseException as error:  # the evaluator itself broke: the calls waiting fail with it
            with self.lock:
                waiting, self.waiting = self.waiting, {}
            for future in waiting.values():
                future.set_exception(error)

    def predict(self, request: ScanRequest, loaded: Loaded) -> Loaded:
        """The network's output for one loaded scan, with the batch's metadata (what the finish task needs)."""
        result: Future[Loaded] = Future()
        with self.lock:
            if not self.evaluator.is_alive():  # it broke on an earlier scan: the next scans get a new one
                self.stream = queue.Queue()
                self.evaluator = self._start()
            self.loaded[request.name], self.waiting[request.name] = loaded, result
            self.stream.put(request)
        return result.result()

    def close(self) -> None:
        """End the stream, finalize the workflow and remove the actor's staging folder."""
        self.stream.put(None)
        self.evaluator.join()
        self.worker.close()

    def pid(self) -> int:
        """The actor's process id (for tests that kill it)."""
        return os.getpid()


def _output(job: Job) -> Loaded:
    assert job.scan is not None and job.data is not None
    return job.scan, job.data


def segment_on_ray(
    spec: WorkerSpec, todo: Sequence[ScanRequest], cluster: ClusterOptions, record: Callable[[ScanResult], None]
) -> None:
    """Segment ``todo`` on Ray actors, calling ``record`` in this process as each scan ends.

    Raises:
        MedsegError: Ray is not installed, or the cluster cannot be reached.
    """
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        _connect(ray, cluster.address)
    try:
        spec = replace(spec, say=_quiet)
        actors = _start_actors(ray, spec, cluster.workers, len(todo), spec.config["device"])
        _drive(ray, actors, spec, todo, record)
        ray.get([actor.close.remote() for actor in actors])
    finally:
        if started:
            ray.shutdown()


def _quiet(words: str) -> None:
    """An actor's step messages go nowhere: the driver shows the run's progress."""


def check_ray() -> None:
    """Refuse a ``--ray`` run before any work when Ray is not installed.

    Raises:
        MedsegError: naming the install.
    """
    _ray()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MedsegError(f"`ray_address` needs Ray: {INSTALL}") from None
    return ray


def _connect(ray: Any, address: str) -> None:
    """Start Ray on this machine (``local``, bound to 127.0.0.1) or join a running cluster."""
    try:
        if address == "local":
            ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise MedsegError(f"cannot reach the Ray cluster at {address} ({reason})") from None


def _start_actors(ray: Any, spec: WorkerSpec, workers: int | None, scans: int, device: str) -> list[Any]:
    """Start the network actors: one GPU each on CUDA, else ``cores / workers`` PyTorch threads each.

    The actors ask Ray for no CPU, so that the load and finish tasks (one CPU each) always find room; on
    CPU the network's threads share the cores with them. Ray spreads the actors over the nodes.
    """
    resources = ray.cluster_resources()
    gpu = "cuda" in str(device)
    count = workers if workers is not None else max(1, int(resources.get("GPU", 0))) if gpu else 1
    count = min(count, scans)
    options: dict[str, Any] = {
        "max_restarts": RETRIES,
        "max_task_retries": RETRIES,
        "max_concurrency": IN_FLIGHT + 1,  # the calls waiting for the network, and close()
        "num_cpus": 0,
        "scheduling_strategy": "SPREAD",
    }
    if gpu:
        options["num_gpus"] = 1
    actor_class = ray.remote(**options)(_Network)
    threads = max(1, int(resources.get("CPU", 1)) // count)
    return [actor_class.remote(spec, threads) for _ in range(count)]


def _drive(
    ray: Any, actors: list[Any], spec: WorkerSpec, todo: Sequence[ScanRequest], record: Callable[[ScanResult], None]
) -> None:
    """Chain each scan's load, network and finish, :data:`IN_FLIGHT` per actor; record each scan's end."""
    from ray.exceptions import RayActorError, RayError

    load = ray.remote(num_cpus=1, max_retries=RETRIES)(_load)
    finish = ray.remote(num_cpus=1, max_retries=RETRIES)(_finish)
    shared = ray.put(spec)
    waiting = deque(todo)
    running: dict[Any, tuple[Any, ScanRequest, float]] = {}

    def hand(actor: Any) -> None:
        if waiting:
            request = waiting.popleft()
            predicted = actor.predict.remote(request, load.remote(shared, request))
            running[finish.remote(shared, request, predicted)] = (actor, request, time.perf_counter())

    for actor in actors:
        for _ in range(IN_FLIGHT):
            hand(actor)
    while running:
        [ready], _ = ray.wait(list(running), num_returns=1)
        actor, request, started = running.pop(ready)
        seconds = time.perf_counter() - started
        try:
            result = replace(ray.get(ready), seconds=seconds)
        except RayError as error:
            cause = getattr(error, "cause", None) or error
            if isinstance(error, RayActorError) or isinstance(cause, RayActorError):
                # the actor is dead after its restarts: this scan fails; the others go to the actors left
                if actor in actors:
                    actors.remove(actor)
                died = MedsegError(f"its Ray worker died ({_first_line(error)})", request.source)
                result = ScanResult(request, seconds, error=died)
                _fail_if_no_actors(actors, waiting, record)
            else:  # the scan itself failed in a stage: its own line
                result = ScanResult(request, seconds, error=as_user_error(cause, request.source))
                hand(actor)
        else:
            hand(actor)
        record(result)


def _fail_if_no_actors(actors: list[Any], waiting: deque[ScanRequest], record: Callable[[ScanResult], None]) -> None:
    """With every actor dead for good, the scans still waiting fail: no worker is left to run them."""
    while not actors and waiting:
        request = waiting.popleft()
        record(ScanResult(request, 0.0, error=MedsegError("no Ray worker left to segment it", request.source)))


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
