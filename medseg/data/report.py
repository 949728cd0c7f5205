"""Check a dataset and fingerprint it (``medseg check-dataset``, :func:`medseg.check_dataset`); describe both."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.data.discover import discover
from medseg.data.fingerprint import Fingerprint, fingerprint
from medseg.data.validate import DatasetReport, check_dataset
from medseg.io.atomic import write_text

if TYPE_CHECKING:
    from medseg.bundles import Bundle


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


@dataclass(frozen=True)
class DatasetCheck:
    """A dataset's problems and, when any labelled case could be read, its fingerprint."""

    report: DatasetReport
    fingerprint: Fingerprint | None

    @property
    def ok(self) -> bool:
        """Whether the dataset has no errors (warnings are allowed)."""
        return not self.report.errors

    def describe(self) -> str:
        """One line per problem, the summary table and the fingerprint, as ``medseg check-dataset`` prints them."""
        lines = [*map(str, self.report.problems), summary_table(self.report)]
        if self.fingerprint is not None:
            lines.append(describe_fingerprint(self.fingerprint, self.report.dataset.labels))
        return "\n".join(lines)


def check_and_fingerprint(
    data: str | Path, bundle: Bundle | None, fingerprint_file: str | Path | None, *, progress: bool
) -> DatasetCheck:
    """Check a dataset (against ``bundle``'s labels and channels, if given) and fingerprint it.

    Args:
        data: the dataset folder or CSV file (see :func:`medseg.data.discover.discover`).
        bundle: the bundle whose labels and input channels the cases must have; None checks
            against the dataset's own ``dataset.json``.
        fingerprint_file: where to write the fingerprint as JSON, if anywhere.
        progress: show a progress bar (tqdm, on stderr).
    """
    from tqdm import tqdm

    labels = channels = None
    if bundle is not None:
        labels, channels = {label.value for label in bundle.labels}, bundle.input_channels
    dataset = discover(data)
    total = len(dataset.training) + len(dataset.test)
    with tqdm(total=total, desc="checking cases", unit="case", disable=not progress) as bar:
        report = check_dataset(dataset, labels=labels, channels=channels, progress=lambda n: bar.update(1))
    fp = fingerprint(report.stats) if report.stats else None
    if fp is not None and fingerprint_file is not None:
        write_text(fingerprint_file, json.dumps(fp.to_dict(), indent=2) + "\n")
    return DatasetCheck(report, fp)
