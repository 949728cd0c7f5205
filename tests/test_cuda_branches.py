"""The CUDA branches, exercised on a machine without CUDA: torch's CUDA queries are replaced by fakes.

What needs a real GPU (the generators, the memory, the network on the device) is in tests/test_gpu.py,
marked ``gpu``.
"""

import pytest
import torch

from medseg.data import caching
from medseg.devices import device_expression, resolve_device
from medseg.errors import MedsegError
from medseg.inference.inferers import CpuTunedInferer
from medseg.training.resume import RandomState


@pytest.fixture()
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture()
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize(
    ("asked", "resolved"), [("auto", "cuda:0"), ("cuda", "cuda:0"), (" CUDA:1 ", "cuda:1"), ("cpu", "cpu")]
)
def test_devices_on_a_machine_with_two_gpus(two_gpus, asked, resolved):
    assert resolve_device(asked) == resolved
    assert device_expression(asked) == f"$torch.device('{resolved}')"


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        ("cuda:2", "device 'cuda:2' asked for, but this machine has no such CUDA GPU"),
        ("cuda:x", "unknown device 'cuda:x'; use auto, cpu, cuda or cuda:N"),
        ("cuda:", "unknown device 'cuda:'; use auto, cpu, cuda or cuda:N"),
        ("gpu", "unknown device 'gpu'; use auto, cpu, cuda or cuda:N"),
    ],
)
def test_devices_this_machine_does_not_have(two_gpus, asked, message):
    with pytest.raises(MedsegError) as error:
        resolve_device(asked)
    assert str(error.value) == message


def test_devices_without_cuda(no_gpu):
    assert resolve_device("auto") == resolve_device("cpu") == "cpu"
    for asked in ("cuda", "cuda:0"):
        with pytest.raises(MedsegError, match=f"device '{asked}' asked for, but this machine has no such CUDA GPU"):
            resolve_device(asked)


def test_gpu_budget_is_a_quarter_of_the_devices_free_memory(monkeypatch):
    asked = []

    def mem_get_info(device):
        asked.append(device)
        return 8_000_000_000, 80_000_000_000  # (free, total) bytes

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert caching.gpu_budget("cuda:1") == 2_000_000_000
    assert asked == [torch.device("cuda:1")]
    assert caching.gpu_budget("cpu") is None and asked == [torch.device("cuda:1")]
    choice = caching.choose_cache(1_500_000_000, None, budget=10**12, gpu=caching.gpu_budget("cuda:0"))
    assert str(choice) == "caching preprocessed cases on the GPU (about 1.5 GB for a 2.0 GB GPU memory budget)"
    assert caching.choose_cache(2_000_000_001, None, budget=10**12, gpu=2_000_000_000).kind == "memory"


def test_random_state_carries_the_cuda_generators_through_a_checkpoint(two_gpus, monkeypatch, tmp_path):
    generators = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [state.clone() for state in generators])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    torch.save({"rng": RandomState().state_dict()}, tmp_path / "checkpoint.pt")
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["rng"]
    RandomState().load_state_dict(state)
    assert len(restored) == 2 and all(torch.equal(a, b) for a, b in zip(restored, generators, strict=True))


def test_random_state_leaves_cuda_alone_where_there_is_none(no_gpu, monkeypatch):
    def must_not_run(*args):
        raise AssertionError("a CUDA generator was touched without CUDA")

    monkeypatch.setattr(torch.cuda, "get_rng_state_all", must_not_run)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", must_not_run)
    state = RandomState().state_dict()
    assert state["cuda"] == []
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8)]  # saved on a GPU machine, resumed on a CPU one
    RandomState().load_state_dict(state)


@pytest.mark.parametrize("where", ["network", "inputs", "both"])
def test_cpu_tuning_stays_off_the_gpu(where):
    """A network or volume off the CPU (``meta`` stands in for ``cuda``) runs untuned: the bundle's own network."""
    network = torch.nn.Conv3d(1, 2, 3, padding=1, device="meta" if where != "inputs" else "cpu")
    inputs = torch.zeros(1, 1, 8, 8, 8, device="meta" if where != "network" else "cpu")
    seen = []

    def inferer(volume, predictor):
        seen.append((volume, predictor))
        return volume

    CpuTunedInferer(inferer)(inputs, network)
    assert seen[0][0] is inputs and seen[0][1] is network


def test_cpu_tuning_runs_a_copy_on_the_cpu():
    network = torch.nn.Conv3d(1, 2, 3, padding=1)
    seen = []
    CpuTunedInferer(lambda volume, predictor: seen.append(predictor) or predictor(volume))(
        torch.zeros(1, 1, 8, 8, 8), network
    )
    assert seen[0] is not network
