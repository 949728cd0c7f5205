"""``--ray``: a cohort on Ray (load and finish tasks, network actors), on a Ray the test starts on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import MedsegError
from medseg.inference import cluster, pipeline
from medseg.inference.manifest import MANIFEST, Manifest
from medseg.inference.predict import segment_report

from .conftest import TINY
from .test_cohort import TINY_FLAGS
from .test_resume import child_env

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.cluster
RAY = [str(Path(sys.executable).with_name("ray"))]


@pytest.fixture
def scans(tmp_path, small_ct) -> Path:
    """A folder of four small CT scans."""
    folder = tmp_path / "scans"
    folder.mkdir()
    for source in sorted((small_ct / "imagesTr").glob("*.nii.gz"))[:4]:
        shutil.copy2(source, folder / source.name)
    return folder


@pytest.fixture
def alone(tmp_path, ct_bundle, scans, random_weights, one_thread) -> Path:
    """The masks of the same scans segmented in this process, one thread (as each actor below)."""
    output = tmp_path / "alone"
    report = segment_report(ct_bundle, [scans], output, weights=random_weights, device="cpu", overrides=TINY)
    assert len(report.written) == 4 and not report.failed
    return output


@pytest.fixture
def local_ray():
    """Ray on this machine, 127.0.0.1 only, two CPUs."""
    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=100 * 2**20,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
    )
    yield
    ray.shutdown()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def two_nodes(monkeypatch):
    """A Ray head and a second node on 127.0.0.1, one CPU each, started as a user would (``ray start``)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token: the nodes and the driver all listen on 127.0.0.1
    address = f"127.0.0.1:{_free_port()}"
    small = ["--num-cpus", "1", "--object-store-memory", str(100 * 2**20)]
    common = ["--node-ip-address", "127.0.0.1", *small, "--disable-usage-stats"]
    start = {"check": True, "capture_output": True, "timeout": 120, "env": child_env()}
    try:
        head = [*RAY, "start", "--head", "--port", address.split(":")[1], "--include-dashboard", "false", *common]
        subprocess.run(head, **start)
        subprocess.run([*RAY, "start", "--address", address, *common], **start)
        yield address
    finally:
        subprocess.run([*RAY, "stop", "--force"], capture_output=True, timeout=120)


def _done_once(output: Path) -> Counter:
    """How many times each scan (by name) was recorded done, and no scan recorded failed."""
    history = Manifest(output).history
    assert not [entry for entry in history if entry.state == "failed"]
    return Counter(entry.name for entry in history if entry.state == "done")


def _same_masks(output: Path, expected: Path) -> None:
    masks = sorted(path.name for path in expected.glob("*_seg.nii.gz"))
    assert masks and sorted(path.name for path in output.glob("*_seg.nii.gz")) == masks
    for name in masks:
        ours, theirs = nib.load(output / name), nib.load(expected / name)
        np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj))
        np.testing.assert_array_equal(ours.affine, theirs.affine)
        assert ours.get_data_dtype() == np.uint8


def test_a_cohort_on_local_ray_with_two_workers_equals_the_single_process_run(
    tmp_path, ct_bundle, scans, random_weights, alone, local_ray
):
    output = tmp_path / "ray"
    report = segment_report(
        ct_bundle, [scans], output, weights=random_weights, device="cpu", overrides=TINY, ray_address="local", workers=2
    )
    assert len(report.written) == 4 and not report.failed
    _same_masks(output, alone)
    assert _done_once(output) == {path.name.removesuffix(".nii.gz"): 1 for path in scans.iterdir()}
    assert (output / "cohort.csv").is_file() and (output / "stats.csv").is_file()
    assert not list(output.glob(".medseg-staging-*"))


def _actor_processes() -> list[int]:
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any("ray::_Network" in part for part in process.info["cmdline"] or []):
            found.append(process.info["pid"])
    return found


def test_a_worker_killed_mid_run_on_two_nodes_leaves_every_scan_done_once(
    tmp_path, scans, random_weights, alone, two_nodes
):
    output = tmp_path / "ray"
    command = [sys.executable, "-m", "medseg", "infer", "ct_liver_tumour_3d", str(scans), "-o", str(output)]
    command += ["--weights", str(random_weights), "--device", "cpu", *TINY_FLAGS, "--ray", two_nodes, "--workers", "2"]
    run = subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = None
    while run.poll() is None and killed is None:  # at the first scan done, each actor has a scan still to do
        if (output / MANIFEST).is_file() and '"state": "done"' in (output / MANIFEST).read_text():
            killed = _actor_processes()[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    printed, _ = run.communicate(timeout=300)
    assert killed is not None and killed not in _actor_processes()
    assert run.returncode == 0, printed
    assert _done_once(output) == {path.name.removesuffix(".nii.gz"): 1 for path in scans.iterdir()}
    _same_masks(output, alone)
    assert not list(output.glob(".medseg-staging-*"))


def test_without_ray_the_error_names_the_install(tmp_path, monkeypatch, ct_bundle, scans, random_weights):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(MedsegError, match=r"^`ray_address` needs Ray: pip install 'medseg\[cluster\]'$"):
        segment_report(ct_bundle, [scans], tmp_path / "out", weights=random_weights, ray_address="local")
    assert not (tmp_path / "out").exists()


def test_workers_without_ray_is_refused(tmp_path, ct_bundle, scans, random_weights):
    with pytest.raises(MedsegError, match=r"^`workers` is for a Ray run: give `ray_address` too$"):
        segment_report(ct_bundle, [scans], tmp_path / "out", weights=random_weights, workers=2)
    assert not (tmp_path / "out").exists()


def test_a_network_actor_builds_its_network_and_loads_the_weights_once_for_all_its_scans(
    tmp_path, monkeypatch, ct_bundle, scans, random_weights, alone, builds_and_loads
):
    """The actor's and the tasks' bodies, run in this process in a scan's order: load, network, finish."""
    handed = []
    monkeypatch.setattr(cluster, "segment_on_ray", lambda spec, todo, options, record: handed.append((spec, todo)))
    output = tmp_path / "out"
    segment_report(ct_bundle, [scans], output, weights=random_weights, device="cpu", overrides=TINY, ray_address="x")
    [(spec, todo)] = handed
    spec.staging.mkdir(parents=True)  # the run removed its staging folder when the stub returned
    built, loaded = builds_and_loads
    real_run, runs = pipeline.run_pipeline, []

    def breaks_first(*args, **kwargs):
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("the evaluator broke")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_pipeline", breaks_first)
    network = cluster._Network(spec, threads=1)
    network.evaluator.join()  # the first evaluator broke before any scan: the first call starts another
    try:
        results = [cluster._finish(spec, r, network.predict(r, cluster._load(spec, r))) for r in todo]
    finally:
        network.close()
    assert [result.error for result in results] == [None] * 4
    assert len(runs) == 2
    assert built == {"UNet": 2}, "the actor's network, and the tasks' workflow (its network never run)"
    # checked once before the run (check_weights); then the actor's evaluator, run once over its four scans
    assert loaded == {random_weights.name: 2}
    _same_masks(output, alone)


def test_a_scan_that_fails_in_its_load_task_ends_failed_with_its_line_and_the_others_done(
    tmp_path, ct_bundle, scans, random_weights, local_ray
):
    broken = scans / "broken.nii.gz"
    broken.write_bytes(next(scans.glob("liver_*.nii.gz")).read_bytes()[:5000])
    output = tmp_path / "ray"
    report = segment_report(
        ct_bundle, [scans], output, weights=random_weights, device="cpu", overrides=TINY, ray_address="local", workers=2
    )
    assert len(report.written) == 4
    [failure] = report.failed
    assert str(failure).startswith(f"{broken}: cannot read NIfTI (truncated or corrupt") and "\n" not in str(failure)
    history = Manifest(output).history
    assert Counter(entry.state for entry in history if entry.name == "broken") == {"pending": 1, "failed": 1}
