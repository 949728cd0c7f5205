"""``medseg export``: a bundle's trained network as TorchScript or ONNX.

TorchScript goes through MONAI's own ``ckpt_export`` (what ``python -m monai.bundle ckpt_export``
runs). ONNX goes through PyTorch's exporter with dynamic batch and spatial sizes (multiples of the
network's divisor: the metadata's ``16*n``, or found by running the network), and is checked under
ONNX Runtime against the PyTorch network on a random input before it is kept; its metadata
(``metadata_props``) carries what a runtime without the bundle needs to know: the labels, and the
preprocessing of the inference config with the values it refers to.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medseg.bundles import Bundle, top_level_values
from medseg.errors import MedsegError
from medseg.io.atomic import atomic_file
from medseg.weights import check_weights

FORMATS = {"torchscript": ".ts", "onnx": ".onnx"}
ONNX_TOLERANCE = 1e-4
CHECK_SIZE = 2  # the random check input is (CHECK_SIZE * divisor) voxels along each axis


def _divisors(bundle: Bundle, network: Any) -> list[int]:
    """Per spatial axis, what the exported model's input sizes are multiples of.

    The metadata says so in medseg's bundles (``"16*n"``). A model-zoo bundle writes its training
    patch there instead (``[96, 96, 96]``), and no config key names the divisor of every network
    class, so it is found by running the network on zeros: the smallest divisor of the patch at
    which the network keeps the size of an input of once and twice that size.
    """
    if bundle.divisors is not None:
        return bundle.divisors
    patch = bundle.patch_size
    common = math.gcd(*patch)
    sizes = [d for d in range(1, common + 1) if common % d == 0]
    return [next((d for d in sizes if _keeps_size(network, bundle.input_channels, d, len(patch))), common)] * len(patch)


def _keeps_size(network: Any, channels: int, divisor: int, dims: int) -> bool:
    """Whether ``network`` maps zeros of ``divisor`` and ``2 * divisor`` voxels per axis to outputs of that size."""
    import torch

    for size in (divisor, 2 * divisor):
        try:
            with torch.inference_mode():
                output = network(torch.zeros(1, channels, *[size] * dims))
        except Exception:  # any size the network cannot take fails somewhere inside it, in its own way
            return False
        if tuple(output.shape[2:]) != (size,) * dims:
            return False
    return True


def load_network(bundle: Bundle, weights: Path):
    """The bundle's ``network_def`` from its inference config with ``weights`` loaded, in eval mode, on the CPU."""
    import torch

    network = bundle.parser("inference").get_parsed_content("network_def")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    return network.eval()


def _torchscript(bundle: Bundle, weights: Path, target: Path) -> None:
    from monai.bundle import ckpt_export

    ckpt_export(
        net_id="network_def",
        filepath=str(target),
        ckpt_file=str(weights),
        meta_file=str(bundle.config("metadata")),
        config_file=str(bundle.config("inference")),
        bundle_root=str(bundle.root),
    )


def _onnx(bundle: Bundle, weights: Path, target: Path) -> float:
    import numpy as np
    import onnxruntime
    import torch

    network = load_network(bundle, weights)
    divisors = _divisors(bundle, network)
    channels = bundle.input_channels
    example = torch.randn(1, channels, *(CHECK_SIZE * d for d in divisors))
    sizes = {0: torch.export.Dim("batch", min=1, max=1024)}
    for axis, divisor in enumerate(divisors, start=2):
        sizes[axis] = divisor * torch.export.Dim(f"n{axis}", min=1, max=1024)
    torch.onnx.export(
        network,
        (example,),
        str(target),
        dynamo=True,
        input_names=["image"],
        output_names=["pred"],
        dynamic_shapes=(sizes,),
        external_data=False,
        verbose=False,
    )
    check = torch.randn(2, channels, *((CHECK_SIZE + 1) * d for d in divisors))
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"image": check.numpy()})[0]
    with torch.inference_mode():
        expected = network(check).numpy()
    return float(np.abs(exported - expected).max())


def onnx_metadata(bundle: Bundle) -> dict[str, str]:
    """The ONNX model's ``metadata_props``: bundle, labels, and preprocessing with the values it refers to.

    ``labels`` maps each output channel's value to its name; ``preprocessing`` is the MONAI config of
    the inference config's preprocessing, and ``preprocessing_values`` the top-level values it refers
    to (``@spacing``, ``@intensity``...), all as JSON.
    """
    preprocessing = json.dumps(bundle.parsed("inference").content.get("preprocessing", {}))
    referred = sorted(set(re.findall(r"@(\w+)", preprocessing)))
    return {
        "bundle": bundle.name,
        "bundle_version": str(bundle.metadata.get("version", "")),
        "labels": json.dumps({str(label.value): label.name for label in bundle.labels}),
        "preprocessing": preprocessing,
        "preprocessing_values": json.dumps(top_level_values(bundle, "inference", referred)),
    }


def _with_metadata(path: Path, properties: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, properties)
    onnx.save(model, str(path))


def export(
    bundle: Bundle,
    fmt: str,
    *,
    output: str | Path | None = None,
    weights: str | Path | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Export a bundle's network.

    Args:
        bundle: the bundle.
        fmt: ``torchscript`` or ``onnx``.
        output: file to write; defaults to ``models/model.ts`` or ``models/model.onnx`` in the bundle.
        weights: weights to export; defaults to the bundle's ``models/model.pt``.
        say: where the ONNX check's result goes.

    Returns:
        The written file.

    Raises:
        MedsegError: unknown format, missing weights, or an ONNX model whose output differs from
            PyTorch's by more than 1e-4 (then nothing is written).
    """
    if fmt not in FORMATS:
        raise MedsegError(f"unknown export format {fmt!r}; choose torchscript or onnx")
    weights_path = check_weights(weights if weights is not None else bundle.weights)
    target = Path(output) if output is not None else bundle.root / "models" / f"model{FORMATS[fmt]}"
    with atomic_file(target) as partial:
        if fmt == "torchscript":
            _torchscript(bundle, weights_path, partial)
        else:
            difference = _onnx(bundle, weights_path, partial)
            if difference > ONNX_TOLERANCE:
                raise MedsegError(f"ONNX output differs from PyTorch by {difference:.2e} (> {ONNX_TOLERANCE})", target)
            say(f"checked against PyTorch under ONNX Runtime: max difference {difference:.1e} (limit {ONNX_TOLERANCE})")
            _with_metadata(partial, onnx_metadata(bundle))
    return target
