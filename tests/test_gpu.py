"""What only a CUDA GPU can show; skipped elsewhere. On a CUDA machine: ``pytest -m gpu``."""

import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer
from monai.networks.nets import UNet
from monai.transforms import AsDiscreted

from medseg.data.caching import GPU_BUDGET_FRACTION, gpu_budget
from medseg.devices import resolve_device
from medseg.inference.inferers import CpuTunedInferer
from medseg.inference.resample import to_source_grid
from medseg.training.resume import RandomState

from .test_resample_exact import NETWORK, network_output, source_grid

pytestmark = pytest.mark.gpu


def test_auto_picks_the_first_gpu():
    assert resolve_device("auto") == "cuda:0"
    assert resolve_device(f"cuda:{torch.cuda.device_count() - 1}") == f"cuda:{torch.cuda.device_count() - 1}"


def test_gpu_budget_is_a_quarter_of_free_memory():
    free, _ = torch.cuda.mem_get_info(0)
    assert abs(gpu_budget("cuda:0") - free * GPU_BUDGET_FRACTION) <= 64 * 2**20  # free memory moves a little


def test_random_state_restores_the_cuda_generator():
    state = RandomState().state_dict()
    first = torch.rand(5, device="cuda")
    RandomState().load_state_dict(state)
    torch.testing.assert_close(torch.rand(5, device="cuda"), first, rtol=0, atol=0)


def test_the_network_runs_untuned_on_the_gpu():
    torch.manual_seed(0)
    network = UNet(3, 1, 3, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm="batch").cuda().eval()
    windows = SlidingWindowInferer((16, 16, 16), sw_batch_size=2, overlap=0.25)
    x = torch.randn(1, 1, 24, 20, 16, device="cuda")
    with torch.inference_mode():
        torch.testing.assert_close(CpuTunedInferer(windows)(x, network), windows(x, network), rtol=0, atol=0)


@pytest.mark.parametrize("grid", ["lps", "oblique"])
def test_resampling_on_the_gpu_gives_the_cpus_labels(grid):
    probabilities = network_output(seed=3, kind="softmax")
    affine, shape = source_grid(grid)
    decide = AsDiscreted(keys="pred", argmax=True)
    on_cpu = to_source_grid(probabilities, NETWORK, affine, shape, decide)
    on_gpu = to_source_grid(probabilities.cuda(), NETWORK, affine, shape, decide)
    assert np.mean(on_cpu != on_gpu) < 1e-4  # float32 grid_sample on another device: ties may tip
    if grid == "lps":
        np.testing.assert_array_equal(on_gpu, on_cpu)
