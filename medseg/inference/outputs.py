"""What ``medseg infer`` writes besides the masks: per case and once per run.

Per case, beside ``<name>_seg.nii.gz``: ``<name>.seg.nrrd`` (Slicer segmentation), ``<name>_stats.json``
(volumes, lesions, burden, and which scan it was) and ``<name>_overlay.png`` (three slices with the mask
outlined); for a DICOM series input, when highdicom is installed, ``<name>_seg.dcm`` (DICOM SEG).
Per run, in OUTDIR: ``stats.csv``, ``report.html``, ``<bundle>_colors.ctbl`` and ``open_in_slicer.py``,
covering every case in OUTDIR (earlier runs' too).
Every file is written atomically; :mod:`medseg.inference.predict` writes a case's files into its
staging folder and moves them into OUTDIR together, mask last.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from medseg.bundles import Bundle
from medseg.errors import MedsegError
from medseg.inference.plausibility import mask_warnings, scan_warnings, volume_ranges
from medseg.io.atomic import write_text
from medseg.io.color_table import write_color_table
from medseg.io.dicom_seg import dicom_seg_available, write_dicom_seg
from medseg.io.html_report import write_report
from medseg.io.overlay import write_overlay
from medseg.io.paths import (
    REPORT_PAGE,
    SLICER_SCRIPT,
    STATS_TABLE,
    CaseFiles,
    ScanInput,
    cases_in,
    color_table_path,
)
from medseg.io.seg_nrrd import write_seg_nrrd
from medseg.io.slicer_script import SlicerCase, write_slicer_script
from medseg.io.stats import case_stats, read_case_stats, stats_table, write_case_stats
from medseg.lesions import Quantities, measure


def focus_voxel(mask: np.ndarray, quantities: Quantities) -> tuple[int, int, int]:
    """Where the overlay's slices cross: the largest lesion, else the organs' centre, else the mask's, else the grid's.

    Args:
        mask: ``(X, Y, Z)`` label map.
        quantities: what :func:`medseg.lesions.measure` found in it.
    """
    if quantities.lesions:
        return quantities.lesions[0].centre
    organs = [value for burden in quantities.burdens for value in burden.organ_labels]
    for region in (np.isin(mask, organs), mask > 0):
        if region.any():
            return tuple(int(v) for v in np.rint(ndimage.center_of_mass(region)))
    return tuple(size // 2 for size in mask.shape)


def _scan_intensities(scan: Path) -> np.ndarray:
    """The scan's ``(X, Y, Z)`` intensities; of a multi-channel scan, the first channel."""
    image = nib.load(scan)
    data = np.asarray(image.dataobj, dtype=np.float32)
    return data if data.ndim == 3 else data[..., 0]


def _optional(what: str, write: Callable[[], object]) -> list[str]:
    """Make an optional output; if it cannot be made, return the one warning that says so instead of failing."""
    try:
        write()
    except Exception as error:  # an optional output must cost only itself, whatever stopped it
        reason = error.problem if isinstance(error, MedsegError) else f"{type(error).__name__}: {error}"
        return [f"{what} skipped: {(reason.strip().splitlines() or [''])[0][:300]}"]
    return []


def _is_three_d(bundle: Bundle) -> bool:
    image = bundle.metadata.get("network_data_format", {}).get("inputs", {}).get("image", {})
    return len(image.get("spatial_shape", [0, 0, 0])) == 3


def write_case_outputs(bundle: Bundle, scan: ScanInput, files: CaseFiles) -> list[str]:
    """Write the Slicer segmentation, statistics, overlay (and DICOM SEG) of the case whose mask is ``files.mask``.

    The Slicer segmentation and statistics must be written; the overlay and DICOM SEG are optional:
    when one cannot be made, a warning says why and the rest is written.

    Args:
        bundle: the bundle that made the mask (labels, colours, terminology, label rules, modality).
        scan: the input as given (recorded in the statistics) and the NIfTI the mask was made from.
        files: where the case's files go; ``files.mask`` must exist.

    Returns:
        The case's warnings (also recorded in its statistics): implausible content, skipped outputs.
    """
    header = nib.load(files.mask)
    mask, affine = np.asarray(header.dataobj), header.affine
    labels = bundle.labels
    write_seg_nrrd(files.segmentation, mask, affine, labels)
    values = [label.value for label in labels if label.value]
    quantities = measure(mask, affine, values, bundle.label_rules.get("inside", {}))
    intensities = _scan_intensities(scan.path)
    warnings = scan_warnings(intensities, bundle.modality, three_d=_is_three_d(bundle))
    warnings += mask_warnings(quantities.volumes_ml, labels, volume_ranges(bundle))
    title = f"{files.name} ({bundle.name})"
    focus = focus_voxel(mask, quantities)
    warnings += _optional(
        "overlay",
        lambda: write_overlay(
            files.overlay, intensities, mask, affine, focus=focus, labels=labels, modality=bundle.modality, title=title
        ),
    )
    if scan.source.is_dir() and dicom_seg_available():
        warnings += _optional("DICOM SEG", lambda: write_dicom_seg(files.dicom_seg, mask, scan.source, bundle))
    stats = case_stats(
        files.name, scan.source, bundle.name, labels, quantities, modality=scan.modality, warnings=warnings
    )
    write_case_stats(files.stats, stats)
    return warnings


def publish_case(staged: CaseFiles, output_dir: Path) -> Path:
    """Move a case's staged files into ``output_dir``, the mask last; returns the mask's new path.

    Outputs of an earlier run for the same case that this run did not write (say, statistics when only
    masks were asked for) are removed, so that nothing disagrees with the new mask.
    """
    target = CaseFiles(output_dir, staged.name)
    for name in ("segmentation", "dicom_seg", "stats", "overlay", "mask"):
        source, destination = getattr(staged, name), getattr(target, name)
        if source.is_file():
            os.replace(source, destination)
        else:
            destination.unlink(missing_ok=True)
    return target.mask


def write_run_outputs(bundle: Bundle, output_dir: Path) -> list[str]:
    """Write ``stats.csv``, ``report.html``, the colour table and ``open_in_slicer.py`` for every case in the folder.

    The folder's cases are those with a mask and statistics (:func:`~medseg.io.paths.cases_in`): a
    run into a folder that holds an earlier run's cases lists them too, so that the table and the
    report describe the folder as it is.

    Returns:
        Warnings for the optional files (report, Slicer snippet) that could not be made.
    """
    cases = cases_in(output_dir)
    stats = [read_case_stats(files.stats) for files in cases]
    write_text(output_dir / STATS_TABLE, stats_table(stats))
    write_color_table(color_table_path(output_dir, bundle.name), bundle.labels)
    overlays = [files.overlay for files in cases]
    slicer_cases = [SlicerCase(Path(s["scan"]), files.segmentation) for s, files in zip(stats, cases, strict=True)]
    title = f"medseg: {bundle.name}"
    return [
        *_optional(REPORT_PAGE, lambda: write_report(output_dir / REPORT_PAGE, stats, overlays, title)),
        *_optional(SLICER_SCRIPT, lambda: write_slicer_script(output_dir, slicer_cases)),
    ]
