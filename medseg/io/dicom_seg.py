"""DICOM SEG of a mask whose scan was a DICOM series, made with highdicom (``pip install medseg[dicom]``).

The SEG references the series' own instances, frame by frame: the mask's ``(X, Y, Z)`` array is on the
grid :func:`medseg.io.dicom.series_to_nifti` built from the series, whose slice ``k`` is the ``k``-th file
of :func:`medseg.io.dicom.series_files`, so ``mask.transpose(2, 1, 0)`` gives the SEG's
``(frames, rows, columns)`` in the order of those files. DICOM numbers segments 1, 2, ...; they follow
the bundle's foreground labels in order, each described with its name, colour and terminology.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medseg.bundles import Bundle
from medseg.errors import MedsegError
from medseg.io.atomic import atomic_file
from medseg.io.dicom import series_files
from medseg.labels import Code, Label

if TYPE_CHECKING:
    from highdicom import AlgorithmIdentificationSequence
    from highdicom.seg import SegmentDescription
    from highdicom.sr import CodedConcept

SERIES_NUMBER = 901  # where the SEG series sorts in a viewer: after the scanner's own series


def dicom_seg_available() -> bool:
    """True when highdicom (the ``dicom`` extra) is installed."""
    return find_spec("highdicom") is not None


def _software_version() -> str:
    try:
        return version("medseg")
    except PackageNotFoundError:
        return "unknown"


def _concept(code: Code) -> CodedConcept:
    """The coded concept ``(scheme, value, meaning)`` as highdicom takes it."""
    from highdicom.sr import CodedConcept

    scheme, value, meaning = code
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _description(number: int, label: Label, algorithm: AlgorithmIdentificationSequence) -> SegmentDescription:
    from highdicom.color import CIELabColor
    from highdicom.seg import SegmentAlgorithmTypeValues, SegmentDescription

    if label.terminology is None:
        raise MedsegError(f"label {label.value} ({label.name}) has no channel_terminology for a DICOM SEG")
    region = label.terminology.anatomic_region
    return SegmentDescription(
        segment_number=number,
        segment_label=label.name,
        segmented_property_category=_concept(label.terminology.category),
        segmented_property_type=_concept(label.terminology.type),
        algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        anatomic_regions=None if region is None else [_concept(region)],
        display_color=CIELabColor.from_rgb(*label.rgb),
    )


def write_dicom_seg(path: str | Path, mask: np.ndarray, series: Path, bundle: Bundle) -> Path:
    """Write the DICOM SEG of ``mask`` for the DICOM series in folder ``series``, atomically.

    Args:
        path: the ``.dcm`` file to write.
        mask: ``(X, Y, Z)`` label map on the series' grid (bundle label values).
        series: the folder holding the series the mask was made from.
        bundle: the bundle that made it (labels, terminology, name and version).

    Raises:
        MedsegError: a label lacks terminology, or highdicom refuses the series (one line).
    """
    import pydicom
    from highdicom import UID, AlgorithmIdentificationSequence
    from highdicom.seg import Segmentation, SegmentationTypeValues
    from pydicom.sr.codedict import codes

    foreground = [label for label in bundle.labels if label.value]
    numbers = np.zeros(max(label.value for label in foreground) + 1, np.uint8)
    numbers[[label.value for label in foreground]] = np.arange(1, len(foreground) + 1)
    algorithm = AlgorithmIdentificationSequence(
        name=bundle.name, family=codes.cid7162.ArtificialIntelligence, version=str(bundle.metadata.get("version", "0"))
    )
    try:
        seg = Segmentation(
            source_images=[pydicom.dcmread(name) for name in series_files(series)],
            pixel_array=numbers[mask.transpose(2, 1, 0)],
            segmentation_type=SegmentationTypeValues.BINARY,
            segment_descriptions=[_description(n, label, algorithm) for n, label in enumerate(foreground, start=1)],
            series_instance_uid=UID(),
            series_number=SERIES_NUMBER,
            sop_instance_uid=UID(),
            instance_number=1,
            manufacturer="medseg",
            manufacturer_model_name=bundle.name,
            software_versions=_software_version(),
            device_serial_number="none",
            series_description=f"medseg {bundle.name}",
        )
    except ValueError as error:
        raise MedsegError(f"cannot make a DICOM SEG of this series ({error})", series) from None
    with atomic_file(path) as partial:
        seg.save_as(partial)
    return Path(path)
