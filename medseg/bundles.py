"""Find MONAI bundles and run their config workflows with medseg's overrides.

A bundle is a folder in the MONAI model-zoo layout (``configs/``, ``models/``, ``docs/``). Its JSON
configs are the single source of truth: medseg only hands them overrides (data lists, output
folders, device, weights) and runs them through :class:`monai.bundle.ConfigWorkflow`.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.errors import MedsegError
from medseg.io.atomic import write_text

if TYPE_CHECKING:
    from monai.bundle import ConfigWorkflow


def _shipped_bundles() -> Path:
    """Where the bundles shipped with medseg are.

    Inside the installed package, where a wheel or ``pip install .`` puts the repository's ``bundles/``
    (``medseg/shipped_bundles``); else, in a checkout or an editable install, at the top of the
    repository, beside the package.
    """
    package = Path(__file__).resolve().parent
    installed = package / "shipped_bundles"
    return installed if installed.is_dir() else package.parent / "bundles"


BUILTIN_BUNDLES = _shipped_bundles()
# Loggers silenced for quiet (inference) runs: engine progress, and notices about optional codecs.
QUIET_LOGGERS = ("monai.bundle.workflows", "ignite.engine.engine.SupervisedEvaluator", "monai.data")
# A user's own bundles, found by name like the built-in ones: $MEDSEG_BUNDLES, else ~/.medseg/bundles.
USER_BUNDLES = Path(os.environ.get("MEDSEG_BUNDLES") or Path.home() / ".medseg" / "bundles")
DEFAULT_RGB = (128, 128, 128)


# A coded concept: (coding scheme designator, code value, code meaning), e.g. ("SCT", "10200004", "Liver").
Code = tuple[str, str, str]


@dataclass(frozen=True)
class Terminology:
    """What a label is, in DICOM segmentation terms (SNOMED CT codes), as Slicer and DICOM SEG record it.

    Args:
        category: segmented property category, e.g. anatomical structure or morphologically altered structure.
        type: segmented property type, e.g. liver or neoplasm.
        anatomic_region: where a lesion type lies (the liver for a liver tumour), or None.
    """

    category: Code
    type: Code
    anatomic_region: Code | None = None


@dataclass(frozen=True)
class Label:
    """One output label of a bundle.

    Args:
        value: voxel value in the mask.
        name: label name from ``channel_def``.
        color: RGB colour (0-255), or None where the metadata gives none.
        terminology: coded meaning from ``channel_terminology``, or None where the metadata gives none.
    """

    value: int
    name: str
    color: tuple[int, int, int] | None
    terminology: Terminology | None = None

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour to draw the label in (0-255): its own, or mid grey where the metadata gives none."""
        return self.color if self.color is not None else DEFAULT_RGB


@dataclass(frozen=True)
class Bundle:
    """A bundle folder."""

    root: Path

    @property
    def name(self) -> str:
        """The folder name, which is also how the CLI refers to the bundle."""
        return self.root.name

    def config(self, name: str) -> Path:
        """Path of ``configs/<name>.json``; raises if the bundle has no such config."""
        path = self.root / "configs" / f"{name}.json"
        if not path.is_file():
            raise MedsegError(f"bundle {self.name!r} has no configs/{name}.json", self.root)
        return path

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """The parsed ``configs/metadata.json``."""
        path = self.config("metadata")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise MedsegError(f"cannot read bundle metadata: {error}", path) from None

    @property
    def _pred_format(self) -> dict[str, Any]:
        return self.metadata.get("network_data_format", {}).get("outputs", {}).get("pred", {})

    @property
    def labels(self) -> list[Label]:
        """Output labels, background first: ``outputs.pred.channel_def``, with colours and terminology."""
        colors = self._pred_format.get("channel_colors", {})
        terms = self._pred_format.get("channel_terminology", {})
        return [
            Label(
                int(value),
                str(name),
                tuple(colors[value]) if value in colors else None,
                _terminology(terms[value]) if value in terms else None,
            )
            for value, name in sorted(self._pred_format.get("channel_def", {}).items(), key=lambda kv: int(kv[0]))
        ]

    @property
    def label_rules(self) -> dict[str, Any]:
        """``outputs.pred.label_rules`` (``largest_component``, ``inside``); empty when the bundle has none."""
        return dict(self._pred_format.get("label_rules", {}))

    @property
    def modality(self) -> str:
        """``inputs.image.modality``: ``CT`` or ``MR``."""
        return str(self.metadata["network_data_format"]["inputs"]["image"]["modality"])

    @property
    def input_channels(self) -> int:
        """Channels the network expects (``inputs.image.num_channels``)."""
        image = self.metadata.get("network_data_format", {}).get("inputs", {}).get("image", {})
        return int(image.get("num_channels", 1))

    @property
    def weights(self) -> Path:
        """The shipped weights file, ``models/model.pt`` (it may be absent)."""
        return self.root / "models" / "model.pt"


def _terminology(entry: Mapping[str, Any]) -> Terminology:
    """A :class:`Terminology` from its ``channel_terminology`` entry (lists of three strings)."""
    region = entry.get("anatomic_region")
    return Terminology(tuple(entry["category"]), tuple(entry["type"]), None if region is None else tuple(region))


def _candidates() -> list[Path]:
    return [folder for folder in (BUILTIN_BUNDLES, USER_BUNDLES) if folder.is_dir()]


def list_bundles() -> list[Bundle]:
    """Every bundle in the built-in and user bundle folders, sorted by name."""
    found = {
        path.name: Bundle(path)
        for folder in reversed(_candidates())
        for path in folder.iterdir()
        if (path / "configs" / "metadata.json").is_file()
    }
    return [found[name] for name in sorted(found)]


def find_bundle(name_or_path: str | Path) -> Bundle:
    """A bundle by name (built-in first, then :data:`USER_BUNDLES`) or by folder path.

    Raises:
        MedsegError: when nothing matches; the message lists the bundles that exist.
    """
    path = Path(name_or_path)
    if (path / "configs" / "metadata.json").is_file():
        return Bundle(path.resolve())
    for folder in _candidates():
        if (folder / str(name_or_path) / "configs" / "metadata.json").is_file():
            return Bundle(folder / str(name_or_path))
    known = ", ".join(b.name for b in list_bundles()) or "none"
    raise MedsegError(f"unknown bundle {str(name_or_path)!r} (available: {known})")


def derive_bundle(source: Bundle, target: Path, values: Mapping[str, Any]) -> Bundle:
    """Copy a bundle's configs, docs and code (not its weights) into ``target``, setting config values.

    ``values`` replace top-level config keys of the same name, in every config that has them; this is
    how a training run's settings (target spacing, patch size, intensities) travel with its weights.
    """
    target.mkdir(parents=True, exist_ok=True)
    for item in source.root.iterdir():
        if item.name in {"models", "eval"} or item.name.startswith("."):
            continue
        copy = shutil.copytree if item.is_dir() else shutil.copy2
        copy(item, target / item.name)
    (target / "models").mkdir(exist_ok=True)
    for config_path in (target / "configs").glob("*.json"):
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config_path.name == "metadata.json":
            image = config.get("network_data_format", {}).get("inputs", {}).get("image", {})
            if "spacing" in values and "spacing" in image:
                image["spacing"] = values["spacing"]
        elif keys := set(values) & set(config):
            config.update({key: values[key] for key in keys})
        else:
            continue
        write_text(config_path, json.dumps(config, indent=4) + "\n")
    return Bundle(target)


def top_level_values(bundle: Bundle, config: str, keys: Sequence[str]) -> dict[str, Any]:
    """The values of some top-level keys of one config (those it has)."""
    content = json.loads(bundle.config(config).read_text(encoding="utf-8"))
    return {key: content[key] for key in keys if key in content}


def config_ids(content: Any, prefix: str = "") -> Iterator[str]:
    """Every id of a parsed config, as overrides name them.

    Its keys, and the keys and indices under them, joined by ``#``: ``inferer``, ``inferer#overlap``,
    ``preprocessing#transforms#0``.
    """
    if isinstance(content, dict):
        items: Iterable[tuple[Any, Any]] = content.items()
    elif isinstance(content, list):
        items = enumerate(content)
    else:
        return
    for key, value in items:
        yield f"{prefix}{key}"
        yield from config_ids(value, f"{prefix}{key}#")


def check_override_ids(bundle: Bundle, config: str, ids: Iterable[str]) -> None:
    """Refuse override ids that a config lacks: MONAI would add them silently, and a misspelt one is lost.

    Raises:
        MedsegError: naming the config file, the first unknown id and the closest id the config has.
    """
    path = bundle.config(config)
    known = sorted(config_ids(json.loads(path.read_text(encoding="utf-8"))))
    for unknown in (config_id for config_id in ids if config_id not in known):
        closest = difflib.get_close_matches(unknown, known, n=1)
        hint = f" (did you mean {closest[0]!r}?)" if closest else ""
        raise MedsegError(f"no key {unknown!r} to override{hint}", path)


def load_workflow(
    bundle: Bundle,
    configs: Sequence[str],
    *,
    workflow_type: str | None,
    overrides: Mapping[str, Any],
    quiet: bool = False,
    tracking: str | None = None,
) -> ConfigWorkflow:
    """Build a bundle's config workflow, not yet initialised.

    Args:
        bundle: the bundle.
        configs: config names merged in order, e.g. ``["train"]`` or ``["train", "evaluate"]``.
        workflow_type: ``"train"``, ``"infer"`` or None, for MONAI's property checks.
        overrides: config id to value (``{"train#trainer#max_epochs": 2}``); values are plain JSON
            values, config dicts (``{"_target_": ...}``) or ``"$expressions"``.
        quiet: leave the bundle's ``logging.conf`` unapplied (no per-iteration log lines).
        tracking: experiment tracking MONAI adds to the workflow's engines (``"mlflow"``), or None.
    """
    from monai.bundle import ConfigWorkflow

    if quiet:  # no engine chatter; MONAI's warning that logging is skipped is the point, not news
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader")  # an optional GPU DICOM codec
    logging_file: str | bool = False if quiet else str(bundle.root / "configs" / "logging.conf")
    return ConfigWorkflow(
        config_file=[str(bundle.config(name)) for name in configs],
        meta_file=str(bundle.config("metadata")),
        logging_file=logging_file,
        workflow_type=workflow_type,
        bundle_root=str(bundle.root),
        tracking=tracking,
        **dict(overrides),
    )


def append_to(workflow: ConfigWorkflow, config_id: str, items: Sequence[Any]) -> None:
    """Append config items (e.g. handlers) to a list in the workflow's config."""
    workflow.parser[config_id] = [*workflow.parser[config_id], *items]


def run_workflow(workflow: ConfigWorkflow) -> None:
    """Initialise, run and finalise a workflow."""
    workflow.initialize()
    try:
        workflow.run()
    finally:
        workflow.finalize()
