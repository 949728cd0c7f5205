"""One reader of a bundle's configs: JSON or YAML, parsed once, asked by component rather than by spelling.

Only this module opens a bundle's config files (:class:`medseg.bundles.Bundle` caches what it reads,
once per bundle, and is the one place that knows the layout of ``metadata.json``).

Model-zoo bundles write a component's ``_target_`` short (``Invertd``), in full
(``monai.transforms.Invertd``), or as one of MONAI's aliases (``InvertD``, ``InvertDict``); they keep
their mask writer under a ``writer`` id or inline in ``postprocessing``; their ``CheckpointLoader``
sits among the handlers or at the top level. :class:`BundleConfig` answers such questions for any of
these layouts, so the rest of medseg never matches strings itself.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import MedsegError
from medseg.io.atomic import write_text

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


def config_path(configs: Path, name: str) -> Path | None:
    """``configs/<name>`` with the first suffix of :data:`CONFIG_SUFFIXES` that exists, or None."""
    return next((path for suffix in CONFIG_SUFFIXES if (path := configs / f"{name}{suffix}").is_file()), None)


def read_config(path: Path) -> dict[str, Any]:
    """Parse a JSON or YAML config file.

    Raises:
        MedsegError: the file cannot be read or parsed, or does not hold a mapping.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        content = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise MedsegError(f"cannot read bundle config: {error}", path) from None
    if not isinstance(content, dict):
        raise MedsegError("bundle config is not a mapping of ids to values", path)
    return content


def write_config(path: Path, content: dict[str, Any]) -> None:
    """Write a parsed config back, atomically, as JSON or YAML by its suffix."""
    import yaml

    text = json.dumps(content, indent=4) + "\n" if path.suffix == ".json" else yaml.safe_dump(content, sort_keys=False)
    write_text(path, text)


def target_name(item: Any) -> str | None:
    """The class a config item builds, spelt as MONAI's dictionary transforms are (``Invertd``), or None.

    ``Invertd``, ``monai.transforms.Invertd``, ``monai.transforms.post.dictionary.Invertd``, ``InvertD``
    and ``InvertDict`` all give ``Invertd``.
    """
    if not isinstance(item, dict) or not isinstance(item.get("_target_"), str):
        return None
    name = item["_target_"].rsplit(".", 1)[-1]
    for alias in ("Dict", "D"):
        if name.endswith(alias) and len(name) > len(alias) and name[: -len(alias)][-1:].islower():
            return f"{name[: -len(alias)]}d"
    return name


def walk(content: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``(id, value)`` of a parsed config, ids as overrides name them (``inferer#overlap``)."""
    if isinstance(content, dict):
        items = list(content.items())
    elif isinstance(content, list):
        items = list(enumerate(content))
    else:
        return
    for key, value in items:
        yield f"{prefix}{key}", value
        yield from walk(value, f"{prefix}{key}#")


@dataclass(frozen=True)
class BundleConfig:
    """One parsed config file of a bundle.

    Args:
        path: the file (``configs/inference.json`` or ``.yaml``).
        content: its parsed content.
    """

    path: Path
    content: dict[str, Any]

    @classmethod
    def read(cls, path: Path) -> BundleConfig:
        """Read and parse ``path`` (JSON or YAML)."""
        return cls(path, read_config(path))

    def ids(self) -> list[str]:
        """Every id of the config, as overrides name them."""
        return [config_id for config_id, _ in walk(self.content)]

    def components(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        """``(id, item)`` of every component that builds ``name`` (any spelling), in config order."""
        return [(config_id, item) for config_id, item in walk(self.content) if target_name(item) == name]

    def transforms(self, section: str) -> list[Any]:
        """The transforms of a ``Compose`` section (``preprocessing``, ``postprocessing``); empty if absent."""
        section_content = self.content.get(section)
        if isinstance(section_content, dict):
            return list(section_content.get("transforms", []))
        return list(section_content) if isinstance(section_content, list) else []

    def checkpoint_loader(self) -> str | None:
        """The id of the first ``CheckpointLoader``'s ``load_path`` (``checkpointloader#load_path``), or None."""
        loaders = [config_id for config_id, item in self.components("CheckpointLoader") if "load_path" in item]
        return f"{loaders[0]}#load_path" if loaders else None

    def literal(self, value: Any) -> Any:
        """``value`` with ``@id`` references followed to what they name (an expression stays a string)."""
        while isinstance(value, str) and value.startswith("@"):
            value = dict(walk(self.content)).get(value[1:])
        return value

    def window_size(self) -> list[int] | None:
        """The sliding window (``roi_size``) of the top-level ``inferer``, through ``@id`` references.

        None when the inferer has no literal list of sizes (an expression, or another kind of inferer).
        """
        inferer = self.content.get("inferer")
        size = self.literal(inferer.get("roi_size")) if isinstance(inferer, dict) else None
        if isinstance(size, list) and size and all(isinstance(s, int) for s in size):
            return list(size)
        return None

    def network_spacing(self) -> list[float] | None:
        """The voxel size the network works at: ``Spacingd``'s ``pixdim``, read through ``@key`` references.

        None when there is no ``Spacingd`` or its ``pixdim`` is an expression (``$...``).
        """
        resamplers = self.components("Spacingd")
        pixdim = self.literal(resamplers[0][1].get("pixdim")) if resamplers else None
        if isinstance(pixdim, int | float):
            return [float(pixdim)] * 3
        if isinstance(pixdim, list) and all(isinstance(size, int | float) for size in pixdim):
            return [float(size) for size in pixdim]
        return None


def with_overrides(content: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a parsed config with override ids (``network_def#img_size``) set, as MONAI sets them."""
    result = copy.deepcopy(dict(content))
    for config_id, value in overrides.items():
        *parents, last = config_id.split("#")
        node: Any = result
        try:
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node[key]
            node[int(last) if isinstance(node, list) else last] = value
        except (KeyError, IndexError, ValueError, TypeError):
            continue  # an id the config lacks: MONAI adds it where it can; no component is changed
    return result
