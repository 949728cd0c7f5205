"""``medseg infer --ray ADDRESS``: a cohort's scans segmented by Ray actors, the manifest kept by the driver.

The design is one actor per worker, each running the whole single-process pipeline
(:class:`medseg.inference.scan_worker.ScanWorker`: read, check, preprocess, network, resample back,
write) on the scans it is handed, with its reader and writer threads overlapping its network. The
issue asked for the CPU stages as separate Ray tasks; one actor per worker is simpler, and keeps a
scan's data inside one process (no volume goes through Ray's object store).

- The driver (this process) has expanded the inputs and read the manifest; it hands the actors one
  scan per call, :data:`IN_FLIGHT` calls queued on each, so none waits between scans.
- Each actor builds the bundle's workflow and loads the weights once. On CPU an actor takes
  ``cores / workers`` of the cluster's CPUs and as many PyTorch threads; on CUDA one GPU each.
- Actors write a scan's files into the shared output folder (staging, then rename), and return a
  :class:`~medseg.inference.scan_worker.ScanResult`; only the driver writes the manifest.
- An actor that dies (its process killed, its node lost) is restarted by Ray, on any node with room,
  at most :data:`RESTARTS` times, and the calls it had not finished run again there. A scan whose
  worker died for good fails with one line. Either way every scan is recorded once.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from medseg.errors import MedsegError
from medseg.inference.cohort_inputs import ScanRequest
from medseg.inference.scan_worker import ScanResult, ScanWorker, WorkerSpec

INSTALL = "pip install 'medseg[cluster]'"
RESTARTS = 3  # times Ray restarts an actor that died, running its unfinished calls again
IN_FLIGHT = 2  # calls queued on each actor: the next scan is there when one ends


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


class _Actor:
    """The body of a Ray actor: a :class:`ScanWorker` with its share of the node's threads."""

    def __init__(self, spec: WorkerSpec, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.worker = ScanWorker(spec)

    def segment(self, request: ScanRequest) -> list[ScanResult]:
        """Segment one scan and return how it ended."""
        results: list[ScanResult] = []
        self.worker.segment([request], results.append)
        return results

    def close(self) -> None:
        """Finalize the workflow and remove the actor's staging and scratch folders."""
        self.worker.close()

    def pid(self) -> int:
        """The actor's process id (for tests that kill it)."""
        return os.getpid()


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
        actors = _start_actors(ray, replace(spec, say=_quiet), cluster.workers, len(todo), spec.config["device"])
        _drive(ray, actors, todo, record)
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
    """Start the actors: one GPU each on CUDA, else ``cores / workers`` CPUs and PyTorch threads each."""
    resources = ray.cluster_resources()
    gpu = "cuda" in str(device)
    count = workers if workers is not None else max(1, int(resources.get("GPU", 0))) if gpu else 1
    count = min(count, scans)
    cpus = max(1, int(resources.get("CPU", 1)) // count)
    options: dict[str, Any] = {"max_restarts": RESTARTS, "max_task_retries": RESTARTS, "num_cpus": 0 if gpu else cpus}
    if gpu:
        options["num_gpus"] = 1
    actor_class = ray.remote(**options)(_Actor)
    return [actor_class.remote(spec, cpus) for _ in range(count)]


def _drive(ray: Any, actors: list[Any], todo: Sequence[ScanRequest], record: Callable[[ScanResult], None]) -> None:
    """Hand each actor scans until none are left, recording each scan's end as it comes back."""
    from ray.exceptions import RayActorError

    waiting = deque(todo)
    running: dict[Any, tuple[Any, ScanRequest]] = {}

    def hand(actor: Any) -> None:
        if waiting:
            request = waiting.popleft()
            running[actor.segment.remote(request)] = (actor, request)

    for actor in actors:
        for _ in range(IN_FLIGHT):
            hand(actor)
    while running:
        [ready], _ = ray.wait(list(running), num_returns=1)
        actor, request = running.pop(ready)
        try:
            results = ray.get(ready)
        except RayActorError as error:  # dead after its restarts: this scan fails; the others go elsewhere
            if actor in actors:
                actors.remove(actor)
            died = MedsegError(f"its Ray worker died ({_first_line(error)})", request.source)
            results = [ScanResult(request, 0.0, error=died)]
            _fail_if_no_actors(actors, waiting, record)
        else:
            hand(actor)
        for result in results:
            record(result)


def _fail_if_no_actors(actors: list[Any], waiting: deque[ScanRequest], record: Callable[[ScanResult], None]) -> None:
    """With every actor dead for good, the scans still waiting fail: no worker is left to run them."""
    while not actors and waiting:
        request = waiting.popleft()
        record(ScanResult(request, 0.0, error=MedsegError("no Ray worker left to segment it", request.source)))


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
