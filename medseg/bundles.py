"""Find MONAI bundles and run their config workflows with medseg's overrides.

A bundle is a folder in the MONAI model-zoo layout (``configs/``, ``models/``, ``docs/``). Its JSON
or YAML configs are the single source of truth: medseg only hands them overrides (data lists, output
folders, device, weights) and runs them through :class:`monai.bundle.ConfigWorkflow`.
"""

from __future__ import annotations

import copy
import difflib
import logging
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.bundle_config import CONFIG_SUFFIXES, BundleConfig, config_path, write_config
from medseg.errors import MedsegError
from medseg.labels import Label, Terminology, known_label

if TYPE_CHECKING:
    from monai.bundle import ConfigParser, ConfigWorkflow


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
# Where a downloaded bundle came from (a URL, or the model zoo's name and version), in its folder.
SOURCE_FILE = ".medseg-source"
# Where metadata.json names the output labels, as messages spell it.
LABELS_FIELD = "network_data_format.outputs.pred.channel_def"
USER_BUNDLES = Path(os.environ.get("MEDSEG_BUNDLES") or Path.home() / ".medseg" / "bundles")


@dataclass(frozen=True)
class Bundle:
    """A bundle folder.

    Each config file is parsed once per ``Bundle`` object, on first use, and kept: make a new
    ``Bundle`` to see a file changed since.
    """

    root: Path

    @property
    def name(self) -> str:
        """The folder name, which is also how the CLI refers to the bundle."""
        return self.root.name

    @property
    def source(self) -> str:
        """Where the bundle came from: ``medseg`` for a shipped one, the recorded download source, or its folder."""
        recorded = self.root / SOURCE_FILE
        if recorded.is_file():
            return recorded.read_text(encoding="utf-8").strip()
        return "medseg" if self.root.resolve().is_relative_to(BUILTIN_BUNDLES.resolve()) else str(self.root)

    def config(self, name: str) -> Path:
        """Path of ``configs/<name>.json`` (or ``.yaml``, ``.yml``); raises if the bundle has no such config."""
        path = config_path(self.root / "configs", name)
        if path is None:
            raise MedsegError(f"bundle {self.name!r} has no configs/{name}.json or .yaml", self.root)
        return path

    def has_config(self, name: str) -> bool:
        """Whether the bundle has ``configs/<name>`` as JSON or YAML."""
        return config_path(self.root / "configs", name) is not None

    def parsed(self, name: str) -> BundleConfig:
        """The parsed config ``name``, read once per :class:`Bundle` object."""
        if name not in self._parsed:
            self._parsed[name] = BundleConfig.read(self.config(name))
        return self._parsed[name]

    @cached_property
    def _parsed(self) -> dict[str, BundleConfig]:
        return {}

    @property
    def metadata(self) -> dict[str, Any]:
        """The parsed ``configs/metadata.json``."""
        return self.parsed("metadata").content

    @property
    def _pred_format(self) -> dict[str, Any]:
        return self.metadata.get("network_data_format", {}).get("outputs", {}).get("pred", {})

    @cached_property
    def labels(self) -> list[Label]:
        """Output labels, background first: ``outputs.pred.channel_def``, with colours and terminology."""
        colors = self._pred_format.get("channel_colors", {})
        terms = self._pred_format.get("channel_terminology", {})
        labels = [
            Label(
                int(value),
                str(name),
                tuple(colors[value]) if value in colors else None,
                _terminology(terms[value]) if value in terms else None,
            )
            for value, name in sorted(self._pred_format.get("channel_def", {}).items(), key=lambda kv: int(kv[0]))
        ]
        return [known_label(label) for label in self._as_mask_values(labels)]

    def _as_mask_values(self, labels: list[Label]) -> list[Label]:
        """``channel_def`` labels at the values the mask holds.

        medseg's bundles name mask values there. A model-zoo bundle with sigmoid outputs names network
        channels instead (BraTS: 0 tumour core, 1 whole tumour, 2 enhancing tumour), which its
        postprocessing turns into other values (1, 2, 4): those are found by running it.
        """
        channels = self.output_channels
        if [label.value for label in labels] != list(range(channels)) or labels[0].name.lower() == "background":
            return labels
        from medseg.inference.recipe import channel_values

        values = channel_values(self)
        if values is None:
            return labels
        return [Label(0, "background", None), *(replace(label, value=values[label.value]) for label in labels)]

    @property
    def label_rules(self) -> dict[str, Any]:
        """``outputs.pred.label_rules`` (``largest_component``, ``inside``); empty when the bundle has none."""
        return dict(self._pred_format.get("label_rules", {}))

    @property
    def modality(self) -> str:
        """``inputs.image.modality``: ``CT`` or ``MR`` (empty where the metadata gives none)."""
        return str(self._image_format.get("modality", ""))

    @property
    def _image_format(self) -> dict[str, Any]:
        return self.metadata.get("network_data_format", {}).get("inputs", {}).get("image", {})

    @property
    def input_channels(self) -> int:
        """Channels the network expects (``inputs.image.num_channels``)."""
        return int(self._image_format.get("num_channels", 1))

    @property
    def output_channels(self) -> int:
        """Channels the network outputs (``outputs.pred.num_channels``; else one per label)."""
        return int(self._pred_format.get("num_channels", len(self._pred_format.get("channel_def", {}))))

    @property
    def spatial_dims(self) -> int:
        """2 or 3: the length of ``inputs.image.spatial_shape`` (3 where the metadata gives none)."""
        return len(self._image_format.get("spatial_shape", [0, 0, 0]))

    @property
    def divisors(self) -> list[int] | None:
        """Per spatial axis, the number the network's input sizes must be a multiple of, or None if unknown.

        medseg's bundles write ``spatial_shape`` as ``["16*n", "16*n", "16*n"]``; a model-zoo bundle
        often writes its training patch there (``[96, 96, 96]``), which says nothing about the divisor.
        """
        shape = self._image_format.get("spatial_shape", [])
        sizes = [re.fullmatch(r"\s*(\d+)\s*\*\s*n\s*", str(size)) for size in shape]
        found = [int(size.group(1)) for size in sizes if size is not None]
        return found if sizes and len(found) == len(sizes) else None

    @property
    def patch_size(self) -> list[int]:
        """A window the network runs on, per spatial axis.

        The inference ``inferer``'s ``roi_size``, else a ``spatial_shape`` of whole numbers from the
        metadata, else the divisors.
        """
        window = self.parsed("inference").window_size() if self.has_config("inference") else None
        if window is not None:
            return window
        shape = self._image_format.get("spatial_shape", [])
        if shape and all(isinstance(size, int) for size in shape):
            return list(shape)
        return self.divisors or [1] * self.spatial_dims

    @property
    def mirror_axes(self) -> list[int]:
        """``inputs.image.mirror_axes``: the spatial axes the network was trained to be mirrored along."""
        return [int(axis) for axis in self._image_format.get("mirror_axes", [])]

    @property
    def activation(self) -> str:
        """``softmax``, ``sigmoid`` or ``none``: what the inference postprocessing's ``Activationsd`` applies."""
        from medseg.inference.recipe import read_recipe

        return read_recipe(self.parsed("inference")).activation

    @property
    def volume_ranges(self) -> dict[int, tuple[float, float]]:
        """``outputs.pred.volume_range_ml``: label value to the ``(min, max)`` mL seen in training."""
        ranges = self._pred_format.get("volume_range_ml", {})
        return {int(value): (float(low), float(high)) for value, (low, high) in ranges.items()}

    def parser(self, name: str) -> ConfigParser:
        """A MONAI parser of a copy of the config ``name``, with ``bundle_root`` set, to build its components."""
        from monai.bundle import ConfigParser

        parser = ConfigParser(copy.deepcopy(self.parsed(name).content))
        parser["bundle_root"] = str(self.root)
        return parser

    @property
    def weights(self) -> Path:
        """The weights file (may be absent): where the inference ``CheckpointLoader`` points, else ``models/model.pt``.

        A model-zoo bundle names its file in an expression (``$@bundle_root + '/models/' + @modelname``),
        which is evaluated here: the bundle's code runs, as it does when the bundle runs.
        """
        default = self.root / "models" / "model.pt"
        if not self.has_config("inference"):
            return default
        config = self.parsed("inference")
        loader = config.checkpoint_loader()
        if loader is None:
            return default
        try:
            return Path(self.parser("inference").get_parsed_content(loader))
        except Exception as error:  # the bundle's own expression failed: say which, in one line
            cause = error.__cause__ or error
            raise MedsegError(f"cannot evaluate {loader} ({type(cause).__name__}: {cause})", config.path) from None


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
    written = Bundle(target)  # reads the copies to edit them; the caller gets a fresh Bundle of the result
    for path in sorted((target / "configs").iterdir()):
        if path.suffix not in CONFIG_SUFFIXES:
            continue
        content = written.parsed(path.stem).content
        if path.stem == "metadata":
            image = written._image_format
            if "spacing" in values and "spacing" in image:
                image["spacing"] = values["spacing"]
        elif keys := set(values) & set(content):
            content.update({key: values[key] for key in keys})
        else:
            continue
        write_config(path, content)
    return Bundle(target)


def top_level_values(bundle: Bundle, config: str, keys: Sequence[str]) -> dict[str, Any]:
    """The values of some top-level keys of one config (those it has)."""
    content = bundle.parsed(config).content
    return {key: content[key] for key in keys if key in content}


def check_override_ids(bundle: Bundle, config: str, ids: Iterable[str]) -> None:
    """Refuse override ids that a config lacks: MONAI would add them silently, and a misspelt one is lost.

    Raises:
        MedsegError: naming the config file, the first unknown id and the closest id the config has.
    """
    path = bundle.config(config)
    known = sorted(bundle.parsed(config).ids())
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
