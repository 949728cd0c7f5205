"""``OUTDIR/cohort.csv`` and ``OUTDIR/cohort.html``: a cohort run at a glance, and what to check first.

``cohort.csv`` has one row per scan and label (volume, lesion count and burden for lesion labels,
whether the volume lies in the range the bundle's training data had, the scan's warnings), and one
row per failed scan with its error. ``cohort.html`` is one self-contained page, readable offline: a
histogram of each label's volume across the scans and of each lesion label's count (inline SVG,
drawn here: a dozen rectangles do not need a plotting library), and the QC list: failed scans,
empty masks, volumes outside the training range (``volume_range_ml`` in the bundle's metadata) and
scans with warnings, each linking to the scan's section of ``report.html``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from medseg.bundles import Bundle
from medseg.inference.manifest import Entry, Manifest
from medseg.io.atomic import write_text
from medseg.io.html_report import STYLE, case_anchor
from medseg.io.paths import REPORT_PAGE, CaseFiles
from medseg.io.stats import read_case_stats

COHORT_TABLE, COHORT_PAGE = "cohort.csv", "cohort.html"
COLUMNS = [
    "case",
    "scan",
    "state",
    "label",
    "volume_ml",
    "lesion_count",
    "burden_percent",
    "in_training_range",
    "warnings",
    "error",
]
PLOT_STYLE = ".plot .bar { fill: #4a78b5; } .plot text { font-size: 11px; } figure { display: inline-block; }"
_WIDTH, _HEIGHT, _MARGIN = 360, 150, 24  # one histogram, in SVG user units


@dataclass(frozen=True)
class ScanResult:
    """One scan of the cohort: its manifest entry and, once done, its statistics."""

    entry: Entry
    stats: dict[str, Any] | None

    @property
    def volumes(self) -> dict[int, float]:
        """Volume (mL) of each foreground label value."""
        return {item["value"]: item["volume_ml"] for item in (self.stats or {}).get("labels", [])}


def cohort_results(manifest: Manifest, output_dir: Path) -> list[ScanResult]:
    """Every scan the manifest knows, by name, with the statistics of those done."""
    results = []
    for entry in sorted(manifest.latest.values(), key=lambda entry: entry.name):
        stats_file = CaseFiles(output_dir, entry.name).stats
        done = entry.state == "done" and stats_file.is_file()
        results.append(ScanResult(entry, read_case_stats(stats_file) if done else None))
    return results


def _burdens(stats: dict[str, Any]) -> dict[int, float]:
    """Lesion burden (%) of each lesion label value: its organ's lesion volume over the organ's."""
    found = {}
    for burden in stats.get("burden", []):
        for value in burden["lesion_values"]:
            if burden["fraction"] is not None:
                found[value] = round(100 * burden["fraction"], 3)
    return found


def _in_range(volume: float, value: int, ranges: dict[int, tuple[float, float]]) -> str:
    if value not in ranges:
        return ""
    low, high = ranges[value]
    return "yes" if low <= volume <= high else "no"


def table_rows(results: Sequence[ScanResult], bundle: Bundle) -> list[dict[str, Any]]:
    """The rows of ``cohort.csv`` (see the module's docstring)."""
    rows = []
    for result in results:
        base: dict[str, Any] = {"case": result.entry.name, "scan": result.entry.input, "state": result.entry.state}
        if result.stats is None:
            rows.append({**base, "error": result.entry.error or ""})
            continue
        burdens, warnings = _burdens(result.stats), "; ".join(result.stats.get("warnings", []))
        for item in result.stats["labels"]:
            value = item["value"]
            rows.append(
                {
                    **base,
                    "label": item["label"],
                    "volume_ml": item["volume_ml"],
                    "lesion_count": item.get("lesion_count", ""),
                    "burden_percent": burdens.get(value, ""),
                    "in_training_range": _in_range(item["volume_ml"], value, bundle.volume_ranges),
                    "warnings": warnings,
                }
            )
    return rows


def cohort_table(rows: Sequence[dict[str, Any]]) -> str:
    """``cohort.csv``'s text."""
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def qc_list(results: Sequence[ScanResult], bundle: Bundle) -> list[tuple[str, str]]:
    """``(case, problem)`` for each scan to look at first: failed, empty mask, volume out of range, warnings."""
    names = {label.value: label.name for label in bundle.labels}
    found = []
    for result in results:
        name = result.entry.name
        if result.entry.state == "failed":
            found.append((name, f"failed: {result.entry.error}"))
        if result.stats is None:
            continue
        volumes = result.volumes
        empty = not any(volumes.values())
        if empty:
            found.append((name, "empty mask"))
        for value, (low, high) in {} if empty else bundle.volume_ranges.items():
            if value in volumes and not low <= volumes[value] <= high:
                volume = f"{names[value]} {volumes[value]:.1f} mL"
                found.append((name, f"{volume} outside the {low:g}-{high:g} mL of training"))
        found += [(name, f"warning: {warning}") for warning in result.stats.get("warnings", [])]
    return found


def histogram_svg(values: Sequence[float], title: str, unit: str) -> str:
    """An inline SVG histogram of ``values``: about the square root of their count in bins."""
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    bins = max(1, min(20, math.ceil(math.sqrt(len(values)))))
    span = (high - low) or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / span * bins))] += 1
    tallest, width = max(counts) or 1, (_WIDTH - 2 * _MARGIN) / bins
    bars = "".join(
        f'<rect class="bar" x="{_MARGIN + i * width:.1f}" y="{_HEIGHT - _MARGIN - h:.1f}" '
        f'width="{width - 1:.1f}" height="{h:.1f}"><title>{count} scans</title></rect>'
        for i, count in enumerate(counts)
        for h in [(_HEIGHT - 2 * _MARGIN) * count / tallest]
    )
    bottom = _HEIGHT - 6
    return (
        f'<figure><svg class="plot" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">{bars}'
        f'<text x="{_MARGIN}" y="{bottom}">{low:g}</text>'
        f'<text x="{_WIDTH - _MARGIN}" y="{bottom}" text-anchor="end">{high:g} {escape(unit)}</text>'
        f'<text x="{_MARGIN}" y="14">most: {max(counts)} scans</text></svg>'
        f"<figcaption>{escape(title)} ({len(values)} scans)</figcaption></figure>"
    )


def _plots(results: Sequence[ScanResult], bundle: Bundle) -> str:
    done = [result.stats for result in results if result.stats is not None]
    plots = []
    for label in (label for label in bundle.labels if label.value):
        items = [item for stats in done for item in stats["labels"] if item["value"] == label.value]
        plots.append(histogram_svg([item["volume_ml"] for item in items], f"{label.name} volume", "mL"))
        counts = [item["lesion_count"] for item in items if "lesion_count" in item]
        if counts:
            plots.append(histogram_svg([float(count) for count in counts], f"{label.name} lesion count", "lesions"))
    return "\n".join(plots)


def _link(name: str) -> str:
    return f'<a href="{REPORT_PAGE}#{case_anchor(name)}">{escape(name)}</a>'


def cohort_html(results: Sequence[ScanResult], bundle: Bundle) -> str:
    """``cohort.html``'s text: counts, histograms, the QC list and a table of volumes."""
    states = [result.entry.state for result in results]
    qc = "".join(f"<tr><td>{_link(name)}</td><td>{escape(text)}</td></tr>" for name, text in qc_list(results, bundle))
    labels = [label for label in bundle.labels if label.value]
    header = "".join(f"<th>{escape(label.name)} (mL)</th>" for label in labels)
    rows = "".join(
        f"<tr><td>{_link(result.entry.name)}</td><td>{escape(result.entry.state)}</td>"
        + "".join(f"<td>{result.volumes.get(label.value, '')}</td>" for label in labels)
        + "</tr>"
        for result in results
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>medseg cohort: {escape(bundle.name)}</title>
<style>{STYLE} {PLOT_STYLE}</style>
</head><body>
<h1>medseg cohort: {escape(bundle.name)}</h1>
<p class="note">{states.count("done")} scans done, {states.count("failed")} failed,
{states.count("pending")} not finished. Each name links to its section of {REPORT_PAGE}.
Research use only: check every mask before relying on a number.</p>
<h2>Distributions</h2>
<div id="plots">{_plots(results, bundle)}</div>
<h2>To check first</h2>
<table id="qc"><tr><th>scan</th><th>problem</th></tr>{qc or '<tr><td colspan="2">nothing found</td></tr>'}</table>
<h2>Scans</h2>
<table id="scans"><tr><th>scan</th><th>state</th>{header}</tr>{rows}</table>
</body></html>
"""


def write_cohort_summary(bundle: Bundle, output_dir: Path, manifest: Manifest) -> Path:
    """Write ``cohort.csv`` and ``cohort.html`` atomically; returns the page's path."""
    results = cohort_results(manifest, output_dir)
    write_text(output_dir / COHORT_TABLE, cohort_table(table_rows(results, bundle)))
    page = output_dir / COHORT_PAGE
    write_text(page, cohort_html(results, bundle))
    return page
