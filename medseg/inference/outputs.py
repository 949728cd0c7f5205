"""What ``medseg infer`` writes besides the masks: per case and once per run.

Per case, beside ``<name>_seg.nii.gz``: ``<name>.seg.nrrd`` (Slicer segmentation), ``<name>_stats.json``
(volumes, lesions, burden, which scan it was, provenance) and ``<name>_overlay.png`` (axial, coronal and
sagittal slices through each of the largest lesions, the mask drawn on), ``<name>_viewer.json`` (the scan
and mask made small for the report's slice viewer); for a DICOM series input, when highdicom is installed,
``<name>_seg.dcm`` (DICOM SEG).
Per run, in OUTDIR: ``stats.csv``, ``report.html``, ``<bundle>_colors.ctbl`` and ``open_in_slicer.py``,
covering every case in OUTDIR (earlier runs' too).
Every file is written atomically; :mod:`medseg.inference.predict` writes a case's files into its
staging folder and moves them into OUTDIR together, mask last.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.bundles import Bundle
from medseg.defaults import DEFAULT_MIN_LESION_ML
from medseg.errors import MedsegError
from medseg.inference.plausibility import mask_warnings, scan_warnings
from medseg.inference.provenance import scan_geometry
from medseg.io import read_ahead
from medseg.io.atomic import write_text
from medseg.io.color_table import write_color_table
from medseg.io.dicom_seg import dicom_seg_available, write_dicom_seg
from medseg.io.fast_nifti import load_nifti
from medseg.io.html_report import Pictures, write_report
from medseg.io.overlay import Row, write_overlay
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
from medseg.io.viewer_data import viewer_volume, write_viewer_volume
from medseg.lesions import Quantities, measure

OVERLAY_LESIONS = 3  # the overlay shows a row of slices through each of the largest lesions, up to this many


def focus_voxel(mask: np.ndarray, quantities: Quantities) -> tuple[int, int, int]:
    """Where the overlay's slices cross when there is no lesion: the organs' centre, else the mask's, else the grid's.

    Args:
        mask: ``(X, Y, Z)`` label map.
        quantities: what :func:`medseg.lesions.measure` found in it.
    """
    organs = [value for burden in quantities.burdens for value in burden.organ_labels]
    for region in (np.isin(mask, organs), mask > 0):
        if region.any():
            i, j, k = (int(v) for v in np.rint(ndimage.center_of_mass(region)))
            return i, j, k
    x, y, z = (size // 2 for size in mask.shape)
    return x, y, z


def overlay_rows(mask: np.ndarray, quantities: Quantities, most: int = OVERLAY_LESIONS) -> list[Row]:
    """The overlay's rows: one through each of the ``most`` largest lesions, else one at :func:`focus_voxel`.

    Args:
        mask: ``(X, Y, Z)`` label map.
        quantities: what :func:`medseg.lesions.measure` found in it.
        most: the most lesions to show.
    """
    if not quantities.lesions:
        return [Row("", focus_voxel(mask, quantities))]
    return [
        Row(f"lesion {number}: {lesion.volume_ml:.2f} mL", lesion.centre)
        for number, lesion in enumerate(quantities.lesions[:most], start=1)
    ]


def _scan_intensities(scan: Path) -> np.ndarray:
    """The scan's ``(X, Y, Z)`` intensities; of a multi-channel scan, the first channel.

    Stored integers stay integers (a CT's int16 takes half the memory of float32, and every output
    reads slices, samples or block means of it); scaled or float64 voxels become float32.
    """
    image = read_ahead.take_image(scan)
    data = np.asarray((load_nifti(scan) if image is None else image).dataobj)
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == np.float32):
        data = data.astype(np.float32)
    return data if data.ndim == 3 else data[..., 0]


def _optional(what: str, write: Callable[[], object]) -> list[str]:
    """Make an optional output; if it cannot be made, return the one warning that says so instead of failing."""
    try:
        write()
    except Exception as error:  # an optional output must cost only itself, whatever stopped it
        reason = error.problem if isinstance(error, MedsegError) else f"{type(error).__name__}: {error}"
        return [f"{what} skipped: {(reason.strip().splitlines() or [''])[0][:300]}"]
    return []


@dataclass(frozen=True)
class CaseRecord:
    """What each case's statistics record besides its own numbers.

    Args:
        provenance: the run's record (:func:`medseg.inference.provenance.run_provenance`).
        min_lesion_ml: lesions smaller than this (mL) are counted, not listed.
    """

    provenance: Mapping[str, Any]
    min_lesion_ml: float = DEFAULT_MIN_LESION_ML


def write_case_outputs(bundle: Bundle, scan: ScanInput, files: CaseFiles, record: CaseRecord) -> list[str]:
    """Write the Slicer segmentation, statistics, overlay, viewer data (and DICOM SEG) of the case ``files.mask``.

    The Slicer segmentation and statistics must be written; the overlay, viewer data and DICOM SEG are optional:
    when one cannot be made, a warning says why and the rest is written.

    Args:
        bundle: the bundle that made the mask (labels, colours, terminology, label rules, modality).
        scan: the input as given (recorded in the statistics) and the NIfTI the mask was made from.
        files: where the case's files go; ``files.mask`` must exist.
        record: the run's provenance and the smallest lesion to list, kept in the statistics.

    Returns:
        The case's warnings (also recorded in its statistics): implausible content, skipped outputs.
    """
    # Two lines of work at once, each mostly in numpy, zlib, ISA-L or Pillow, which let go of the GIL: on a
    # 512 x 512 x 200 CT the second core takes the scan's reading and the overlay off the first one's path.
    with ThreadPoolExecutor(max_workers=1) as helper:
        reading = helper.submit(_scan_intensities, scan.path)
        written = load_nifti(files.mask)
        mask, affine = np.asarray(written.dataobj), written.affine
        labels = bundle.labels
        values = [label.value for label in labels if label.value]
        quantities = measure(mask, affine, values, bundle.label_rules.get("inside", {}))
        rows = overlay_rows(mask, quantities)
        write_seg_nrrd(files.segmentation, mask, affine, labels, quantities.boxes)
        intensities = reading.result()
        title = f"{files.name} ({bundle.name})"
        overlay = helper.submit(
            _optional,
            "overlay",
            lambda: write_overlay(
                files.overlay,
                intensities,
                mask,
                affine,
                rows=rows,
                labels=labels,
                modality=bundle.modality,
                title=title,
            ),
        )
        warnings = scan_warnings(intensities, bundle.modality, three_d=bundle.spatial_dims == 3)
        warnings += mask_warnings(quantities.volumes_ml, labels, bundle.volume_ranges)
        warnings += _optional(
            "viewer",
            lambda: write_viewer_volume(
                files.viewer,
                viewer_volume(intensities, mask, affine, labels=labels, modality=bundle.modality, focus=rows[0].focus),
            ),
        )
        warnings += overlay.result()
    if scan.source.is_dir() and dicom_seg_available():
        warnings += _optional("DICOM SEG", lambda: write_dicom_seg(files.dicom_seg, mask, scan.source, bundle))
    stats = case_stats(
        files.name,
        scan.source,
        bundle.name,
        labels,
        quantities,
        modality=scan.modality,
        geometry=scan_geometry(scan.path),
        provenance=record.provenance,
        warnings=warnings,
        min_lesion_ml=record.min_lesion_ml,
    )
    write_case_stats(files.stats, stats)
    return warnings


def publish_case(staged: CaseFiles, output_dir: Path) -> Path:
    """Move a case's staged files into ``output_dir``, the mask last; returns the mask's new path.

    Outputs of an earlier run for the same case that this run did not write (say, statistics when only
    masks were asked for) are removed, so that nothing disagrees with the new mask.
    """
    target = CaseFiles(output_dir, staged.name)
    for name in ("segmentation", "dicom_seg", "stats", "overlay", "viewer", "mask"):
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
    pictures = [Pictures(files.overlay, files.viewer) for files in cases]
    slicer_cases = [SlicerCase(Path(s["scan"]), files.segmentation) for s, files in zip(stats, cases, strict=True)]
    title = f"medseg: {bundle.name}"
    return [
        *_optional(REPORT_PAGE, lambda: write_report(output_dir / REPORT_PAGE, stats, pictures, title)),
        *_optional(SLICER_SCRIPT, lambda: write_slicer_script(output_dir, slicer_cases)),
    ]
