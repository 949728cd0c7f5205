"""What a bundle needs to run here, checked before any work: packages, and a network MONAI can build.

Model-zoo bundles use components whose packages MONAI imports only when they run (``ITKReader`` needs
``itk``; ``KeepLargestConnectedComponentd`` needs scikit-image on the CPU), and their
``optional_packages_version`` does not always list them. Their networks were written for the MONAI of
their day: ``swin_unetr_btcv_segmentation`` passes ``img_size`` to ``SwinUNETR``, which MONAI 1.5
removed. Either would fail deep inside a run; here each becomes one line.
"""

from __future__ import annotations

import inspect
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from medseg.bundle_config import target_name, walk, with_overrides
from medseg.errors import MedsegError

if TYPE_CHECKING:
    from medseg.bundles import Bundle

# Component -> (module it needs, what to pip install), for modules MONAI imports only when used.
NEEDS = {
    "ITKReader": ("itk", "itk"),
    "PydicomReader": ("pydicom", "pydicom"),
    "NrrdReader": ("nrrd", "pynrrd"),
    "KeepLargestConnectedComponentd": ("skimage", "scikit-image"),
    "SwinUNETR": ("einops", "einops"),
}
# Components whose package another one can stand in for (cuCIM does scikit-image's work on a GPU).
STAND_INS = {"skimage": "cucim"}


def _components(content: dict[str, Any]) -> list[tuple[str, str]]:
    """``(id, component)`` of every component of a config, reader names given as strings included."""
    found = []
    for config_id, item in walk(content):
        if (name := target_name(item)) is not None:
            found.append((config_id, name))
        elif config_id.endswith("#reader") and isinstance(item, str):
            found.append((config_id, item.rsplit(".", 1)[-1]))
    return found


def check_packages(bundle: Bundle, overrides: dict[str, Any]) -> None:
    """Refuse a bundle whose components need a package that is not installed, naming the fix.

    Raises:
        MedsegError: naming the config file, the component, its id and the ``pip install`` that fixes it.
    """
    config = bundle.parsed("inference")
    for config_id, name in _components(with_overrides(config.content, overrides)):
        module, package = NEEDS.get(name, (None, None))
        if module is None or find_spec(module) is not None:
            continue
        if module in STAND_INS and find_spec(STAND_INS[module]) is not None:
            continue
        raise MedsegError(f"{name} ({config_id}) needs the package {package}: pip install {package}", config.path)


def _network_class(name: str) -> Any:
    """The class a ``network_def`` builds, from MONAI's networks or a dotted path; None if not found."""
    from pydoc import locate

    from monai.bundle.config_item import ComponentLocator

    if "." in name:
        return locate(name)
    module = ComponentLocator().get_component_module_name(name)
    if module is None:
        return None
    return locate(f"{module[0] if isinstance(module, list) else module}.{name}")


def check_network(bundle: Bundle, overrides: dict[str, Any]) -> None:
    """Refuse a ``network_def`` that passes arguments its class no longer takes in the installed MONAI.

    Raises:
        MedsegError: naming the config file, the config key and the MONAI versions, e.g.
            ``network_def#img_size``: SwinUNETR takes no such argument in MONAI 1.5 and later.
    """
    import monai

    config = bundle.parsed("inference")
    network = with_overrides(config.content, overrides).get("network_def")
    if not isinstance(network, dict):
        return
    name = target_name(network)
    cls = None if name is None else _network_class(network["_target_"])
    if cls is None:
        return
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    written_for = bundle.metadata.get("monai_version", "an older MONAI")
    for key in network:
        if not key.startswith("_") and key not in parameters:
            raise MedsegError(
                f"network_def#{key}: {name} takes no argument {key!r} in MONAI {monai.__version__} "
                f"(the bundle was written for MONAI {written_for}); override network_def without it",
                config.path,
            )
