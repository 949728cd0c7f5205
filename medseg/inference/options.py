"""How ``medseg infer`` runs a bundle: the stock recipe, or medseg's fast path, as config overrides.

The fast path keeps the bundle's preprocessing and network and its own rule for turning
probabilities into labels; it replaces three things by override:

- the NIfTI reader of ``LoadImaged``, by :class:`~medseg.io.readers.FastNibabelReader` (the same
  images, decompressed by ISA-L into one array);
- the inferer: the bundle's own sliding windows, run by a CPU-tuned copy of the network
  (:class:`~medseg.inference.inferers.CpuTunedInferer`), so the probabilities are the stock
  recipe's; or, with ``window="large"``, :class:`~medseg.inference.inferers.LargeWindowInferer`
  (few, large windows: faster, a slightly different answer); either optionally wrapped in mirror
  test-time augmentation;
- the ``Invertd`` step of the postprocessing, by :class:`~medseg.inference.resample.ResampleToSourced`
  (one affine map back to the source grid, only where foreground can be, slab by slab), followed,
  with ``label_rules``, by the bundle's label rules.

On either path, several weights files make an ensemble: the chosen inferer is wrapped in
:class:`~medseg.inference.ensemble.EnsembleInferer`, which averages the members' probabilities.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from medseg.bundles import Bundle
from medseg.errors import MedsegError

COARSE_FACTOR = 1.5  # --fast: the network runs on voxels this much larger
Window = Literal["patch", "large"]  # --window: the bundle's own sliding windows, or few large ones
WINDOWS: tuple[str, ...] = get_args(Window)


@dataclass(frozen=True)
class InferenceOptions:
    """Options of ``medseg infer``.

    Args:
        stock: run the bundle's own recipe unchanged (only the mask writer is medseg's).
        overlap: window overlap; None keeps the default of the chosen path.
        tta: mirror test-time augmentation, along the axes the bundle was trained to mirror.
        coarse: run the network on voxels 1.5 times larger (faster, less exact).
        label_rules: apply the bundle's anatomical label rules (largest organ component, tumours
            only inside their organ); off by default, so that the masks are the stock recipe's.
        window: ``"patch"`` runs the bundle's own windows (the answer of the stock recipe);
            ``"large"`` runs each volume in as few windows as ``max_window_voxels`` allows (for a 2D
            bundle, whose windows are whole slices, it means slices without overlap).
        max_window_voxels: voxel budget of one window with ``window="large"``.
        ensemble: weights files of an ensemble's members (two or more), or empty for one network.
    """

    stock: bool = False
    overlap: float | None = None
    tta: bool = False
    coarse: bool = False
    label_rules: bool = False
    window: Window = "patch"
    max_window_voxels: int = 12_000_000
    ensemble: tuple[str, ...] = ()


def _inference_config(bundle: Bundle) -> dict[str, Any]:
    return json.loads(bundle.config("inference").read_text(encoding="utf-8"))


def _image_format(bundle: Bundle) -> dict[str, Any]:
    return bundle.metadata["network_data_format"]["inputs"]["image"]


def _divisor(bundle: Bundle) -> int:
    sizes = [re.match(r"^(\d+)", str(size)) for size in _image_format(bundle)["spatial_shape"]]
    return max(int(size.group(1)) for size in sizes if size)


def _stock_inferer(bundle: Bundle, options: InferenceOptions) -> dict[str, Any]:
    """The bundle's own inferer, with the overlap asked for."""
    inferer = dict(_inference_config(bundle)["inferer"])
    if options.overlap is not None:
        inferer["overlap"] = options.overlap
    return inferer


def _fast_inferer(bundle: Bundle, options: InferenceOptions) -> dict[str, Any]:
    """The bundle's windows (or large ones) through a CPU-tuned network; big slice batches for a 2D network."""
    if len(_image_format(bundle)["spatial_shape"]) == 2:
        if options.tta:
            raise MedsegError(f"--tta is not available for the 2D bundle {bundle.name!r}")
        inferer = {**_stock_inferer(bundle, options), "sw_batch_size": 64}
        if options.window == "large" and options.overlap is None:
            inferer["overlap"] = 0.0
        return inferer
    if options.window == "patch":
        windows = _stock_inferer(bundle, options)
    else:
        windows = {
            "_target_": "medseg.inference.inferers.LargeWindowInferer",
            "divisor": _divisor(bundle),
            "max_voxels": options.max_window_voxels,
        }
        if options.overlap is not None:
            windows["overlap"] = options.overlap
    if options.tta:
        axes = _image_format(bundle).get("mirror_axes", [])
        if not axes:
            raise MedsegError(f"bundle {bundle.name!r} was not trained with mirroring, so --tta would hurt it")
        windows = {"_target_": "medseg.inference.inferers.MirrorInferer", "inferer": windows, "axes": axes}
    # outermost, so that the network is copied and tuned once per scan, not once per mirror image
    return {"_target_": "medseg.inference.inferers.CpuTunedInferer", "inferer": windows}


def _activation(bundle: Bundle) -> str:
    """The activation the bundle's postprocessing applies to the network output (``Activationsd``)."""
    for transform in _inference_config(bundle)["postprocessing"]["transforms"]:
        if isinstance(transform, dict) and transform.get("_target_") == "Activationsd":
            return next((name for name in ("softmax", "sigmoid") if transform.get(name) is True), "none")
    return "none"


def _postprocessing(bundle: Bundle, options: InferenceOptions) -> dict[str, Any]:
    """The bundle's postprocessing with ``Invertd`` replaced by resampling straight to the source grid."""
    transforms = _inference_config(bundle)["postprocessing"]["transforms"]
    inverts = [i for i, t in enumerate(transforms) if isinstance(t, dict) and t.get("_target_") == "Invertd"]
    if len(inverts) != 1:
        raise MedsegError(f"bundle {bundle.name!r}: the fast path needs exactly one Invertd in its postprocessing")
    split = inverts[0]
    decide = [t for t in transforms[split + 1 :] if t != "@writer"]
    steps = [
        *transforms[:split],
        {
            "_target_": "medseg.inference.resample.ResampleToSourced",
            "keys": "pred",
            "decide": {"_target_": "Compose", "transforms": decide},
        },
    ]
    rules = bundle.label_rules
    if rules and options.label_rules:
        steps.append({"_target_": "medseg.inference.label_rules.LabelRulesd", "keys": "pred", "rules": rules})
    return {"_target_": "Compose", "transforms": [*steps, "@writer"]}


def _reader(bundle: Bundle) -> dict[str, Any]:
    """Point the bundle's ``LoadImaged`` at medseg's ISA-L NIfTI reader (same images, read faster)."""
    transforms = _inference_config(bundle)["preprocessing"]["transforms"]
    loads = [i for i, t in enumerate(transforms) if isinstance(t, dict) and t.get("_target_") == "LoadImaged"]
    if len(loads) != 1 or "reader" in transforms[loads[0]]:
        return {}
    return {f"preprocessing#transforms#{loads[0]}#reader": {"_target_": "medseg.io.readers.FastNibabelReader"}}


def inference_overrides(bundle: Bundle, options: InferenceOptions) -> dict[str, Any]:
    """Config overrides that realise ``options`` on a bundle's ``inference.json``."""
    if options.window not in WINDOWS:
        raise MedsegError(f"unknown window {options.window!r}; choose one of: {', '.join(WINDOWS)}")
    overrides: dict[str, Any] = {}
    if options.coarse:
        spacing = _inference_config(bundle).get("spacing")
        if spacing is None:
            raise MedsegError(f"bundle {bundle.name!r} has no top-level 'spacing' to coarsen for --fast")
        overrides["spacing"] = [s * COARSE_FACTOR if s > 0 else s for s in spacing]
    if options.stock:
        fast_only = {
            "--tta": options.tta,
            "--window large": options.window != "patch",
            "--label-rules": options.label_rules,
        }
        asked = [flag for flag, on in fast_only.items() if on]
        if asked:
            raise MedsegError(f"{asked[0]} needs the fast path (drop --stock)")
        inferer = _stock_inferer(bundle, options)
    else:
        inferer = _fast_inferer(bundle, options)
        overrides.update(_reader(bundle))
        overrides["postprocessing"] = _postprocessing(bundle, options)
    if options.ensemble:
        inferer = {
            "_target_": "medseg.inference.ensemble.EnsembleInferer",
            "inferer": inferer,
            "weights": list(options.ensemble),
            "activation": _activation(bundle),
        }
    return {**overrides, "inferer": inferer}
