"""What a DICOM file is, read from its header alone: a slice, a multi-frame volume, or something else.

Besides the slices of scans and multi-frame volumes, hospital exports hold many other objects: RT
doses, structure sets, reports, segmentations.

Folders of exported studies mix these freely. medseg segments CT, MR and PET slices (a series of
single-frame files, read with SimpleITK) and enhanced multi-frame CT and MR volumes (one file, read
with highdicom); everything else is named in the one line that refuses it, so that the user learns
what the file is rather than that "no series was found".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import MedsegError

# Single-frame image objects that stack into a volume: CT, MR and PET Image Storage.
SLICE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.128": "PT",
}
# Multi-frame objects that hold a whole volume, the position of each frame in per-frame functional groups.
VOLUME_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.2.2": "CT",  # Legacy Converted Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.4.4": "MR",  # Legacy Converted Enhanced MR
    "1.2.840.10008.5.1.4.1.1.130": "PT",  # Enhanced PET
    "1.2.840.10008.5.1.4.1.1.128.1": "PT",  # Legacy Converted Enhanced PET
}
# What the objects found beside scans are, in words; matched by SOP class UID prefix, longest first.
KINDS = {
    "1.2.840.10008.5.1.4.1.1.481.2": "an RT dose",
    "1.2.840.10008.5.1.4.1.1.481.3": "an RT structure set",
    "1.2.840.10008.5.1.4.1.1.481.5": "an RT plan",
    "1.2.840.10008.5.1.4.1.1.481.1": "an RT image",
    "1.2.840.10008.5.1.4.1.1.481": "an RT object",
    "1.2.840.10008.5.1.4.1.1.66.4": "a DICOM SEG (a segmentation)",
    "1.2.840.10008.5.1.4.1.1.66.1": "a spatial registration",
    "1.2.840.10008.5.1.4.1.1.66": "raw data or a registration",
    "1.2.840.10008.5.1.4.1.1.88": "a structured report (SR)",
    "1.2.840.10008.5.1.4.1.1.11": "a presentation state",
    "1.2.840.10008.5.1.4.1.1.104": "an encapsulated document (PDF or CDA)",
    "1.2.840.10008.5.1.4.1.1.9": "a waveform (ECG or another signal)",
    "1.2.840.10008.5.1.4.1.1.7": "a secondary capture (a picture, not a scan)",
    "1.2.840.10008.5.1.4.1.1.6": "an ultrasound image",
    "1.2.840.10008.5.1.4.1.1.3": "an ultrasound image",
    "1.2.840.10008.5.1.4.1.1.1": "a radiograph (a 2D projection)",
    "1.2.840.10008.5.1.4.1.1.12": "an X-ray angiogram or fluoroscopy image",
    "1.2.840.10008.5.1.4.1.1.77": "a visible-light photograph or microscopy image",
    "1.2.840.10008.5.1.4.1.1.20": "a nuclear medicine image",
    "1.2.840.10008.5.1.4.1.1.4.2": "an MR spectroscopy object",
}
# How each scan modality is named in a sentence.
MODALITY_WORDS = {"CT": "a CT", "MR": "an MR", "PT": "a PET"}
DIRECTORY_CLASS = "1.2.840.10008.1.3.10"  # DICOMDIR: an index of files, not an image
# Header elements read to tell what a file is (the pixel data is never read here).
HEADER_TAGS = ["SOPClassUID", "Modality", "SeriesInstanceUID", "NumberOfFrames", "MediaStorageSOPClassUID"]


@dataclass(frozen=True)
class DicomObject:
    """One DICOM file, as its header describes it.

    Args:
        path: the file.
        sop_class: its SOP Class UID (what kind of object it is).
        modality: its Modality (``CT``, ``MR``, ``RTDOSE``...), or None where it has none.
        series_uid: its Series Instance UID, or None.
    """

    path: Path
    sop_class: str
    modality: str | None
    series_uid: str | None

    @property
    def is_slice(self) -> bool:
        """True for a single-frame CT, MR or PET image: one slice of a series."""
        return self.sop_class in SLICE_CLASSES

    @property
    def is_volume(self) -> bool:
        """True for an enhanced (multi-frame) CT, MR or PET image: a whole volume in one file."""
        return self.sop_class in VOLUME_CLASSES

    @property
    def scan_modality(self) -> str | None:
        """``CT``, ``MR`` or ``PT`` for the image objects medseg reads, else None."""
        return SLICE_CLASSES.get(self.sop_class) or VOLUME_CLASSES.get(self.sop_class)

    @property
    def kind(self) -> str:
        """What the object is, in words: ``a CT image slice``, ``an RT dose``..."""
        if self.is_slice:
            return f"{MODALITY_WORDS[SLICE_CLASSES[self.sop_class]]} image slice"
        if self.is_volume:
            return f"an enhanced multi-frame {VOLUME_CLASSES[self.sop_class]} image"
        if self.sop_class == DIRECTORY_CLASS:
            return "a DICOMDIR (an index of files)"
        for prefix in sorted(KINDS, key=len, reverse=True):
            if self.sop_class == prefix or self.sop_class.startswith(prefix + "."):
                return KINDS[prefix]
        return f"a DICOM object of SOP class {self.sop_class}"


def _read_header(path: Path, *, force: bool) -> object:
    import pydicom

    with warnings.catch_warnings():  # pydicom warns about every oddity of real-world headers
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=HEADER_TAGS, force=force)


def read_object(path: str | Path) -> DicomObject | None:
    """Describe a DICOM file from its header, or return None when the file is not DICOM.

    Files without the DICOM preamble (old exports write none) are read too, but only count as DICOM
    when they name a SOP class.

    Raises:
        MedsegError: the file claims to be DICOM but its header cannot be read.
    """
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        header = _read_header(path, force=False)
    except InvalidDicomError:
        try:
            header = _read_header(path, force=True)
        except Exception:  # any parse failure of a file without the DICOM marker: it is not DICOM
            return None
        if not str(getattr(header, "SOPClassUID", "")).startswith("1."):
            return None
    except Exception as error:  # pydicom raises many types on a damaged header; each is one line here
        raise MedsegError(f"cannot read DICOM header ({type(error).__name__}: {error})", path) from None
    meta = getattr(header, "file_meta", None)
    sop_class = str(getattr(header, "SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", ""))
    if not sop_class:
        return None
    modality = str(getattr(header, "Modality", "") or "") or None
    series = str(getattr(header, "SeriesInstanceUID", "") or "") or None
    return DicomObject(path, sop_class, modality, series)


def folder_objects(folder: Path) -> list[DicomObject]:
    """Every DICOM file directly inside ``folder`` (sub-folders are not searched), by file name."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and (described := read_object(path)) is not None:
            found.append(described)
    return found


def describe(objects: list[DicomObject]) -> str:
    """What a list of objects holds, in words: ``an RT dose``, ``an RT dose and a structured report (SR)``."""
    kinds = list(dict.fromkeys(obj.kind for obj in objects))
    named = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + f" and {kinds[-1]}"
    return named if len(objects) == 1 else f"{named} ({len(objects)} files)"
