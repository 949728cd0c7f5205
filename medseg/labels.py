"""Label names, colours and terminology: what a mask value means, for writers and bundles alike.

A bundle's ``metadata.json`` may give each label a colour and a SNOMED CT meaning; medseg's bundles
do. Model-zoo bundles give names only (``spleen``, ``kidney_right``, ``pancreatic tumor``), so
:func:`known_label` completes a label from a built-in table of common anatomy and lesion names, and
gives the rest a colour from a fixed palette.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DEFAULT_RGB = (128, 128, 128)

# A coded concept: (coding scheme designator, code value, code meaning), e.g. ("SCT", "10200004", "Liver").
Code = tuple[str, str, str]


@dataclass(frozen=True)
class Terminology:
    """What a label is, in DICOM segmentation terms (SNOMED CT codes), as Slicer and DICOM SEG record it.

    Args:
        category: segmented property category, e.g. anatomical structure or morphologically altered structure.
        type: segmented property type, e.g. liver or neoplasm.
        anatomic_region: where a lesion type lies (the liver for a liver tumour), or None.
    """

    category: Code
    type: Code
    anatomic_region: Code | None = None


@dataclass(frozen=True)
class Label:
    """One output label of a bundle.

    Args:
        value: voxel value in the mask.
        name: label name from ``channel_def``.
        color: RGB colour (0-255), or None where the metadata gives none.
        terminology: coded meaning from ``channel_terminology``, or None where the metadata gives none.
    """

    value: int
    name: str
    color: tuple[int, int, int] | None
    terminology: Terminology | None = None

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour to draw the label in (0-255): its own, or mid grey where the metadata gives none."""
        return self.color if self.color is not None else DEFAULT_RGB


ANATOMY: Code = ("SCT", "91723000", "Anatomical Structure")
ALTERED: Code = ("SCT", "49755003", "Morphologically Altered Structure")
NEOPLASM: Code = ("SCT", "108369006", "Neoplasm")

# Organs by the words that name them (after lower-casing, "_" and "-" read as spaces): SNOMED CT code,
# meaning, colour (3D Slicer's generic anatomy colours where it has one).
ORGANS: dict[str, tuple[str, str, tuple[int, int, int]]] = {
    "spleen": ("78961009", "Spleen", (157, 108, 162)),
    "liver": ("10200004", "Liver", (221, 130, 101)),
    "kidney": ("64033007", "Kidney", (185, 102, 83)),
    "gallbladder": ("28231008", "Gallbladder", (139, 150, 98)),
    "stomach": ("69695003", "Stomach", (216, 132, 105)),
    "aorta": ("15825003", "Aorta", (224, 97, 76)),
    "inferior vena cava": ("64131007", "Inferior vena cava", (0, 151, 206)),
    "ivc": ("64131007", "Inferior vena cava", (0, 151, 206)),
    "portal": ("32764006", "Portal vein", (0, 112, 165)),
    "pancrea": ("15776009", "Pancreas", (249, 180, 111)),
    "esophagus": ("32849002", "Esophagus", (211, 171, 143)),
    "adrenal": ("23451007", "Adrenal gland", (244, 217, 154)),
    "lung": ("39607008", "Lung", (197, 165, 145)),
    "heart": ("80891009", "Heart", (206, 110, 84)),
    "bladder": ("89837001", "Urinary bladder", (222, 198, 101)),
    "prostate": ("41216001", "Prostate", (230, 158, 140)),
    "brain": ("12738006", "Brain", (250, 250, 225)),
    "duodenum": ("38848004", "Duodenum", (255, 253, 229)),
    "colon": ("71854001", "Colon", (204, 168, 143)),
    "trachea": ("44567001", "Trachea", (182, 228, 255)),
}
LESION_WORDS = ("tumor", "tumour", "cancer", "lesion", "neoplasm", "metastas", "enhancing")
# Colours for labels the table does not know, by value (a qualitative palette, as plotting libraries use).
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120), (152, 223, 138),
]  # fmt: skip


def _words(name: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", name.lower()).split())


def _organ(words: str) -> tuple[str, str, tuple[int, int, int]] | None:
    return next((organ for key, organ in ORGANS.items() if key in words), None)


def _known(name: str) -> tuple[tuple[int, int, int] | None, Terminology] | None:
    """Colour (None for a lesion) and terminology of a common anatomy or lesion name, or None."""
    words = _words(name)
    organ = _organ(words)
    region = None if organ is None else ("SCT", organ[0], organ[1])
    if any(word in words for word in LESION_WORDS):
        return None, Terminology(ALTERED, NEOPLASM, region)  # lesions: a palette colour each
    if organ is None:
        return None
    return organ[2], Terminology(ANATOMY, ("SCT", organ[0], organ[1]))


def known_label(label: Label) -> Label:
    """``label`` completed: a missing colour and terminology from the built-in table, else a palette colour.

    What the metadata gives is kept; background (value 0) is left as it is.

    Examples:
        >>> known_label(Label(3, "kidney_left", None)).terminology.type
        ('SCT', '64033007', 'Kidney')
        >>> known_label(Label(2, "pancreatic tumor", None)).terminology.anatomic_region
        ('SCT', '15776009', 'Pancreas')
    """
    if label.value == 0 or (label.color is not None and label.terminology is not None):
        return label
    known = _known(label.name)
    color = known[0] if known and known[0] else PALETTE[(label.value - 1) % len(PALETTE)]
    return replace(
        label,
        color=label.color if label.color is not None else color,
        terminology=label.terminology if label.terminology is not None else (known[1] if known else None),
    )
