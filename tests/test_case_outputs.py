"""Per-case and run-level outputs on synthetic scans with known content (no network involved)."""

import csv
import hashlib
import html
import io
import json
import re
import shutil
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

import medseg
from medseg.bundles import find_bundle
from medseg.errors import MedsegError
from medseg.inference.options import InferenceOptions
from medseg.inference.outputs import CaseRecord, focus_voxel, overlay_rows, write_case_outputs, write_run_outputs
from medseg.inference.predict import segment_report
from medseg.inference.provenance import options_record, run_provenance
from medseg.io.html_report import Pictures, report_html
from medseg.io.nifti import write_nifti
from medseg.io.overlay import Row, radiological_views, window
from medseg.io.paths import CaseFiles, ScanInput
from medseg.io.slicer_script import SlicerCase, find_cases, slicer_snippet
from medseg.io.stats import case_stats, stats_table
from medseg.lesions import measure

from .chromium import chromium_or_skip
from .shapes import grid_affine, sphere

CENTRE = np.array([5.0, -12.0, 30.0])
TUMOUR = np.add(CENTRE, (18, 6, 4))  # to the patient's right, anterior and up
WEIGHTS = b"stand-in weights: provenance hashes the bytes without loading them"
OPTIONS = InferenceOptions(overlap=0.25, tta=True)


@pytest.fixture(scope="module")
def ct_bundle_files():
    return find_bundle("ct_liver_tumour_3d")


def _phantom(affine, shape):
    """A CT-like scan with a liver (110 HU) holding one tumour (45 HU), and its mask."""
    liver, tumour = sphere(affine, shape, CENTRE, 40), sphere(affine, shape, TUMOUR, 8)
    scan = np.full(shape, -90, np.int16)
    scan[liver], scan[tumour] = 110, 45
    mask = np.zeros(shape, np.uint8)
    mask[liver], mask[tumour & liver] = 1, 2
    return scan, mask


@pytest.fixture(scope="module")
def outdir(tmp_path_factory, ct_bundle_files):
    """Two cases (RAS, and LPS-stored with coarse slices) with all per-case and run outputs written."""
    folder = tmp_path_factory.mktemp("outputs")
    (folder / "weights.pt").write_bytes(WEIGHTS)
    record = options_record(OPTIONS, {"spacing": [6.0, 6.0, 6.0]}, min_lesion_ml=0.1)
    provenance = run_provenance(ct_bundle_files, [folder / "weights.pt"], device="cpu", options=record)
    for name, flip, spacing in [("ras", (1, 1, 1), (2.0, 2.0, 2.5)), ("lps", (-1, -1, 1), (1.6, 1.8, 4.0))]:
        shape = tuple(round(110 / s) for s in spacing)
        affine = grid_affine(spacing, shape, CENTRE, flip=flip)
        scan, mask = _phantom(affine, shape)
        write_nifti(folder / "scans" / f"{name}.nii.gz", scan, affine)
        files = CaseFiles(folder, name)
        write_nifti(files.mask, mask, affine)
        scan_file = folder / "scans" / f"{name}.nii.gz"
        write_case_outputs(ct_bundle_files, ScanInput(scan_file, scan_file), files, CaseRecord(provenance))
    write_run_outputs(ct_bundle_files, folder)
    return folder


def test_case_stats(outdir):
    for name in ("ras", "lps"):
        stats = json.loads((outdir / f"{name}_stats.json").read_text())
        assert stats["scan"] == str((outdir / "scans" / f"{name}.nii.gz").resolve())
        assert (stats["bundle"], stats["modality"]) == ("ct_liver_tumour_3d", None)  # NIfTI records no modality
        liver, tumour = stats["labels"]
        assert (liver["label"], tumour["label"], tumour["lesion_count"]) == ("liver", "tumour", 1)
        assert "lesion_count" not in liver
        assert tumour["volume_ml"] == pytest.approx(4 / 3 * np.pi * 8**3 / 1000, rel=0.12)
        [lesion] = stats["lesions"]
        assert 16.0 <= lesion["longest_axial_diameter_mm"] <= 18.5
        np.testing.assert_allclose(lesion["centre_ras_mm"], TUMOUR, atol=1.0)
        [burden] = stats["burden"]
        assert (burden["organ"], burden["organ_volume_of"], burden["organ_values"]) == (
            "liver",
            "liver + tumour",
            [1, 2],
        )
        assert burden["fraction"] == pytest.approx(8**3 / 40**3, rel=0.15)


def test_stats_table(outdir):
    rows = list(csv.DictReader(io.StringIO((outdir / "stats.csv").read_text())))
    assert [(r["case"], r["label"]) for r in rows] == [  # every case in the folder, by name
        ("lps", "liver"),
        ("lps", "tumour"),
        ("ras", "liver"),
        ("ras", "tumour"),
    ]
    assert rows[0]["lesions"] == rows[0]["burden_percent"] == ""
    tumour = rows[1]
    assert tumour["lesions"] == "1" and tumour["burden_of"] == "liver + tumour"
    assert float(tumour["burden_percent"]) == pytest.approx(100 * 8**3 / 40**3, rel=0.15)
    assert float(tumour["longest_axial_diameter_mm"]) == pytest.approx(17, abs=1.5)


def test_provenance_in_case_stats(outdir, ct_bundle_files):
    ras, lps = (json.loads((outdir / f"{name}_stats.json").read_text()) for name in ("ras", "lps"))
    assert ras["geometry"] == {"size": [55, 55, 44], "channels": 1, "spacing_mm": [2.0, 2.0, 2.5], "orientation": "RAS"}
    assert lps["geometry"] == {"size": [69, 61, 28], "channels": 1, "spacing_mm": [1.6, 1.8, 4.0], "orientation": "LPS"}
    run = ras["provenance"]
    assert run == lps["provenance"], "one run, one record"
    assert datetime.now(UTC) - datetime.fromisoformat(run["date"]) < timedelta(hours=1)
    assert run["medseg_version"] == medseg.__version__ and run["torch_version"] == torch.__version__
    assert re.fullmatch(r"1\.\d+\.\d+.*", run["monai_version"])
    bundle_version = json.loads(ct_bundle_files.config("metadata").read_text())["version"]
    assert (run["bundle"], run["bundle_version"]) == ("ct_liver_tumour_3d", bundle_version)
    assert run["weights_sha256"] == [hashlib.sha256(WEIGHTS).hexdigest()]
    assert run["device"] == "cpu"
    assert run["options"]["overlap"] == 0.25 and run["options"]["tta"] is True
    assert run["options"]["overrides"] == {"spacing": [6.0, 6.0, 6.0]}


def test_provenance_in_stats_table_and_report(outdir):
    rows = list(csv.DictReader(io.StringIO((outdir / "stats.csv").read_text())))
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    assert {(r["case"], r["size"], r["spacing_mm"], r["orientation"]) for r in rows} == {
        ("ras", "55x55x44", "2.0x2.0x2.5", "RAS"),
        ("lps", "69x61x28", "1.6x1.8x4.0", "LPS"),
    }
    for row in rows:
        assert (row["weights_sha256"], row["device"], row["medseg_version"]) == (sha, "cpu", medseg.__version__)
        assert row["torch_version"] == torch.__version__ and row["bundle"] == "ct_liver_tumour_3d"
        assert json.loads(row["options"])["overlap"] == 0.25 and row["modality"] == ""
    page = (outdir / "report.html").read_text()
    assert page.count(sha) == 1, "one run: one provenance row"
    assert "69 x 61 x 28 voxels of 1.6 x 1.8 x 4 mm, orientation LPS" in page
    for cell in (medseg.__version__, torch.__version__, rows[0]["monai_version"], rows[0]["date"], rows[0]["options"]):
        assert f"<td>{html.escape(cell)}</td>" in page


def test_overlay_views_are_radiological_whatever_the_storage(outdir):
    views = {}
    for name in ("ras", "lps"):
        scan = nib.load(outdir / "scans" / f"{name}.nii.gz")
        data, affine = np.asarray(scan.dataobj), scan.affine
        mask = np.asarray(nib.load(outdir / f"{name}_seg.nii.gz").dataobj)
        [row] = overlay_rows(mask, measure(mask, affine, [1, 2], {"2": [1]}))
        views[name] = radiological_views(data, mask, affine, row.focus)
        numbers = [view.slice_number for view in views[name]]
        assert numbers == [row.focus[2], row.focus[1], row.focus[0]], f"{name}: slices numbered as stored"
    for name, (axial, coronal, sagittal) in views.items():
        assert [v.edges for v in (axial, coronal, sagittal)] == [("R", "L"), ("R", "L"), ("A", "P")], name
        for view in (axial, coronal, sagittal):
            rows, columns = np.argwhere(view.labels == 2).mean(0) / view.labels.shape
            assert rows > 0.5, f"{name} {view.name}: the tumour (anterior, superior) should be in the upper half"
            assert columns < 0.5, f"{name} {view.name}: the patient's right (sagittal: front) belongs on the left"
    assert views["lps"][0].aspect == pytest.approx(1.8 / 1.6)
    assert views["lps"][1].aspect == pytest.approx(4.0 / 1.6)
    assert views["lps"][2].aspect == pytest.approx(4.0 / 1.8)


def test_overlay_rows_go_through_the_largest_lesions_else_the_organ_the_mask_the_grid():
    affine = grid_affine((2, 2, 2), (20, 20, 20), CENTRE)
    mask = np.zeros((20, 20, 20), np.uint8)
    assert focus_voxel(mask, measure(mask, affine, [1, 2], {"2": [1]})) == (10, 10, 10)
    mask[2:6, 3:5, 4:8] = 3
    assert focus_voxel(mask, measure(mask, affine, [1, 2, 3], {"2": [1]})) == (4, 4, 6)
    mask[12:16, 12:16, 12:16] = 1
    assert focus_voxel(mask, measure(mask, affine, [1, 2, 3], {"2": [1]})) == (14, 14, 14)
    assert overlay_rows(mask, measure(mask, affine, [1, 2, 3], {"2": [1]})) == [Row("", (14, 14, 14))]
    for corner in [(0, 0, 0), (0, 19, 0), (19, 0, 0), (0, 0, 19)]:
        mask[corner] = 2
    mask[13:15, 13:15, 13:15] = 2
    captions = [row.caption for row in overlay_rows(mask, measure(mask, affine, [1, 2, 3], {"2": [1]}))]
    assert captions == ["lesion 1: 0.06 mL", "lesion 2: 0.01 mL", "lesion 3: 0.01 mL"], "the three largest of five"


def test_windows():
    assert window(np.zeros((2, 2, 2)), "CT") == (-160.0, 240.0)
    mr = np.concatenate([np.zeros(1000), np.linspace(1, 100, 100)])
    low, high = window(mr, "MR")
    assert low == pytest.approx(1.99, abs=0.01) and high == pytest.approx(99.01, abs=0.01)


def test_run_files(outdir):
    assert (outdir / "ct_liver_tumour_3d_colors.ctbl").read_text().splitlines()[2:] == [
        "0 background 0 0 0 0",
        "1 liver 221 130 101 255",
        "2 tumour 255 200 0 255",
    ]
    page = (outdir / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2
    assert page.count('<div class="medseg-viewer">') == 2 and page.count("DecompressionStream") == 1
    assert not re.search(r"(src|href)=\"(?!data:)", page), "the page must not load anything from outside"
    assert "liver + tumour" in page and ">ras<" in page and ">lps<" in page
    assert not [p.name for p in outdir.iterdir() if p.name.startswith(".")]


def _run_snippet(code):
    """Execute a Slicer snippet against a stand-in ``slicer`` module; return the calls it made."""
    calls = []
    util = types.SimpleNamespace(
        loadVolume=lambda path: calls.append(("volume", path)) or f"volume:{path}",
        loadSegmentation=lambda path: calls.append(("segmentation", path)),
        setSliceViewerLayers=lambda background, fit: calls.append(("show", background)),
    )
    sys.modules["slicer"] = types.SimpleNamespace(util=util)
    try:
        exec(compile(code, "open_in_slicer.py", "exec"), {})
    finally:
        del sys.modules["slicer"]
    return calls


def test_slicer_snippet_loads_each_scan_with_its_segmentation(outdir):
    calls = _run_snippet((outdir / "open_in_slicer.py").read_text())
    expected = []
    for name in ("lps", "ras"):  # every case in the folder, by name
        scan = str((outdir / "scans" / f"{name}.nii.gz").resolve())
        expected += [("volume", scan), ("segmentation", str(outdir / f"{name}.seg.nrrd")), ("show", f"volume:{scan}")]
    assert calls == expected


def test_find_cases_from_records_or_scan_dir(outdir, tmp_path):
    recorded = find_cases(outdir)
    assert [(c.scan.name, c.segmentation.name) for c in recorded] == [
        ("lps.nii.gz", "lps.seg.nrrd"),
        ("ras.nii.gz", "ras.seg.nrrd"),
    ]
    masks_only = tmp_path / "masks"
    masks_only.mkdir()
    shutil.copy(outdir / "ras_seg.nii.gz", masks_only)
    with pytest.raises(MedsegError, match="pass `scan_dir`"):
        find_cases(masks_only)
    [case] = find_cases(masks_only, outdir / "scans")
    assert case == SlicerCase(outdir / "scans" / "ras.nii.gz", masks_only / "ras_seg.nii.gz")
    with pytest.raises(MedsegError, match="no scan named ras"):
        find_cases(masks_only, tmp_path)


def test_a_dicom_folder_is_loaded_from_its_first_slice(tmp_path, monkeypatch):
    series = tmp_path / "patient_1"
    series.mkdir()
    found = types.SimpleNamespace(files=(str(series / "b.dcm"), str(series / "a.dcm")))
    monkeypatch.setattr("medseg.io.dicom.find_image", lambda folder: found)
    code = slicer_snippet([SlicerCase(series, tmp_path / "patient_1.seg.nrrd")])
    assert _run_snippet(code)[0] == ("volume", str(series / "b.dcm"))


def test_medseg_slicer_command(outdir):
    done = subprocess.run(
        [sys.executable, "-m", "medseg", "slicer", str(outdir)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (outdir / "open_in_slicer.py").read_text()
    assert "slicer.util.loadSegmentation" in done.stdout


def test_report_renders_in_headless_chromium(outdir, tmp_path):
    shot = tmp_path / "report.png"
    command = [chromium_or_skip(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    command += ["--window-size=1200,1600", f"--screenshot={shot}", (outdir / "report.html").as_uri()]
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    picture = np.asarray(Image.open(shot).convert("L"))
    assert picture.shape == (1600, 1200)
    assert (picture < 30).mean() > 0.05, "the embedded overlays (black backgrounds) should show on the page"


def test_snippet_paths_survive_quotes_and_backslashes(tmp_path):
    odd = tmp_path / 'it\'s a "scan" \\ here.nii.gz'
    odd.write_bytes(b"")
    calls = _run_snippet(slicer_snippet([SlicerCase(odd, tmp_path / "x.seg.nrrd")]))
    assert calls[0] == ("volume", str(odd))


def test_four_channel_mri_case(tmp_path):
    """A BraTS-style case: 4D scan (first channel drawn), labels 1, 2 and 4, no lesion rules."""
    shape = (24, 28, 20)
    affine = grid_affine((2.0, 2.0, 2.0), shape, CENTRE, flip=(-1, -1, 1))
    oedema, core = sphere(affine, shape, CENTRE, 12), sphere(affine, shape, CENTRE, 5)
    scan = np.stack([oedema * 300.0 + 100, core * 50.0, np.zeros(shape), np.ones(shape)], axis=-1)
    mask = np.zeros(shape, np.uint8)
    mask[oedema], mask[core] = 2, 4
    write_nifti(tmp_path / "brain.nii.gz", scan.astype(np.float32), affine)
    files = CaseFiles(tmp_path, "brain")
    write_nifti(files.mask, mask, affine)
    scan_input = ScanInput(tmp_path / "brain.nii.gz", tmp_path / "brain.nii.gz", "MR")
    write_case_outputs(find_bundle("mri_brain_tumour_3d"), scan_input, files, CaseRecord({}))
    stats = json.loads(files.stats.read_text())
    assert [(e["value"], e["volume_ml"] > 0) for e in stats["labels"]] == [(1, False), (2, True), (4, True)]
    assert stats["lesions"] == [] and stats["burden"] == [] and stats["modality"] == "MR"
    assert (stats["geometry"]["size"], stats["geometry"]["channels"]) == ([24, 28, 20], 4)
    assert files.overlay.stat().st_size > 10_000


def test_small_lesions_are_counted_not_listed(ct_bundle_files):
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[1:19, 1:19, 1:19] = 1
    mask[3:6, 3:6, 4:6] = 2  # 18 voxels of 8 mm3: 0.144 mL, listed
    mask[10:13, 10:12, 10:12] = 2  # 12 voxels: 0.096 mL, under 0.1 mL
    mask[15, 15, 15] = 2  # 1 voxel: 0.008 mL
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    quantities = measure(mask, affine, [1, 2], {"2": [1]})
    labels = ct_bundle_files.labels
    stats = case_stats("case", Path("case.nii.gz"), "ct_liver_tumour_3d", labels, quantities, min_lesion_ml=0.1)
    [lesion] = stats["lesions"]
    assert (lesion["volume_ml"], lesion["axial_slices"]) == (0.144, [4, 5])
    assert (stats["labels"][1]["lesion_count"], stats["labels"][1]["lesions_not_listed"]) == (1, 2)
    assert stats["labels"][1]["volume_ml"] == pytest.approx(31 * 0.008), "volumes count every voxel"
    [_, tumour] = csv.DictReader(io.StringIO(stats_table([stats])))
    assert (tumour["lesions"], tumour["lesions_not_listed"], tumour["largest_lesion_ml"]) == ("1", "2", "0.144")
    page = report_html([stats], [Pictures()], "t")
    assert "2 lesions under 0.1 mL not listed" in page and "<td>4-5</td>" in page
    everything = case_stats("case", Path("case.nii.gz"), "b", labels, quantities, min_lesion_ml=0)
    assert [x["axial_slices"] for x in everything["lesions"]] == [[4, 5], [10, 11], [15, 15]]
    assert "not listed" not in report_html([everything], [Pictures()], "t")


def test_a_negative_smallest_lesion_is_refused_before_work(ct_bundle_files, tmp_path):
    with pytest.raises(MedsegError, match="smallest lesion to list must be 0 mL or more, not -1"):
        segment_report(ct_bundle_files, [tmp_path / "scan.nii.gz"], tmp_path / "out", min_lesion_ml=-1)
    assert not (tmp_path / "out").exists()


def test_min_lesion_ml_below_zero_is_a_usage_error(tmp_path):
    command = [sys.executable, "-m", "medseg", "infer", "ct_liver_tumour_3d", str(tmp_path / "scan.nii.gz")]
    done = subprocess.run([*command, "-o", str(tmp_path), "--min-lesion-ml", "-1"], capture_output=True, text=True)
    assert done.returncode == 2 and "--min-lesion-ml" in done.stderr


def test_statistics_of_an_earlier_version_still_make_a_table_and_report(outdir):
    """A folder may hold cases written before provenance, slice spans and the smallest lesion were recorded."""
    stats = json.loads((outdir / "ras_stats.json").read_text())
    for key in ("geometry", "provenance", "min_lesion_ml"):
        del stats[key]
    for lesion in stats["lesions"]:
        del lesion["axial_slices"]
    del stats["labels"][1]["lesions_not_listed"]
    [_, tumour] = csv.DictReader(io.StringIO(stats_table([stats])))
    assert (tumour["lesions"], tumour["weights_sha256"], tumour["size"]) == ("1", "", "")
    page = report_html([stats], [Pictures()], "t")
    assert "size, spacing and orientation not recorded" in page and "<td>not recorded</td>" in page
