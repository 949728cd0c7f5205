"""``medseg check-dataset``: print a dataset's problems, a summary table and its fingerprint."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from medseg.data.discover import discover
from medseg.data.fingerprint import Fingerprint, fingerprint
from medseg.data.validate import DatasetReport, check_dataset
from medseg.io.atomic import write_text


def summary_table(report: DatasetReport) -> str:
    """Cases by kind, then errors and warnings by check."""
    dataset = report.dataset
    lines = [
        f"layout {dataset.layout}: {len(dataset.training)} labelled, {len(dataset.test)} test, "
        f"{len(dataset.orphans)} unpaired file(s)",
        f"{'check':<14} {'errors':>6} {'warnings':>8}",
    ]
    lines += [f"{check:<14} {errors:>6} {warnings:>8}" for check, errors, warnings in report.summary()]
    lines.append(f"{'total':<14} {len(report.errors):>6} {len(report.problems) - len(report.errors):>8}")
    return "\n".join(lines)


def describe_fingerprint(fp: Fingerprint, labels: dict[int, str] | None) -> str:
    """The fingerprint in a few readable lines."""
    lines = [
        f"fingerprint of {fp.cases} labelled case(s), {fp.channels} channel(s)",
        f"  spacing (mm)     median {fp.spacing_median}  p10 {fp.spacing_p10}  p90 {fp.spacing_p90}",
        f"  size (voxels)    median {fp.shape_median}",
        f"  target spacing   {fp.target_spacing} -> median size {fp.shape_at_target}",
    ]
    for channel, stats in enumerate(fp.foreground):
        lines.append(
            f"  foreground ch{channel}   p0.5 {stats['p00_5']:.1f}  p99.5 {stats['p99_5']:.1f}  "
            f"mean {stats['mean']:.1f}  std {stats['std']:.1f}"
        )
    for value, volume in fp.label_volume_ml.items():
        name = (labels or {}).get(int(value), f"label {value}")
        lines.append(
            f"  {name:<16} in {volume['cases']} case(s), median {volume['median']:.1f} mL "
            f"(min {volume['min']:.1f}, max {volume['max']:.1f})"
        )
    return "\n".join(lines)


def check_and_describe(
    data: Path, bundle_name: str | None, fingerprint_file: Path | None, say: Callable[[str], None]
) -> bool:
    """Check a dataset and print the report; returns False when it has errors."""
    from tqdm import tqdm

    labels = channels = None
    if bundle_name is not None:
        from medseg.bundles import find_bundle

        bundle = find_bundle(bundle_name)
        labels, channels = {label.value for label in bundle.labels}, bundle.input_channels
    dataset = discover(data)
    with tqdm(total=len(dataset.training) + len(dataset.test), desc="checking cases", unit="case") as bar:
        report = check_dataset(dataset, labels=labels, channels=channels, progress=lambda n: bar.update(1))
    for problem in report.problems:
        say(str(problem))
    say(summary_table(report))
    if report.stats:
        fp = fingerprint(report.stats)
        say(describe_fingerprint(fp, dataset.labels))
        if fingerprint_file is not None:
            write_text(fingerprint_file, json.dumps(fp.to_dict(), indent=2) + "\n")
    return not report.errors
