"""Model-zoo bundles as test fixtures: a copy with weights made here, a small scan, the bundle's own run.

The configs under ``tests/zoo/`` are the model zoo's, unedited (see ``tests/zoo/README.md``). What
makes them cheap is passed as overrides, to the bundle's own ``python -m monai.bundle run`` and to
medseg alike: a smaller network and window, no worker processes, the CPU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

ZOO = Path(__file__).parent / "zoo"
SEED = 0
CPU = {"device": "$torch.device('cpu')", "dataloader#num_workers": 0}


def zoo_copy(name: str, target: Path) -> Path:
    """A copy of ``tests/zoo/<name>`` in ``target`` (runs write beside the configs)."""
    return Path(shutil.copytree(ZOO / name, target / name))


def make_weights(root: Path, overrides: dict[str, Any], path: str = "models/model.pt") -> Path:
    """Random weights (fixed seed) of the bundle's ``network_def`` under ``overrides``, saved as a state_dict."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(next((root / "configs").glob("inference.*"))))
    parser["bundle_root"] = str(root)
    for key, value in overrides.items():
        parser[key] = value
    torch.manual_seed(SEED)
    network = parser.get_parsed_content("network_def")
    weights = root / path
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), weights)
    return weights


def write_scan(path: Path, shape: tuple[int, ...], spacing: tuple[float, float, float], *, ct: bool = True) -> Path:
    """A smooth random scan (fixed seed) in LPS-like orientation, CT values or MR-like ones."""
    rng = np.random.default_rng(SEED)
    coarse = rng.normal(size=tuple(max(2, s // 8) for s in shape))
    zoom = [s / c for s, c in zip(shape, coarse.shape, strict=True)]
    from scipy import ndimage

    smooth = ndimage.zoom(coarse, zoom, order=1)[tuple(slice(0, s) for s in shape)]
    data = (smooth * 150 if ct else np.abs(smooth) * 300).astype(np.float32)
    data[:, :, :2] = -1000.0 if ct else 0.0  # air below the body, or background outside the head
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [40.0, 30.0, -20.0]
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def run_bundle(root: Path, data: list[Any], output: Path, overrides: dict[str, Any]) -> None:
    """The bundle's own ``python -m monai.bundle run`` on ``data``, with overrides (given as an args file)."""
    config = next((root / "configs").glob("inference.*"))
    args = {
        "config_file": str(config),
        "meta_file": str(root / "configs" / "metadata.json"),
        "logging_file": str(root / "configs" / "logging.conf"),
        "bundle_root": str(root),
        "output_dir": str(output),
        **overrides,
    }
    data_id = "dataset#data"
    args[data_id] = data
    args_file = output.parent / f"{root.name}_args.json"
    args_file.write_text(json.dumps(args), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--args_file", str(args_file)],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def agreement(stock: Path, mask: Path) -> float:
    """Fraction of voxels where two masks on the same grid agree (shapes and affines must match)."""
    a, b = nib.load(stock), nib.load(mask)
    assert a.shape[:3] == b.shape[:3], (a.shape, b.shape)
    assert np.allclose(a.affine, b.affine, atol=1e-3)
    return float((np.rint(np.asarray(a.dataobj)).reshape(b.shape) == np.asarray(b.dataobj)).mean())
