"""What ``medseg infer`` writes besides the masks: per case and once per run.

Per case, beside ``<name>_seg.nii.gz``: ``<name>.seg.nrrd`` (Slicer segmentation), ``<name>_stats.json``
(volumes, lesions, burden, and which scan it was) and ``<name>_overlay.png`` (three slices with the mask
outlined); for a DICOM series input, when highdicom is installed, ``<name>_seg.dcm`` (DICOM SEG).
Per run, in OUTDIR: ``stats.csv``, ``report.html``, ``<bundle>_colors.ctbl`` and ``open_in_slicer.py``.
Every file is written atomically; :mod:`medseg.inference.predict` writes a case's files into its
staging folder and moves them into OUTDIR together, mask last.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from medseg.bundles import Bundle
from medseg.io.atomic import write_text
from medseg.io.color_table import write_color_table
from medseg.io.dicom_seg import dicom_seg_available, write_dicom_seg
from medseg.io.html_report import write_report
from medseg.io.overlay import write_overlay
from medseg.io.paths import REPORT_PAGE, STATS_TABLE, CaseFiles, color_table_path
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


def write_case_outputs(bundle: Bundle, source: Path, scan: Path, files: CaseFiles) -> None:
    """Write the Slicer segmentation, statistics, overlay (and DICOM SEG) of the case whose mask is ``files.mask``.

    Args:
        bundle: the bundle that made the mask (labels, colours, terminology, label rules, modality).
        source: the input as given (NIfTI file or DICOM series folder); recorded in the statistics.
        scan: the NIfTI the mask was made from (``source``, or its conversion), on the mask's grid.
        files: where the case's files go; ``files.mask`` must exist.
    """
    header = nib.load(files.mask)
    mask, affine = np.asarray(header.dataobj), header.affine
    labels = bundle.labels
    write_seg_nrrd(files.segmentation, mask, affine, labels)
    if source.is_dir() and dicom_seg_available():
        write_dicom_seg(files.dicom_seg, mask, source, bundle)
    values = [label.value for label in labels if label.value]
    quantities = measure(mask, affine, values, bundle.label_rules.get("inside", {}))
    write_case_stats(files.stats, case_stats(files.name, source, bundle.name, bundle.modality, labels, quantities))
    write_overlay(
        files.overlay,
        _scan_intensities(scan),
        mask,
        affine,
        focus=focus_voxel(mask, quantities),
        labels=labels,
        modality=bundle.modality,
        title=f"{files.name} ({bundle.name})",
    )


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


def write_run_outputs(bundle: Bundle, output_dir: Path, cases: Sequence[CaseFiles]) -> None:
    """Write ``stats.csv``, ``report.html``, the colour table and ``open_in_slicer.py`` for ``cases``."""
    stats = [read_case_stats(files.stats) for files in cases]
    write_text(output_dir / STATS_TABLE, stats_table(stats))
    write_report(output_dir / REPORT_PAGE, stats, [files.overlay for files in cases], f"medseg: {bundle.name}")
    write_color_table(color_table_path(output_dir, bundle.name), bundle.labels)
    write_slicer_script(
        output_dir, [SlicerCase(Path(s["scan"]), files.segmentation) for s, files in zip(stats, cases, strict=True)]
    )
