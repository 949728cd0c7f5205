"""Scans from the wild: the DICOM and NIfTI test files of pydicom, pydicom-data and nibabel.

Two batches, as a research assistant would point medseg at a folder of exported studies: every
CT-like input through the CT bundle, every MR-like input through the MRI bundle. Each input must be
segmented with its mask on the source's exact grid (compared with SimpleITK's reading of the
source) or refused in one ``error:`` line that names it and says what it is, leaving nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medseg.bundles import find_bundle
from medseg.inference.predict import segment_report

from .wild import NIBABEL_FILES, PYDICOM_FILES, as_folder, pydicom_data_file

CT, MR = "ct_liver_tumour_3d", "mri_brain_tissue_3d"
SEGMENTED = None
DICOMDIR_SERIES = PYDICOM_FILES / "dicomdirtests"


@dataclass(frozen=True)
class Wild:
    """One input of a batch: its name in the batch, what it is made from, and what must happen to it.

    Args:
        name: the input's folder or file name in the batch.
        bundle: the bundle whose batch it is in.
        expect: None when it must be segmented, else a fragment of its one error line.
        files: the real files it is made of (a folder of them, unless ``as_file``).
        as_file: the input is the one file itself, not a folder holding it.
    """

    name: str
    bundle: str
    expect: str | None
    files: tuple[Path, ...]
    as_file: bool = False


def _cases() -> list[Wild]:
    pd = PYDICOM_FILES
    return [
        Wild("ct_series", CT, SEGMENTED, tuple(sorted((DICOMDIR_SERIES / "98892001" / "CT5N").iterdir()))),
        Wild("ct_slice", CT, SEGMENTED, (pd / "CT_small.dcm",)),
        Wild("ct_slice_no_frame_of_reference", CT, SEGMENTED, (pydicom_data_file("693_UNCI.dcm"),)),
        Wild("enhanced_ct", CT, SEGMENTED, (pydicom_data_file("eCT_Supplemental.dcm"),)),
        Wild("enhanced_ct_file.dcm", CT, SEGMENTED, (pydicom_data_file("eCT_Supplemental.dcm"),), as_file=True),
        Wild(
            "ct_series_with_a_gap",
            CT,
            "is off the series' evenly spaced grid",
            tuple((DICOMDIR_SERIES / "77654033" / "CT2").iterdir()),
        ),
        Wild("rt_dose", CT, "holds an RT dose, not an image series", (pd / "rtdose.dcm",)),
        Wild("rt_dose_file.dcm", CT, "is an RT dose, not an image series", (pd / "rtdose.dcm",), as_file=True),
        Wild("rt_struct", CT, "holds an RT structure set, not an image series", (pd / "rtstruct.dcm",)),
        Wild("rt_plan", CT, "holds an RT plan, not an image series", (pd / "rtplan.dcm",)),
        Wild("report", CT, "holds a structured report (SR), not an image series", (pd / "test-SR.dcm",)),
        Wild("seg", CT, "holds a DICOM SEG (a segmentation), not an image series", (pydicom_data_file("liver.dcm"),)),
        Wild("ecg", CT, "holds a waveform (ECG or another signal), not an image series", (pd / "waveform_ecg.dcm",)),
        Wild("ultrasound", CT, "holds an ultrasound image, not an image series", (pd / "ExplVR_BigEnd.dcm",)),
        Wild("screenshot", CT, "holds a secondary capture (a picture, not a scan)", (pd / "SC_rgb_jpeg_dcmtk.dcm",)),
        Wild(
            "ct_slice_file.dcm",
            CT,
            "is a CT image slice; pass the folder that holds its series",
            (pd / "CT_small.dcm",),
            as_file=True,
        ),
        Wild("mr_given_to_ct", CT, f"is an MR scan; bundle {CT} segments CT", (pd / "MR_small.dcm",)),
        Wild(
            "truncated_mr",
            CT,
            "cannot read the DICOM series: it holds an MR image slice whose pixel data",
            (pd / "MR_truncated.dcm",),
        ),
        Wild("cifti.dconn.nii", CT, "is a CIFTI-2 file", (NIBABEL_FILES / "row_major.dconn.nii",), as_file=True),
        Wild(
            "functional.nii",
            CT,
            "has shape 17 x 21 x 3 x 20; expected a 3D scan",
            (NIBABEL_FILES / "functional.nii",),
            as_file=True,
        ),
        Wild(
            "nifti2_4d.nii.gz",
            CT,
            "has shape 32 x 20 x 12 x 2; expected a 3D scan",
            (NIBABEL_FILES / "example_nifti2.nii.gz",),
            as_file=True,
        ),
        Wild("empty_folder", CT, "no DICOM series found in this folder", ()),
        *(
            Wild(f"mr_{syntax}", MR, SEGMENTED, (pd / f"MR_small_{syntax}.dcm",))
            for syntax in ("RLE", "bigendian", "jp2klossless", "jpeg_ls_lossless", "implicit")
        ),
        Wild(
            "enhanced_mr_without_positions",
            MR,
            "is an enhanced multi-frame MR image that cannot be read as one volume",
            (pydicom_data_file("emri_small.dcm"),),
        ),
        Wild("anatomical_big_endian.nii", MR, SEGMENTED, (NIBABEL_FILES / "anatomical.nii",), as_file=True),
        Wild("float_big_endian.nii", MR, SEGMENTED, (NIBABEL_FILES / "reoriented_anat_moved.nii",), as_file=True),
        Wild(
            "ct_given_to_mr",
            MR,
            f"is a CT scan; bundle {MR} segments MR",
            tuple(sorted((DICOMDIR_SERIES / "98892001" / "CT5N").iterdir())),
        ),
    ]


CASES = _cases()


def _lay_out(case: Wild, root: Path) -> Path:
    if case.as_file:
        target = root / case.name
        target.write_bytes(case.files[0].read_bytes())
        return target
    return as_folder(list(case.files), root / case.name)


@dataclass
class Batch:
    inputs: dict[str, Path]
    output: Path
    status: int
    stderr: list[str]


def _run(bundle: str, root: Path) -> Batch:
    inputs = {case.name: _lay_out(case, root / "in") for case in CASES if case.bundle == bundle}
    output = root / "out"
    command = [sys.executable, "-m", "medseg", "infer", bundle, *map(str, inputs.values()), "-o", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stderr.splitlines() if line and not line.startswith("segmenting")]
    return Batch(inputs, output, done.returncode, lines)


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Batch]:
    return {bundle: _run(bundle, tmp_path_factory.mktemp(bundle)) for bundle in (CT, MR)}


def test_every_line_is_an_error_or_a_warning(batches):
    for batch in batches.values():
        assert batch.status == 1  # some inputs were refused
        assert all(line.startswith(("error: ", "warning: ")) for line in batch.stderr), batch.stderr
        assert not any("Traceback" in line or "unexpected" in line for line in batch.stderr)


def _reference(source: Path) -> sitk.Image:
    """SimpleITK's own reading of a source: a NIfTI or DICOM file, or a DICOM folder's one series."""
    if source.is_file():
        return sitk.ReadImage(str(source))
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(source))
    if len(files) == 1:
        return sitk.ReadImage(files[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader.Execute()


def _assert_same_grid(mask: sitk.Image, source: sitk.Image) -> None:
    assert mask.GetSize() == source.GetSize()
    np.testing.assert_allclose(mask.GetSpacing(), source.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(mask.GetOrigin(), source.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(mask.GetDirection(), source.GetDirection(), atol=1e-5)


@pytest.mark.parametrize("case", [c for c in CASES if c.expect is SEGMENTED], ids=lambda c: c.name)
def test_segmented_on_the_source_grid(batches, case):
    batch = batches[case.bundle]
    source = batch.inputs[case.name]
    stem = case.name.removesuffix(".dcm").removesuffix(".nii")
    mask_path = batch.output / f"{stem}_seg.nii.gz"
    assert mask_path.is_file(), batch.stderr
    assert not any(line.startswith(f"error: {source}:") for line in batch.stderr)
    mask = nib.load(mask_path)
    assert mask.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(mask.get_qform(), mask.get_sform())
    _assert_same_grid(sitk.ReadImage(str(mask_path)), _reference(source))
    stats = json.loads((batch.output / f"{stem}_stats.json").read_text())
    assert (batch.output / f"{stem}.seg.nrrd").is_file()
    assert stats["modality"] == (None if case.name.endswith(".nii") else ("CT" if case.bundle == CT else "MR"))


@pytest.mark.parametrize("case", [c for c in CASES if c.expect is not SEGMENTED], ids=lambda c: c.name)
def test_refused_in_one_line_naming_it(batches, case):
    batch = batches[case.bundle]
    source = batch.inputs[case.name]
    mine = [line for line in batch.stderr if line.startswith(f"error: {source}:")]
    assert len(mine) == 1, batch.stderr
    assert case.expect in mine[0]
    stem = case.name.removesuffix(".dcm").removesuffix(".gz").removesuffix(".nii")
    assert not [path.name for path in batch.output.iterdir() if path.name.startswith(f"{stem}_")]


def test_enhanced_ct_frames_lie_where_the_mask_grid_puts_them(batches):
    """Independent of SimpleITK: each frame's own ImagePositionPatient is a slice origin of the mask."""
    mask = nib.load(batches[CT].output / "enhanced_ct_seg.nii.gz")
    header = pydicom.dcmread(pydicom_data_file("eCT_Supplemental.dcm"), stop_before_pixels=True)
    positions = [
        frame.PlanePositionSequence[0].ImagePositionPatient for frame in header.PerFrameFunctionalGroupsSequence
    ]
    origins_lps = [(mask.affine @ [0, 0, k, 1])[:3] * [-1, -1, 1] for k in range(mask.shape[2])]
    np.testing.assert_allclose(
        sorted(map(list, positions), key=lambda p: p[2]), sorted(map(list, origins_lps), key=lambda p: p[2]), atol=1e-3
    )
    spacing = header.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    np.testing.assert_allclose(nib.affines.voxel_sizes(mask.affine)[:2], [spacing[1], spacing[0]], atol=1e-5)


def test_an_optional_output_that_fails_costs_only_itself(batches):
    """A CT slice without a Frame of Reference UID: no DICOM SEG, one warning, every other output."""
    batch = batches[CT]
    source = batch.inputs["ct_slice_no_frame_of_reference"]
    name = "ct_slice_no_frame_of_reference"
    warnings = [line for line in batch.stderr if line.startswith(f"warning: {source}: DICOM SEG skipped")]
    assert len(warnings) == 1 and "Frame Of Reference UID" in warnings[0]
    assert not (batch.output / f"{name}_seg.dcm").exists()
    for suffix in ("_seg.nii.gz", ".seg.nrrd", "_stats.json", "_overlay.png"):
        assert (batch.output / f"{name}{suffix}").is_file()
    stats = json.loads((batch.output / f"{name}_stats.json").read_text())
    assert any(w.startswith("DICOM SEG skipped") for w in stats["warnings"])
    assert (batch.output / "ct_slice_seg.dcm").is_file()  # the same kind of slice with a frame of reference gets one


def test_the_run_table_and_report_cover_the_segmented_inputs(batches):
    batch = batches[CT]
    table = (batch.output / "stats.csv").read_text()
    report = (batch.output / "report.html").read_text()
    for case in (c for c in CASES if c.bundle == CT and c.expect is SEGMENTED):
        stem = case.name.removesuffix(".dcm")
        assert f"\n{stem}," in table and f'<h2 id="case-{stem}">{stem}</h2>' in report
    assert "a 3D model sees no context" in table and "warning: has a single slice" in report
    assert "modality: CT" in report and "modality: not recorded" not in report  # every CT input here is DICOM


def test_ignore_modality_runs_it_and_records_the_scan_modality(tmp_path, random_weights):
    series = as_folder([PYDICOM_FILES / "MR_small.dcm"], tmp_path / "mr")
    report = segment_report(
        find_bundle(CT), [series], tmp_path / "out", weights=random_weights, device="cpu", ignore_modality=True
    )
    assert [path.name for path in report.written] == ["mr_seg.nii.gz"]
    assert json.loads((tmp_path / "out" / "mr_stats.json").read_text())["modality"] == "MR"
