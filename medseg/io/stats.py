"""Per-case ``<name>_stats.json`` and the run's ``stats.csv``: what :mod:`medseg.lesions` measured, named.

``<name>_stats.json`` also records which scan and bundle the mask came from, so that the outputs can be
opened and reported on later (``medseg slicer OUTDIR``), and its provenance: the scan's size, spacing,
orientation and modality, and the run's date, versions, weights, options and device
(:mod:`medseg.inference.provenance`). ``stats.csv`` repeats them on each of the case's rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg.defaults import DEFAULT_MIN_LESION_ML
from medseg.errors import MedsegError
from medseg.io.atomic import write_text
from medseg.labels import Label
from medseg.lesions import Burden, Lesion, Quantities

CSV_COLUMNS = [
    "case",
    "label_value",
    "label",
    "volume_ml",
    "lesions",
    "lesions_not_listed",
    "largest_lesion_ml",
    "longest_axial_diameter_mm",
    "burden_percent",
    "burden_of",
    "warnings",
    "modality",
    "size",
    "spacing_mm",
    "orientation",
    "date",
    "medseg_version",
    "monai_version",
    "torch_version",
    "bundle",
    "bundle_version",
    "weights_sha256",
    "device",
    "options",
]


def _label_entry(label: Label, volume_ml: float, lesions: Sequence[Lesion] | None, min_ml: float) -> dict[str, Any]:
    """A label's volume; for a lesion label (``lesions`` not None), its lesions counted, listed or too small."""
    entry: dict[str, Any] = {"value": label.value, "label": label.name, "volume_ml": round(volume_ml, 3)}
    if lesions is not None:
        own = [lesion.volume_ml >= min_ml for lesion in lesions if lesion.label == label.value]
        entry["lesion_count"], entry["lesions_not_listed"] = sum(own), len(own) - sum(own)
    return entry


def _lesion_entry(lesion: Lesion, name: str) -> dict[str, Any]:
    return {
        "value": lesion.label,
        "label": name,
        "volume_ml": round(lesion.volume_ml, 3),
        "longest_axial_diameter_mm": round(lesion.axial_diameter_mm, 1),
        "centre_ras_mm": [round(v, 1) for v in lesion.centre_ras_mm],
        "axial_slices": list(lesion.axial_slices),
    }


def _burden_entry(burden: Burden, names: dict[int, str]) -> dict[str, Any]:
    return {
        "organ": " + ".join(names[v] for v in burden.organ_labels),
        "organ_volume_of": " + ".join(names[v] for v in burden.organ_labels + burden.lesion_labels),
        "organ_values": list(burden.organ_labels + burden.lesion_labels),
        "lesion_values": list(burden.lesion_labels),
        "organ_volume_ml": round(burden.organ_ml, 3),
        "lesion_volume_ml": round(burden.lesion_ml, 3),
        "fraction": None if burden.organ_ml == 0 else round(burden.fraction, 5),
    }


def case_stats(
    name: str,
    scan: Path,
    bundle: str,
    labels: Sequence[Label],
    quantities: Quantities,
    *,
    modality: str | None = None,
    geometry: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    warnings: Sequence[str] = (),
    min_lesion_ml: float = DEFAULT_MIN_LESION_ML,
) -> dict[str, Any]:
    """The JSON-ready statistics of one case.

    ``labels`` holds each foreground label's volume (and, for lesion labels, ``lesion_count``, the lesions
    listed, and ``lesions_not_listed``, those under ``min_lesion_ml``); ``lesions`` every lesion of at least
    ``min_lesion_ml``, largest first, with the axial slices it spans; ``burden`` one entry per organ with
    lesion labels inside it, whose ``organ_values`` (organ volume) include those lesion labels. Volumes and
    burdens count every voxel, listed or not.

    Args:
        name: the case name (outputs are ``<name>_seg.nii.gz`` and so on).
        scan: the input the mask was made from (a NIfTI file or a DICOM series folder).
        bundle: the bundle's name.
        labels: the bundle's labels.
        quantities: what :func:`medseg.lesions.measure` found in the mask (volumes of the foreground labels).
        modality: the scan's modality as its file records it (``CT``, ``MR``, ``PT``: DICOM), or None
            where the file records none (NIfTI); never the bundle's.
        geometry: the scan's size, spacing and orientation (:func:`medseg.inference.provenance.scan_geometry`).
        provenance: the run's record (:func:`medseg.inference.provenance.run_provenance`).
        warnings: what looked wrong with the scan or its mask, and the optional outputs skipped.
        min_lesion_ml: lesions smaller than this (mL) are counted, not listed.
    """
    names = {label.value: label.name for label in labels}
    lesion_values = {value for burden in quantities.burdens for value in burden.lesion_labels}
    listed = [lesion for lesion in quantities.lesions if lesion.volume_ml >= min_lesion_ml]
    return {
        "case": name,
        "scan": str(scan.resolve()),
        "bundle": bundle,
        "modality": modality,
        "geometry": dict(geometry or {}),
        "provenance": dict(provenance or {}),
        "warnings": list(warnings),
        "min_lesion_ml": min_lesion_ml,
        "labels": [
            _label_entry(
                label,
                quantities.volumes_ml[label.value],
                quantities.lesions if label.value in lesion_values else None,
                min_lesion_ml,
            )
            for label in labels
            if label.value
        ],
        "lesions": [_lesion_entry(lesion, names[lesion.label]) for lesion in listed],
        "burden": [_burden_entry(burden, names) for burden in quantities.burdens],
    }


def write_case_stats(path: str | Path, stats: dict[str, Any]) -> Path:
    """Write one case's statistics as JSON, atomically."""
    write_text(path, json.dumps(stats, indent=2) + "\n")
    return Path(path)


def read_case_stats(path: str | Path) -> dict[str, Any]:
    """Read a ``<name>_stats.json``.

    Raises:
        MedsegError: the file is missing or not JSON.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise MedsegError(f"cannot read case statistics ({error})", path) from None


def _percent(fraction: float | None) -> float | str:
    return "" if fraction is None else round(100 * fraction, 2)


def _joined(values: Sequence[Any] | None, separator: str = "x") -> str:
    return "" if values is None else separator.join(str(v) for v in values)


def _provenance_columns(stats: dict[str, Any]) -> dict[str, Any]:
    """The columns every row of a case repeats: its scan's geometry and modality, and the run's record."""
    geometry, run = stats.get("geometry", {}), stats.get("provenance", {})
    columns = {key: run.get(key, "") for key in ("date", "medseg_version", "monai_version", "torch_version")}
    return columns | {
        "warnings": "; ".join(stats.get("warnings", [])),
        "modality": stats.get("modality") or "",
        "size": _joined(geometry.get("size")),
        "spacing_mm": _joined(geometry.get("spacing_mm")),
        "orientation": geometry.get("orientation", ""),
        "bundle": stats["bundle"],
        "bundle_version": run.get("bundle_version") or "",
        "weights_sha256": _joined(run.get("weights_sha256"), " "),
        "device": run.get("device", ""),
        "options": json.dumps(run["options"], sort_keys=True) if "options" in run else "",
    }


def _rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row per label of one case; lesion columns only on lesion labels."""
    burdens = {value: burden for burden in stats["burden"] for value in burden["lesion_values"]}
    rows = []
    for entry in stats["labels"]:
        row = {"case": stats["case"], "label_value": entry["value"], "label": entry["label"]}
        row |= _provenance_columns(stats)
        row["volume_ml"] = entry["volume_ml"]
        if "lesion_count" in entry:
            lesions = [lesion for lesion in stats["lesions"] if lesion["value"] == entry["value"]]
            burden = burdens[entry["value"]]
            row |= {
                "lesions": entry["lesion_count"],
                "lesions_not_listed": entry.get("lesions_not_listed", ""),
                "largest_lesion_ml": lesions[0]["volume_ml"] if lesions else "",
                "longest_axial_diameter_mm": max((x["longest_axial_diameter_mm"] for x in lesions), default=""),
                "burden_percent": _percent(burden["fraction"]),
                "burden_of": burden["organ_volume_of"],
            }
        rows.append(row)
    return rows


def stats_table(cases: Sequence[dict[str, Any]]) -> str:
    """The run's table as CSV text: one row per case and label (see :data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for stats in cases:
        writer.writerows(_rows(stats))
    return buffer.getvalue()
