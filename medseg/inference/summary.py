"""The line ``medseg infer`` prints for each scan it finished: the mask, the volume of each label, warnings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medseg.io.paths import CaseFiles
from medseg.io.stats import read_case_stats


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _label_volume(entry: Mapping[str, Any]) -> str:
    """``tumour 12.1 mL (2 lesions)``: a label's volume, and its lesion count for a lesion label."""
    text = f"{entry['label']} {entry['volume_ml']:.1f} mL"
    return text if "lesion_count" not in entry else f"{text} ({_plural(entry['lesion_count'], 'lesion')})"


def scan_summary(mask: Path) -> str:
    """``wrote OUT/case_seg.nii.gz: liver 1523.4 mL, tumour 12.1 mL (2 lesions); 1 warning``.

    The volumes come from the case's ``<name>_stats.json``; without one (``--masks-only``) the line
    names the mask alone.
    """
    stats_file = CaseFiles.of_mask(mask).stats
    if not stats_file.is_file():
        return f"wrote {mask}"
    stats = read_case_stats(stats_file)
    volumes = ", ".join(_label_volume(entry) for entry in stats["labels"])
    warnings = len(stats.get("warnings", []))
    return f"wrote {mask}: {volumes}" + (f"; {_plural(warnings, 'warning')}" if warnings else "")
