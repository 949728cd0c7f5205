"""Find the cases of a dataset folder: a list of ``{"image": path, "label": path}`` dicts.

Paths in the returned cases are absolute. A path that a dataset file names but that resolves
outside the dataset folder is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medseg.errors import MedsegError

Case = dict[str, str]


@dataclass(frozen=True)
class Dataset:
    """A discovered dataset.

    Args:
        root: the dataset folder.
        layout: which convention it follows (``"msd"``).
        labels: label value to name, background included.
        training: labelled cases.
        test: test cases; they carry a ``"label"`` only where the folder has test labels.
    """

    root: Path
    layout: str
    labels: dict[int, str]
    training: list[Case]
    test: list[Case] = field(default_factory=list)

    @property
    def labelled_test(self) -> list[Case]:
        """Test cases that have a label (for example from ``labelsTs/``)."""
        return [case for case in self.test if "label" in case]


def _inside(root: Path, relative: str, source: Path) -> Path:
    """Resolve ``relative`` against ``root``; refuse absolute paths and paths that escape it."""
    if Path(relative).is_absolute():
        raise MedsegError(f"absolute path {relative!r} is not allowed; use a path inside the dataset", source)
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise MedsegError(f"path {relative!r} points outside the dataset folder", source)
    return path


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MedsegError(f"cannot read dataset description: {error}", path) from None
    if not isinstance(content, dict):
        raise MedsegError("dataset description must be a JSON object", path)
    return content


def _msd(root: Path) -> Dataset:
    """Medical Segmentation Decathlon: ``dataset.json`` with ``labels`` as ``{"value": "name"}``."""
    source = root / "dataset.json"
    description = _read_json(source)
    try:
        labels = {int(value): str(name) for value, name in description["labels"].items()}
        entries = description["training"]
        training = [
            {key: str(_inside(root, entry[key], source)) for key in ("image", "label")} for entry in entries
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise MedsegError(f"not a valid MSD dataset.json ({type(error).__name__}: {error})", source) from None
    test = []
    for entry in description.get("test", []):
        image = _inside(root, entry if isinstance(entry, str) else entry["image"], source)
        case = {"image": str(image)}
        label = root / "labelsTs" / image.name
        if label.is_file():
            case["label"] = str(label.resolve())
        test.append(case)
    return Dataset(root, "msd", labels, training, test)


def discover(directory: str | Path) -> Dataset:
    """Read a dataset folder.

    Args:
        directory: folder holding an MSD ``dataset.json``.

    Returns:
        The dataset with absolute paths.

    Raises:
        MedsegError: when the folder is missing, empty, or its description is unusable.
    """
    root = Path(directory)
    if not root.is_dir():
        raise MedsegError("dataset folder not found", root)
    if (root / "dataset.json").is_file():
        dataset = _msd(root)
    else:
        raise MedsegError("no dataset.json here: expected a Medical Segmentation Decathlon folder", root)
    if not dataset.training and not dataset.test:
        raise MedsegError("the dataset lists no cases", root)
    return dataset
