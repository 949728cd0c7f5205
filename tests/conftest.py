"""Shared fixtures: small synthetic datasets and a tiny trained model, made once per session."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from medseg.bundles import Bundle, find_bundle
from medseg.samples.datasets import write_brats_dataset, write_ct_dataset

from .chromium import Browser, chromium_or_skip

# Bundle overrides that make the CT bundle cheap enough for unit tests: coarse voxels, small patches.
TINY = {"spacing": [6.0, 6.0, 6.0], "patch_size": [32, 32, 32], "num_workers": 0}
BRATS_SEED, BRATS_SPACING = 6, 4.0


@pytest.fixture(scope="module")
def one_thread():
    """Run torch on one thread: two OpenMP threads on two busy cores spin more than they compute."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ct_bundle() -> Bundle:
    return find_bundle("ct_liver_tumour_3d")


@pytest.fixture(scope="session")
def small_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 + 2 case synthetic CT dataset on the coarse ``small`` grid."""
    root = tmp_path_factory.mktemp("data") / "small_ct"
    return write_ct_dataset(root, cases=6, test_cases=2, seed=7, preset="small", workers=1)


@pytest.fixture(scope="session")
def small_brats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5 + 1 case synthetic brain tumour MRI dataset at 4 mm (RAS and LPS; every tumour kind)."""
    root = tmp_path_factory.mktemp("data") / "small_brats"
    return write_brats_dataset(root, cases=5, test_cases=1, seed=BRATS_SEED, spacing=BRATS_SPACING, workers=1)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, ct_bundle: Bundle, small_ct: Path):
    """A short training run of the CT bundle on ``small_ct`` through ``medseg train``'s code path."""
    from medseg.training.run import train

    output = tmp_path_factory.mktemp("runs") / "tiny"
    return train(
        ct_bundle,
        small_ct,
        output=output,
        epochs=10,
        device="cpu",
        overrides={**TINY, "val_interval": 1, "cache_rate": 1.0},
    )


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained weights of the CT bundle's network: enough for a run to reach the input it is about."""
    from monai.networks.nets import UNet

    net = UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=3,
        channels=(16, 32, 64, 128, 256),
        strides=(2, 2, 2, 2),
        num_res_units=1,
        norm="batch",
    )
    path = tmp_path_factory.mktemp("weights") / "random.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium for a test module's pages (skipped without Chromium, except in CI)."""
    opened = Browser(chromium_or_skip(), tmp_path_factory.mktemp("profile"), width=1200, height=1400)
    yield opened
    opened.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests without CUDA; leave the long ``fuzz`` tests out unless ``-m`` names them (``-m fuzz``)."""
    if not torch.cuda.is_available():
        needs_gpu = pytest.mark.skip(reason="needs a CUDA GPU; on a CUDA machine run: pytest -m gpu")
        for item in items:
            if item.get_closest_marker("gpu") is not None:
                item.add_marker(needs_gpu)
    if "fuzz" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("fuzz") is None]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After a run with fuzz tests, say how many inputs each fuzz target tried."""
    from .hostile import TRIED

    if TRIED:
        terminalreporter.section("inputs tried")
        for target, count in sorted(TRIED.items()):
            terminalreporter.write_line(f"{target}: {count}")
        terminalreporter.write_line(f"total: {sum(TRIED.values())}")


@pytest.fixture
def builds_and_loads(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[str], Counter[str]]:
    """Counters, from now on, of the MONAI UNets built and of the files ``torch.load`` reads (by file name)."""
    from monai.networks.nets import UNet

    built: Counter[str] = Counter()
    loaded: Counter[str] = Counter()
    real_init, real_load = UNet.__init__, torch.load

    def counting_init(self: UNet, *args: Any, **kwargs: Any) -> None:
        built["UNet"] += 1
        real_init(self, *args, **kwargs)

    def counting_load(path: Any, *args: Any, **kwargs: Any) -> Any:
        loaded[Path(path).name] += 1
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(UNet, "__init__", counting_init)
    monkeypatch.setattr(torch, "load", counting_load)
    return built, loaded
