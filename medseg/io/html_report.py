"""``report.html``: a run's self-contained page: summary table, provenance, each case's numbers and picture.

The page has no external assets (styles and script inline, pictures embedded as base64 PNG, each case's
slice viewer with its data: :mod:`medseg.io.viewer_page`), so it reads offline and can be mailed or moved
on its own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from medseg.io.atomic import write_text
from medseg.io.viewer_page import viewer_assets, viewer_div

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
img { max-width: 100%; }
.note { color: #666; font-size: 0.9em; }
.warning { color: #a40; }
.provenance td { text-align: left; font-family: monospace; font-size: 0.85em; overflow-wrap: anywhere; }
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _burden_text(stats: dict[str, Any]) -> str:
    return "; ".join(
        f"{100 * burden['fraction']:.1f} % of {burden['organ_volume_of']}" if burden["fraction"] is not None else "-"
        for burden in stats["burden"]
    )


def _summary(cases: Sequence[dict[str, Any]]) -> str:
    names = [entry["label"] for entry in cases[0]["labels"]]
    header = ["case", *(f"{name} (mL)" for name in names), "lesions", "largest diameter (mm)", "burden", "warnings"]
    rows = []
    for stats in cases:
        lesions = stats["lesions"]
        rows.append(
            [
                stats["case"],
                *(f"{entry['volume_ml']:.1f}" for entry in stats["labels"]),
                len(lesions) if stats["burden"] else "-",
                f"{max(x['longest_axial_diameter_mm'] for x in lesions):.1f}" if lesions else "-",
                _burden_text(stats) or "-",
                len(stats.get("warnings", [])) or "-",
            ]
        )
    return _table(header, rows)


PROVENANCE = (
    ("date", "date (UTC)"),
    ("medseg_version", "medseg"),
    ("monai_version", "MONAI"),
    ("torch_version", "torch"),
    ("bundle", "bundle"),
    ("bundle_version", "bundle version"),
    ("weights_sha256", "weights SHA-256"),
    ("device", "device"),
    ("options", "options"),
)


def _text(value: Any) -> str:
    """A record's value as the page shows it: lists joined, mappings as JSON."""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def _provenance(cases: Sequence[dict[str, Any]]) -> str:
    """One row per run record the cases carry (one, unless the folder holds cases of several runs)."""
    runs: dict[str, list[str]] = {}
    for stats in cases:
        record = stats.get("provenance") or {}
        cells = [_text(record.get(key, "not recorded")) for key, _ in PROVENANCE]
        runs.setdefault(json.dumps(cells, sort_keys=True), []).append(stats["case"])
    rows = [[*json.loads(cells), ", ".join(names)] for cells, names in runs.items()]
    header = [title for _, title in PROVENANCE] + ["cases"]
    return '<h2>Provenance</h2><div class="provenance">' + _table(header, rows) + "</div>"


def _geometry(stats: dict[str, Any]) -> str:
    geometry = stats.get("geometry") or {}
    if not geometry:
        return "size, spacing and orientation not recorded"
    size = " x ".join(str(n) for n in geometry["size"])
    spacing = " x ".join(f"{v:g}" for v in geometry["spacing_mm"])
    return f"{size} voxels of {spacing} mm, orientation {geometry['orientation']}"


def _image(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img alt="{escape(png.name)}" src="data:image/png;base64,{data}">'


def _slices(lesion: dict[str, Any]) -> str:
    first, last = lesion.get("axial_slices") or ("?", "?")
    return f"{first}" if first == last else f"{first}-{last}"


def _not_listed(stats: dict[str, Any]) -> str:
    """The note on lesions too small to list, e.g. ``5 lesions under 0.1 mL not listed``; empty if none."""
    count = sum(entry.get("lesions_not_listed", 0) for entry in stats["labels"])
    if not count:
        return ""
    lesions = "lesion" if count == 1 else "lesions"
    return f'<p class="note">{count} {lesions} under {stats["min_lesion_ml"]:g} mL not listed</p>'


@dataclass(frozen=True)
class Pictures:
    """A case's overlay PNG and slice viewer data (``<name>_viewer.json``); None or a missing file: none."""

    overlay: Path | None = None
    viewer: Path | None = None


def case_anchor(name: str) -> str:
    """The ``id`` of a case's section in ``report.html``: ``case-<name>``, escaped for an attribute."""
    return escape(f"case-{name}", quote=True)


def _case_section(stats: dict[str, Any], pictures: Pictures) -> str:
    lesion_rows = [
        [
            i,
            x["label"],
            f"{x['volume_ml']:.2f}",
            f"{x['longest_axial_diameter_mm']:.1f}",
            _slices(x),
            x["centre_ras_mm"],
        ]
        for i, x in enumerate(stats["lesions"], start=1)
    ]
    modality = stats.get("modality") or "not recorded"
    parts = [
        f'<h2 id="{case_anchor(stats["case"])}">{escape(stats["case"])}</h2>',
        f'<p class="note">scan: {escape(stats["scan"])}; {escape(_geometry(stats))}; modality: {escape(modality)}</p>',
    ]
    parts += [f'<p class="warning">warning: {escape(warning)}</p>' for warning in stats.get("warnings", [])]
    if lesion_rows:
        header = ["lesion", "label", "volume (mL)", "longest axial diameter (mm)", "axial slices", "centre (RAS, mm)"]
        parts.append(_table(header, lesion_rows))
    parts.append(_not_listed(stats))
    if pictures.viewer is not None and pictures.viewer.is_file():
        parts.append(viewer_div(pictures.viewer))
    if pictures.overlay is not None and pictures.overlay.is_file():
        parts.append(_image(pictures.overlay))
    return "\n".join(parts)


def report_html(cases: Sequence[dict[str, Any]], pictures: Sequence[Pictures], title: str) -> str:
    """The page for ``cases`` (``<name>_stats.json`` contents), with their overlays and slice viewers."""
    sections = "\n".join(_case_section(stats, media) for stats, media in zip(cases, pictures, strict=True))
    viewers = viewer_assets() if any(media.viewer and media.viewer.is_file() for media in pictures) else ""
    bundle = escape(cases[0]["bundle"]) if cases else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="note">Model: {bundle}. Volumes in mL; lesion diameters are the longest in-plane diameter over the
axial slices; axial slices are numbered from 0 along the scan's voxel axis closest to head-feet, as stored in
its file (3D Slicer's K index); burden is lesion volume over the volume of the organ including its lesions.
Research use only: check every mask before relying on a number.</p>
{_summary(cases) if cases else "<p>No cases.</p>"}
{_provenance(cases) if cases else ""}
{sections}
{viewers}
</body></html>
"""


def write_report(path: str | Path, cases: Sequence[dict[str, Any]], pictures: Sequence[Pictures], title: str) -> Path:
    """Write :func:`report_html` to ``path`` atomically."""
    write_text(path, report_html(cases, pictures, title))
    return Path(path)
