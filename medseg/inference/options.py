"""How ``medseg infer`` runs a bundle: the stock recipe, or medseg's fast path, as config overrides.

The fast path keeps the bundle's preprocessing and network and its own rule for turning
probabilities into labels; it replaces these by override:

- the NIfTI reader of ``LoadImaged``, by :class:`~medseg.io.readers.FastNibabelReader` (the same
  images, decompressed by ISA-L into one array), and ``Spacingd`` by
  :class:`~medseg.inference.slab_spacing.SlabSpacingd` (the same voxels, in a fraction of the memory);
- the inferer: the bundle's own sliding windows, run by a CPU-tuned copy of the network
  (:class:`~medseg.inference.inferers.CpuTunedInferer`), so the probabilities are the stock
  recipe's; or, with ``window="large"``, :class:`~medseg.inference.inferers.LargeWindowInferer`
  (few, large windows: faster, a slightly different answer); either optionally wrapped in mirror
  test-time augmentation; for a bundle that discretises before inverting, the bundle's windows are
  turned into labels as they are stitched (:class:`~medseg.inference.streaming.DiscretisingInferer`),
  so the logits of all classes are never held whole;
- the ``Invertd`` step of the postprocessing, by :class:`~medseg.inference.resample.ResampleToSourced`
  (one affine map back to the source grid, only where foreground can be, slab by slab), followed,
  with ``label_rules``, by the bundle's label rules.

On either path, several weights files make an ensemble: the chosen inferer is wrapped in
:class:`~medseg.inference.ensemble.EnsembleInferer`, which averages the members' probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from medseg.bundle_config import target_name, with_overrides
from medseg.bundles import Bundle
from medseg.errors import MedsegError
from medseg.inference.recipe import CLEAN_UP, VOXELWISE, Recipe, read_recipe

COARSE_FACTOR = 1.5  # --fast: the network runs on voxels this much larger
Window = Literal["patch", "large"]  # --window: the bundle's own sliding windows, or few large ones
WINDOWS: tuple[str, ...] = get_args(Window)
# SlidingWindowInferer options that DiscretisingInferer reproduces (the rest change the windows' order or values)
STREAMED_WINDOWS = frozenset(
    {"_target_", "roi_size", "sw_batch_size", "overlap", "mode", "sigma_scale", "padding_mode", "cval", "sw_device"}
    | {"device", "progress"}
)


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


def _divisor(bundle: Bundle) -> int:
    """What a large window's sizes are multiples of: the network's divisor, or its training patch where unknown."""
    return max(bundle.divisors or bundle.patch_size)


def _stock_inferer(bundle: Bundle, options: InferenceOptions, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle's own inferer, with the user's ``inferer#...`` overrides and the overlap asked for."""
    inferer = dict(with_overrides(bundle.parsed("inference").content, changes)["inferer"])
    if options.overlap is not None:
        inferer["overlap"] = options.overlap
    return inferer


def _fast_inferer(
    bundle: Bundle, options: InferenceOptions, changes: Mapping[str, Any], labels: list[Any] | None = None
) -> dict[str, Any]:
    """The bundle's windows (or large ones) through a CPU-tuned network; big slice batches for a 2D network.

    With ``labels`` (the bundle's steps that make labels of logits, see :func:`_labelling_steps`), the
    bundle's windows are discretised as they are stitched, and the inferer returns labels.
    """
    if bundle.spatial_dims == 2:
        if options.tta:
            raise MedsegError(f"`tta=True` is not available for the 2D bundle {bundle.name!r}")
        inferer = {**_stock_inferer(bundle, options, changes), "sw_batch_size": 64}
        if options.window == "large" and options.overlap is None:
            inferer["overlap"] = 0.0
        return inferer
    if options.window == "patch":
        windows = _stock_inferer(bundle, options, changes)
        if labels is not None:
            windows = {
                "_target_": "medseg.inference.streaming.DiscretisingInferer",
                "windows": windows,
                "decide": {"_target_": "Compose", "transforms": labels},
            }
    else:
        windows = {
            "_target_": "medseg.inference.inferers.LargeWindowInferer",
            "divisor": _divisor(bundle),
            "max_voxels": options.max_window_voxels,
        }
        if options.overlap is not None:
            windows["overlap"] = options.overlap
    if options.tta:
        axes = bundle.mirror_axes
        if not axes:
            raise MedsegError(f"bundle {bundle.name!r} was not trained with mirroring, so `tta=True` would hurt it")
        windows = {"_target_": "medseg.inference.inferers.MirrorInferer", "inferer": windows, "axes": axes}
    # outermost, so that the network is copied and tuned once per scan, not once per mirror image
    return {"_target_": "medseg.inference.inferers.CpuTunedInferer", "inferer": windows}


def _labelling_steps(
    bundle: Bundle, recipe: Recipe, options: InferenceOptions, changes: Mapping[str, Any]
) -> list[Any] | None:
    """The steps that make labels of logits before ``Invertd``, when they can run on the windows as they are stitched.

    That is when the bundle discretises, then takes its labels back by nearest neighbour, its voxel-wise
    steps come before any label clean-up, it blends MONAI's sliding windows of a 3D network with the
    options :class:`~medseg.inference.streaming.DiscretisingInferer` knows, and no mirror images or
    ensemble members need the whole logits. None otherwise.
    """
    if not recipe.nearest or options.tta or options.ensemble or options.window != "patch":
        return None
    windows = _stock_inferer(bundle, options, changes)
    if target_name(windows) != "SlidingWindowInferer" or not set(windows) <= STREAMED_WINDOWS:
        return None
    steps = recipe.steps(0, recipe.invert, VOXELWISE | CLEAN_UP)
    cleaning = [target_name(step) in CLEAN_UP for step in steps]
    if cleaning != sorted(cleaning) or bundle.spatial_dims != 3:
        return None
    return [step for step, cleans in zip(steps, cleaning, strict=True) if not cleans]


def _postprocessing(bundle: Bundle, recipe: Recipe, options: InferenceOptions, streamed: bool) -> dict[str, Any]:
    """The bundle's postprocessing with ``Invertd`` replaced by resampling straight to the source grid.

    Steps before ``Invertd`` (the activation, and the discretisation of a bundle that inverts labels by
    nearest neighbour) stay, less the voxel-wise ones when the inferer already ran them (``streamed``);
    the voxel-wise steps after it become the resampling's ``decide``; label clean-up
    (``KeepLargestConnectedComponentd``...) runs on the full mask after it; the writer comes last.
    """
    assert recipe.invert is not None  # read_recipe gives no fast path without it
    steps = [
        *recipe.steps(0, recipe.invert, CLEAN_UP if streamed else VOXELWISE | CLEAN_UP),
        {
            "_target_": "medseg.inference.resample.ResampleToSourced",
            "keys": "pred",
            "decide": {"_target_": "Compose", "transforms": recipe.steps(recipe.invert + 1, None, VOXELWISE)},
            "nearest": recipe.nearest,
        },
        *recipe.steps(recipe.invert + 1, None, CLEAN_UP),
    ]
    rules = bundle.label_rules
    if rules and options.label_rules:
        steps.append({"_target_": "medseg.inference.label_rules.LabelRulesd", "keys": "pred", "rules": rules})
    return {"_target_": "Compose", "transforms": [*steps, "@writer"]}


def _stock_writer(recipe: Recipe) -> dict[str, Any]:
    """Point the bundle's own postprocessing at medseg's ``writer`` (a zoo bundle writes inline)."""
    if recipe.writer is None:
        raise MedsegError("the bundle's postprocessing has no SaveImaged step for medseg's mask writer to replace")
    return {f"postprocessing#transforms#{recipe.writer}": "@writer"}


def _reader(bundle: Bundle) -> dict[str, Any]:
    """Point the bundle's ``LoadImaged`` at medseg's ISA-L NIfTI reader (same images, read faster).

    The reader casts to the type ``LoadImaged`` asks for (its ``dtype``, by default MONAI's float32).
    """
    loads = bundle.parsed("inference").components("LoadImaged")
    if len(loads) != 1 or "reader" in loads[0][1]:
        return {}
    path, load = loads[0]
    dtype = f"@{path}#dtype" if "dtype" in load else "float32"
    return {f"{path}#reader": {"_target_": "medseg.io.readers.FastNibabelReader", "dtype": dtype}}


def _resampler(bundle: Bundle) -> dict[str, Any]:
    """Point the bundle's ``Spacingd`` steps at :class:`~medseg.inference.slab_spacing.SlabSpacingd`.

    The same arguments and the same voxels, filled a slab of slices at a time instead of through one
    float64 copy of the whole scan and grid.
    """
    spacings = bundle.parsed("inference").components("Spacingd")
    return {f"{path}#_target_": "medseg.inference.slab_spacing.SlabSpacingd" for path, _ in spacings}


def _channels_first(bundle: Bundle) -> dict[str, Any]:
    """Load a multi-channel scan (one 4D NIfTI, channels last) channels first where the bundle does not.

    A model-zoo bundle for several MR sequences (BraTS) loads a list of 3D files, which ``LoadImaged``
    stacks channels first; medseg hands it one 4D file, which needs ``ensure_channel_first``.
    """
    config = bundle.parsed("inference")
    loads = config.components("LoadImaged")
    if bundle.input_channels < 2 or len(loads) != 1 or config.components("EnsureChannelFirstd"):
        return {}
    return {f"{loads[0][0]}#ensure_channel_first": True}


def held_channels(bundle: Bundle, options: InferenceOptions, user: Mapping[str, Any] | None = None) -> int:
    """Channels of the network's output that a run holds whole on the network's grid.

    One where the fast path turns the windows into labels as they are stitched
    (:func:`_labelling_steps`); otherwise every class of the bundle.
    """
    recipe = read_recipe(bundle.parsed("inference"))
    changes = {key: value for key, value in (user or {}).items() if key.startswith("inferer#")}
    fast = not options.stock and recipe.fast_reason is None
    return 1 if fast and _labelling_steps(bundle, recipe, options, changes) is not None else len(bundle.labels)


def chosen_path(bundle: Bundle, options: InferenceOptions) -> str:
    """One line that says which path ``options`` run on the bundle, and why."""
    reason = read_recipe(bundle.parsed("inference")).fast_reason
    if options.stock:
        return "stock recipe (`stock=True`)"
    return "fast path" if reason is None else f"stock recipe, because {reason}"


def inference_overrides(
    bundle: Bundle, options: InferenceOptions, user: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Config overrides that realise ``options`` on a bundle's ``inference.json``, the user's ``user`` included.

    The user's overrides of the bundle's inferer (``inferer#roi_size``) are made to the bundle's inferer,
    which the fast path wraps, rather than to the wrapper.
    """
    changes = {key: value for key, value in (user or {}).items() if key.startswith("inferer#")}
    others = {key: value for key, value in (user or {}).items() if key not in changes}
    if options.window not in WINDOWS:
        raise MedsegError(f"unknown window {options.window!r}; choose one of: {', '.join(WINDOWS)}")
    overrides: dict[str, Any] = {}
    if options.coarse:
        spacing = bundle.parsed("inference").content.get("spacing")
        if spacing is None:
            raise MedsegError(f"bundle {bundle.name!r} has no top-level 'spacing' to coarsen for `coarse=True`")
        overrides["spacing"] = [s * COARSE_FACTOR if s > 0 else s for s in spacing]
    recipe = read_recipe(bundle.parsed("inference"))
    overrides.update(_channels_first(bundle))
    if options.stock or recipe.fast_reason is not None:
        fast_only = {
            "`tta=True`": options.tta,
            "`window='large'`": options.window != "patch",
            "`label_rules=True`": options.label_rules,
        }
        asked = [flag for flag, on in fast_only.items() if on]
        if asked:
            why = "drop `stock=True`" if options.stock else f"bundle {bundle.name!r} runs its own recipe"
            raise MedsegError(f"{asked[0]} needs the fast path ({why})")
        inferer = _stock_inferer(bundle, options, changes)
        if "writer" not in bundle.parsed("inference").content:
            overrides.update(_stock_writer(recipe))
    else:
        labels = _labelling_steps(bundle, recipe, options, changes)
        inferer = _fast_inferer(bundle, options, changes, labels)
        overrides.update(_reader(bundle))
        overrides.update(_resampler(bundle))
        overrides["postprocessing"] = _postprocessing(bundle, recipe, options, streamed=labels is not None)
    if options.ensemble:
        inferer = {
            "_target_": "medseg.inference.ensemble.EnsembleInferer",
            "inferer": inferer,
            "weights": list(options.ensemble),
            "activation": bundle.activation,
        }
    return {**overrides, "inferer": inferer, **others}
