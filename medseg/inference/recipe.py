"""A bundle's postprocessing read as steps: where the fast path may take over, and where it may not.

Model-zoo bundles order their postprocessing in several ways: activation, ``Invertd``, discretisation
(spleen, BraTS: then a ``Lambdad`` that turns sigmoid channels into label values), or activation,
discretisation, then ``Invertd`` with nearest interpolation (wholeBody CT); some end with label
clean-up such as ``KeepLargestConnectedComponentd``; the writer is a ``writer`` id or inline.
:func:`read_recipe` sorts the steps and says whether medseg's resampling to the source grid
(:class:`~medseg.inference.resample.ResampleToSourced`) gives the same masks, and if not, why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medseg.bundle_config import BundleConfig, target_name

if TYPE_CHECKING:
    from medseg.bundles import Bundle

WRITERS = {"SaveImaged", "SaveImage"}
# Steps that act on each voxel alone: they commute with choosing which voxels to interpolate.
VOXELWISE = {"Activationsd", "AsDiscreted", "Lambdad", "EnsureTyped", "CastToTyped"}
# Label clean-up on the whole volume: applied after resampling, to the full mask, as the stock recipe does.
CLEAN_UP = {"KeepLargestConnectedComponentd", "FillHolesd", "RemoveSmallObjectsd", "LabelFilterd"}


@dataclass(frozen=True)
class Recipe:
    """The postprocessing of a bundle's inference config, sorted into steps.

    Args:
        transforms: the postprocessing transforms as the config writes them.
        activation: ``softmax``, ``sigmoid`` or ``none``: what ``Activationsd`` applies.
        writer: index of the mask writer (``SaveImaged`` inline, or ``"@writer"``), or None.
        invert: index of the one ``Invertd``, or None.
        nearest: the labels are made before ``Invertd``, which takes them by nearest neighbour.
        fast_reason: None when the fast path applies; else why not, in words.
    """

    transforms: list[Any]
    activation: str
    writer: int | None
    invert: int | None
    nearest: bool
    fast_reason: str | None

    def steps(self, start: int, stop: int | None, kinds: set[str]) -> list[Any]:
        """The transforms in ``[start, stop)`` whose kind is in ``kinds`` (the writer excluded)."""
        chosen = range(len(self.transforms))[start:stop]
        return [self.transforms[i] for i in chosen if i != self.writer and target_name(self.transforms[i]) in kinds]


def _is_writer(item: Any) -> bool:
    return item == "@writer" or target_name(item) in WRITERS


def _activation(transforms: list[Any]) -> str:
    for item in transforms:
        if target_name(item) == "Activationsd":
            return next((name for name in ("softmax", "sigmoid") if item.get(name) is True), "none")
    return "none"


def _fast_reason(transforms: list[Any], writer: int | None) -> str | None:
    """Why the fast path cannot take over this postprocessing, or None when it can."""
    steps = [item for i, item in enumerate(transforms) if i != writer]
    kinds = [target_name(item) for item in steps]
    if kinds.count("Invertd") != 1:
        return f"its postprocessing has {kinds.count('Invertd')} Invertd steps, not one"
    split = kinds.index("Invertd")
    before, after = kinds[:split], kinds[split + 1 :]
    if "AsDiscreted" in before and steps[split].get("nearest_interp") is not True:
        return "it discretises before an Invertd that interpolates the labels linearly"
    if unknown := [kind for kind in before if kind not in VOXELWISE | CLEAN_UP] + [
        kind for kind in after if kind not in VOXELWISE | CLEAN_UP
    ]:
        return f"its postprocessing has {unknown[0] or 'a step'} the fast path does not know"
    if not ("AsDiscreted" in before or set(before) <= VOXELWISE):
        return "it cleans up probabilities before Invertd"
    cleaned = [i for i, kind in enumerate(after) if kind in CLEAN_UP]
    if cleaned and any(kind in VOXELWISE for kind in after[cleaned[0] :]):
        return "it cleans labels up before it has discretised them"
    return None


def read_recipe(config: BundleConfig) -> Recipe:
    """Sort the ``postprocessing`` of an inference config into a :class:`Recipe`."""
    transforms = config.transforms("postprocessing")
    writers = [i for i, item in enumerate(transforms) if _is_writer(item)]
    writer = writers[-1] if writers else None
    inverts = [i for i, item in enumerate(transforms) if target_name(item) == "Invertd"]
    invert = inverts[0] if len(inverts) == 1 else None
    nearest = invert is not None and any(target_name(item) == "AsDiscreted" for item in transforms[:invert])
    return Recipe(transforms, _activation(transforms), writer, invert, nearest, _fast_reason(transforms, writer))


def channel_values(bundle: Bundle) -> dict[int, int] | None:
    """The mask value each network channel becomes, found by running the bundle's own discretisation.

    For channel ``c``, a one-voxel prediction that is 1 in ``c`` and 0 elsewhere goes through the
    postprocessing steps after the activation (``Invertd`` and the writer left out); the value that
    comes out is ``c``'s label. None when the bundle has no ``Invertd`` to split its steps at.
    """
    import torch
    from monai.transforms import Compose

    config = bundle.parsed("inference")
    recipe = read_recipe(config)
    if recipe.invert is None:
        return None
    parser = bundle.parser("inference")
    decide = Compose(
        [
            parser.get_parsed_content(f"postprocessing#transforms#{i}")
            for i in range(recipe.invert + 1, len(recipe.transforms))
            if i != recipe.writer and target_name(recipe.transforms[i]) in VOXELWISE
        ]
    )
    channels = bundle.output_channels
    values = {}
    for channel in range(channels):
        one_hot = torch.zeros(channels, 1, 1, 1)
        one_hot[channel] = 1.0
        values[channel] = int(torch.as_tensor(decide({"pred": one_hot})["pred"]).flatten()[0])
    return values
