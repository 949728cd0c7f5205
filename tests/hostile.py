"""Hostile inputs for the fuzz tests: hypothesis strategies, the files they become, and a tally.

Each strategy draws a *recipe* (what to break and how); the builders turn a recipe into bytes on
disk, starting from a small valid file, so that most examples get past the first sanity check and
exercise the reader further in.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Inputs tried per fuzz target in this session; printed at the end of a `-m fuzz` run.
TRIED: Counter[str] = Counter()

# In `make test`: a few examples per target, each under a time bound (generous: the machine may be busy).
# Under `-m fuzz`: many more.
BOUNDED = settings(
    max_examples=25, deadline=10_000, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LONG = settings(max_examples=1000, deadline=20_000, suppress_health_check=list(HealthCheck))

SHAPE = (6, 5, 4)
HEADER_BYTES = 348
# Header fields worth breaking: the ones that say how big the data is, where it lies and how to scale it.
FIELDS = (
    "sizeof_hdr",
    "dim",
    "datatype",
    "bitpix",
    "pixdim",
    "vox_offset",
    "scl_slope",
    "scl_inter",
    "qform_code",
    "sform_code",
    "quatern_b",
    "quatern_c",
    "quatern_d",
    "qoffset_x",
    "srow_x",
    "srow_y",
    "srow_z",
    "magic",
)


def valid_nifti() -> bytes:
    """A small, valid, uncompressed int16 NIfTI-1 (oblique affine, qform = sform)."""
    angle = 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 1.2, 3.0])
    data = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, 1)
    image.set_sform(affine, 1)
    return image.to_bytes()


def _field_value(field: str) -> st.SearchStrategy:
    kind = nib.Nifti1Header.template_dtype[field]
    base = kind.base
    if base.kind == "S":
        return st.binary(max_size=base.itemsize)
    if base.kind in "iu":
        info = np.iinfo(base)
        extremes = st.sampled_from([info.min, -1, 0, 1, 2, 3, 4, 5, 7, info.max])
        return st.one_of(extremes, st.integers(int(info.min), int(info.max)))
    return st.one_of(
        st.sampled_from([0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e38, 1e-38]), st.floats(width=32)
    )


@st.composite
def header_edits(draw: st.DrawFn) -> list[tuple[str, int, object]]:
    """One to three ``(field, index, value)`` changes to a NIfTI-1 header."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(FIELDS))
        length = int(np.prod(nib.Nifti1Header.template_dtype[field].shape, dtype=int))
        edits.append((field, draw(st.integers(0, max(length - 1, 0))), draw(_field_value(field))))
    return edits


def edit_header(raw: bytes, edits: list[tuple[str, int, object]]) -> bytes:
    """``raw`` (a NIfTI-1 file) with its header fields changed as ``edits`` say."""
    header = np.frombuffer(raw[:HEADER_BYTES], dtype=nib.Nifti1Header.template_dtype).copy()
    for field, index, value in edits:
        if header[field].ndim == 1:  # a scalar field of the one header record
            header[field][0] = value
        else:
            header[field][0, index] = value
    return header.tobytes() + raw[HEADER_BYTES:]


# How the bytes of a file get broken after the header edits.
DAMAGE = st.one_of(
    st.tuples(st.just("none")),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=8)),
)


def damage(raw: bytes, how: tuple) -> bytes:
    """``raw`` truncated at a fraction of its length, or with bytes XOR-ed at fractions of it."""
    if how[0] == "truncate":
        return raw[: int(len(raw) * how[1])]
    if how[0] == "flip":
        broken = bytearray(raw)
        for where, mask in how[1]:
            broken[min(int(len(raw) * where), len(raw) - 1)] ^= mask
        return bytes(broken)
    return raw


@st.composite
def nifti_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """``(suffix, bytes)`` of a NIfTI file with header edits, then damage to the file or its gzip stream."""
    raw = edit_header(valid_nifti(), draw(header_edits()))
    if draw(st.booleans()):
        return ".nii", damage(raw, draw(DAMAGE))
    return ".nii.gz", damage(gzip.compress(raw), draw(DAMAGE))


# Paths a dataset file may name: fine ones, absolute ones, ones that climb out, symlinks out, junk.
PATHS = st.one_of(
    st.sampled_from(
        [
            "imagesTr/case.nii.gz",
            "labelsTr/case.nii.gz",
            "/etc/passwd",
            "../outside.nii.gz",
            "imagesTr/../../outside.nii.gz",
            "escape/secret.nii.gz",
            "linked.nii.gz",
            "loop/x.nii.gz",
            "",
            ".",
            "a\x00b.nii.gz",
            "~/x.nii.gz",
            "x" * 5000,
        ]
    ),
    st.text(max_size=40),
)


def json_values(leaves: st.SearchStrategy) -> st.SearchStrategy:
    """Any JSON value whose strings come from ``leaves``."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), leaves)
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    )


@st.composite
def dataset_descriptions(draw: st.DrawFn) -> bytes:
    """The bytes of a ``dataset.json``: an MSD or nnU-Net description with hostile entries, any JSON, or not UTF-8."""
    entry = st.fixed_dictionaries({"image": PATHS, "label": PATHS}) | json_values(PATHS)
    msd = st.fixed_dictionaries(
        {"labels": json_values(PATHS), "training": st.lists(entry, max_size=3)},
        optional={"test": st.lists(PATHS | entry, max_size=2), "modality": json_values(PATHS)},
    )
    nnunet = st.fixed_dictionaries(
        {"channel_names": json_values(PATHS), "labels": json_values(PATHS), "file_ending": PATHS},
        optional={"numTraining": json_values(PATHS)},
    )
    kind = draw(st.sampled_from(["msd", "nnunet", "any", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    value = draw({"msd": msd, "nnunet": nnunet, "any": json_values(PATHS)}[kind])
    return json.dumps(value).encode()


@st.composite
def csv_tables(draw: st.DrawFn) -> bytes:
    """The bytes of a dataset CSV: ``image,label`` rows of hostile paths, any text, or not UTF-8."""
    kind = draw(st.sampled_from(["rows", "text", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    rows = draw(st.lists(st.tuples(PATHS, PATHS), min_size=1, max_size=4))
    cells = [",".join(json.dumps(cell) for cell in row) for row in rows]
    return "\n".join(["image,label", *cells]).encode("utf-8", "surrogatepass")


def hostile_dataset_folder(root: Path, outside: Path) -> Path:
    """A dataset folder holding one real-looking case, a symlinked folder and file out of it, and a symlink loop."""
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True)
        (root / folder / "case.nii.gz").write_bytes(b"")
    outside.mkdir()
    (outside / "secret.nii.gz").write_bytes(b"")
    (root / "escape").symlink_to(outside)
    (root / "linked.nii.gz").symlink_to(outside / "secret.nii.gz")
    (root / "loop").symlink_to(root / "loop")
    return root
