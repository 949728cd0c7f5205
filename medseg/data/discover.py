"""Find the cases of a dataset, whichever of the field's layouts it follows.

Supported layouts:

- **MSD** (Medical Segmentation Decathlon): ``dataset.json`` with ``training``/``test`` and
  ``labels`` as ``{"value": "name"}``; multi-modal images are single 4D files, channel last.
- **nnU-Net v2 raw**: ``dataset.json`` with ``channel_names``, ``labels`` as ``{"name": value}``
  and ``file_ending``; ``imagesTr/CASE_0000<ending>`` (one file per channel), ``labelsTr/CASE<ending>``.
- **folder pairs**: ``case.nii.gz`` beside ``case_seg.nii.gz`` (or ``_label``), or ``images/`` and
  ``labels/`` subfolders whose files match by name (a label may carry the ``_seg`` suffix).
- **CSV**: a ``.csv`` file (given directly, or the only one in the folder) with ``image,label``
  columns.

Paths are resolved against the dataset folder; a path that points outside it (absolute, ``..``,
or a symlink leading out) is refused.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from medseg.errors import MedsegError
from medseg.io.paths import is_nifti, nifti_stem

LABEL_SUFFIXES = ("_seg", "_label")


@dataclass(frozen=True)
class Case:
    """One case.

    Args:
        id: identifier, unique in the dataset (used by splits).
        image: the image file, or one file per channel (nnU-Net).
        label: the label file, or None for an unlabelled (test) case.
    """

    id: str
    image: tuple[Path, ...]
    label: Path | None = None

    def as_dict(self) -> dict[str, str | list[str]]:
        """The ``{"image", "label"}`` dict that MONAI transforms and bundle data lists take."""
        image: str | list[str] = str(self.image[0]) if len(self.image) == 1 else [str(p) for p in self.image]
        return {"image": image} if self.label is None else {"image": image, "label": str(self.label)}


@dataclass(frozen=True)
class Dataset:
    """A discovered dataset.

    Args:
        root: the dataset folder.
        layout: ``"msd"``, ``"nnunet"``, ``"folder"`` or ``"csv"``.
        training: labelled cases.
        test: cases without labels, or with labels from ``labelsTs/``.
        labels: declared label values and names, or None when the layout declares none.
        channels: declared number of image channels, or None when the layout declares none.
        orphans: image or label files without a partner (folder layouts).
        source: the file that describes the dataset (``dataset.json`` or the CSV), if any.
    """

    root: Path
    layout: str
    training: list[Case]
    test: list[Case] = field(default_factory=list)
    labels: dict[int, str] | None = None
    channels: int | None = None
    orphans: list[Path] = field(default_factory=list)
    source: Path | None = None

    @property
    def labelled_test(self) -> list[Case]:
        """Test cases that have a label."""
        return [case for case in self.test if case.label is not None]


def _inside(root: Path, relative: str | Path, source: Path) -> Path:
    """Resolve ``relative`` against ``root``; refuse absolute paths and paths that escape it."""
    if not isinstance(relative, str | Path) or str(relative) == "":
        raise MedsegError(f"expected a file path, got {relative!r}", source)
    if Path(relative).is_absolute():
        raise MedsegError(f"absolute path {str(relative)!r} not allowed; use one inside the dataset", source)
    try:
        path = (root / relative).resolve()
    except (OSError, RuntimeError, ValueError) as error:  # a symlink loop, a NUL byte, a name the OS refuses
        raise MedsegError(f"unusable path {str(relative)!r} ({error})", source) from None
    if not path.is_relative_to(root.resolve()):
        raise MedsegError(f"path {str(relative)!r} points outside the dataset folder", source)
    return path


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MedsegError(f"cannot read dataset description ({error})", path) from None
    if not isinstance(content, dict):
        raise MedsegError("dataset description must be a JSON object", path)
    return content


def _invalid(source: Path, layout: str, error: Exception) -> MedsegError:
    return MedsegError(f"not a valid {layout} dataset.json ({type(error).__name__}: {error})", source)


def _msd(root: Path, source: Path, description: dict) -> Dataset:
    try:
        labels = {int(value): str(name) for value, name in description["labels"].items()}
        modality = description.get("modality", {"0": "image"})
        training = [
            Case(
                nifti_stem(Path(entry["image"])),
                (_inside(root, entry["image"], source),),
                _inside(root, entry["label"], source),
            )
            for entry in description["training"]
        ]
        test = []
        for entry in description.get("test", []):
            image = _inside(root, entry if isinstance(entry, str) else entry["image"], source)
            label = (root / "labelsTs" / image.name).resolve()
            test.append(Case(nifti_stem(image), (image,), label if label.is_file() else None))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise _invalid(source, "MSD", error) from None
    return Dataset(root, "msd", training, test, labels, len(modality), source=source)


def _nnunet_cases(root: Path, images: str, labels: str, ending: str, channels: int, *, labelled: bool) -> list[Case]:
    """Cases of one nnU-Net image folder; ``labelled`` cases keep their label path even if it is missing."""
    folder = root / images
    if not folder.is_dir():
        return []
    first_channel = f"_0000{ending}"
    ids = sorted({p.name[: -len(first_channel)] for p in folder.iterdir() if p.name.endswith(first_channel)})
    cases = []
    for case_id in ids:
        files = tuple(_inside(root, f"{images}/{case_id}_{c:04d}{ending}", folder) for c in range(channels))
        label = _inside(root, f"{labels}/{case_id}{ending}", folder)
        cases.append(Case(case_id, files, label if labelled or label.is_file() else None))
    return cases


def _nnunet(root: Path, source: Path, description: dict) -> Dataset:
    try:
        channels = len(description["channel_names"])
        ending = str(description.get("file_ending", ".nii.gz"))
        labels = {}
        for name, value in description["labels"].items():
            if isinstance(value, list):
                raise ValueError(f"label {name!r} is a region; region-based labels are not supported")
            labels[int(value)] = str(name)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise _invalid(source, "nnU-Net", error) from None
    training = _nnunet_cases(root, "imagesTr", "labelsTr", ending, channels, labelled=True)
    test = _nnunet_cases(root, "imagesTs", "labelsTs", ending, channels, labelled=False)
    return Dataset(root, "nnunet", training, test, labels, channels, source=source)


def _label_partner(image: Path, labels_dir: Path | None) -> list[Path]:
    """Candidate label files for ``image``: same name in ``labels_dir``, or a ``_seg``/``_label`` sibling."""
    stem, ending = nifti_stem(image), image.name[len(nifti_stem(image)) :]
    folder = labels_dir if labels_dir is not None else image.parent
    names = [f"{stem}{suffix}{ending}" for suffix in LABEL_SUFFIXES]
    if labels_dir is not None:
        names.insert(0, image.name)
    return [folder / name for name in names]


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_nifti(p))


def _pairs(root: Path, images: Iterable[Path], labels_dir: Path | None, labels: Iterable[Path]) -> Dataset:
    label_files = {_inside(root, p.relative_to(root), p) for p in labels}
    training, orphans, used = [], [], set()
    for image in images:
        candidates = (p.resolve() for p in _label_partner(image, labels_dir))
        partner = next((p for p in candidates if p in label_files), None)
        resolved = _inside(root, image.relative_to(root), image)
        if partner is None:
            orphans.append(resolved)
            continue
        used.add(partner)
        training.append(Case(nifti_stem(image), (resolved,), partner))
    orphans += sorted(label_files - used)
    return Dataset(root, "folder", training, orphans=orphans)


def _folder(root: Path) -> Dataset:
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return _pairs(root, _nifti_files(root / "images"), root / "labels", _nifti_files(root / "labels"))
    files = _nifti_files(root)
    is_label = [any(nifti_stem(p).endswith(s) for s in LABEL_SUFFIXES) for p in files]
    images = [p for p, flag in zip(files, is_label, strict=True) if not flag]
    labels = [p for p, flag in zip(files, is_label, strict=True) if flag]
    return _pairs(root, images, None, labels)


def _csv(path: Path) -> Dataset:
    root = path.parent
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise MedsegError(f"cannot read CSV ({error})", path) from None
    if not rows or not {"image", "label"} <= set(rows[0]):
        raise MedsegError("CSV needs a header with 'image' and 'label' columns and at least one row", path)
    training = []
    for row in rows:
        image = _inside(root, row["image"], path)
        label = _inside(root, row["label"], path) if row["label"] else None
        training.append(Case(nifti_stem(image), (image,), label))
    labelled = [case for case in training if case.label is not None]
    unlabelled = [case for case in training if case.label is None]
    return Dataset(root, "csv", labelled, unlabelled, source=path)


def discover(location: str | Path) -> Dataset:
    """Read a dataset folder (or a CSV file).

    Args:
        location: dataset folder, or a CSV file with ``image,label`` columns.

    Returns:
        The dataset, with absolute paths.

    Raises:
        MedsegError: when the location is missing or empty, or its description is unusable.
    """
    path = Path(location)
    if path.is_file() and path.suffix.lower() == ".csv":
        dataset = _csv(path)
    elif not path.is_dir():
        raise MedsegError("dataset folder not found", path)
    elif (path / "dataset.json").is_file():
        source = path / "dataset.json"
        description = _read_json(source)
        reader = _nnunet if "channel_names" in description else _msd
        dataset = reader(path, source, description)
    elif len(tables := sorted(path.glob("*.csv"))) == 1:
        dataset = _csv(tables[0])
    else:
        dataset = _folder(path)
    if not dataset.training and not dataset.test and not dataset.orphans:
        raise MedsegError(
            "no cases found: expected dataset.json (MSD or nnU-Net), a CSV file, images/ and labels/, "
            "or case.nii.gz beside case_seg.nii.gz",
            path,
        )
    return dataset
