"""The cohort summary: cohort.csv's rows, and cohort.html's plots, QC list and links, rendered in headless Chromium."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from medseg.bundles import find_bundle
from medseg.inference.cohort_summary import write_cohort_summary
from medseg.inference.manifest import Entry, Manifest
from medseg.inference.outputs import CaseRecord, write_case_outputs, write_run_outputs
from medseg.io.nifti import write_nifti
from medseg.io.paths import CaseFiles, ScanInput

from .shapes import grid_affine, sphere

CENTRE = np.array([0.0, 0.0, 0.0])
# case -> (liver radius mm, tumour radius mm or 0): a normal liver, one far too large, an empty mask
CASES = {"normal": (70, 10), "huge": (130, 0), "empty": (0, 0)}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """An output folder of three segmented cases and one failed scan, with its manifest and summary."""
    folder = tmp_path_factory.mktemp("cohort")
    bundle = find_bundle("ct_liver_tumour_3d")
    shape = (64, 64, 48)
    affine = grid_affine((5.0, 5.0, 6.0), shape, CENTRE)
    manifest = Manifest(folder)
    for name, (liver_mm, tumour_mm) in CASES.items():
        liver = sphere(affine, shape, CENTRE, liver_mm) if liver_mm else np.zeros(shape, bool)
        tumour = sphere(affine, shape, CENTRE + 20, tumour_mm) if tumour_mm else np.zeros(shape, bool)
        mask = (liver.astype(np.uint8) + (tumour & liver)).astype(np.uint8)
        noise = np.random.default_rng(len(name)).normal(0, 15, shape)
        body = sphere(affine, shape, CENTRE, 145)
        scan = (np.where(liver, 100, np.where(body, 40, -1000)) + noise).astype(np.int16)
        write_nifti(folder / f"{name}.nii.gz", scan, affine)
        files = CaseFiles(folder, name)
        write_nifti(files.mask, mask, affine)
        write_case_outputs(
            bundle, ScanInput(folder / f"{name}.nii.gz", folder / f"{name}.nii.gz"), files, CaseRecord({})
        )
        manifest.append([Entry(str(folder / f"{name}.nii.gz"), name, "1:1", "run", "done", (files.mask.name,))])
    manifest.append([Entry(str(folder / "bad.nii.gz"), "bad", "1:1", "run", "failed", error="not a NIfTI file")])
    write_run_outputs(bundle, folder)
    return folder, write_cohort_summary(bundle, folder, manifest)


def test_cohort_csv_has_a_row_per_scan_and_label_and_one_per_failure(cohort):
    folder, _ = cohort
    rows = list(csv.DictReader((folder / "cohort.csv").open()))
    assert [(row["case"], row["state"], row["label"]) for row in rows] == [
        ("bad", "failed", ""),
        ("empty", "done", "liver"),
        ("empty", "done", "tumour"),
        ("huge", "done", "liver"),
        ("huge", "done", "tumour"),
        ("normal", "done", "liver"),
        ("normal", "done", "tumour"),
    ]
    by_case = {(row["case"], row["label"]): row for row in rows}
    assert by_case["bad", ""]["error"] == "not a NIfTI file"
    assert float(by_case["normal", "liver"]["volume_ml"]) == pytest.approx(4 / 3 * np.pi * 70**3 / 1000, rel=0.1)
    assert by_case["normal", "tumour"]["lesion_count"] == "1"
    assert float(by_case["normal", "tumour"]["burden_percent"]) > 0
    assert (by_case["normal", "liver"]["in_training_range"], by_case["huge", "liver"]["in_training_range"]) == (
        "yes",
        "no",
    )
    assert "the mask is empty" in by_case["empty", "liver"]["warnings"]


def test_cohort_page_renders_its_plots_qc_list_and_links_in_headless_chromium(cohort, browser):
    folder, page = cohort
    browser.open(page.as_uri(), "document.readyState === 'complete'")
    plots = browser.evaluate(
        "[...document.querySelectorAll('svg.plot')].map(svg => ({label: svg.getAttribute('aria-label'), "
        "width: svg.getBoundingClientRect().width, bars: [...svg.querySelectorAll('rect.bar')]"
        ".map(bar => bar.getBoundingClientRect().height)}))"
    )
    assert [plot["label"] for plot in plots] == ["liver volume", "tumour volume", "tumour lesion count"]
    for plot in plots:
        assert plot["width"] > 100 and max(plot["bars"]) > 20, plot  # drawn, with a visible tallest bar
    qc = browser.evaluate("[...document.querySelectorAll('#qc tr')].slice(1).map(row => row.innerText)")
    assert "bad\tfailed: not a NIfTI file" in qc
    assert "empty\tempty mask" in qc
    assert any(row.startswith("huge\tliver") and "outside" in row for row in qc), qc
    assert not any(row.startswith("normal") for row in qc), qc
    links = browser.evaluate("[...document.querySelectorAll('#qc a')].map(a => a.getAttribute('href'))")
    assert "report.html#case-huge" in links
    browser.open((folder / "report.html").as_uri() + "#case-huge", "document.readyState === 'complete'")
    assert browser.evaluate("document.getElementById('case-huge').textContent") == "huge"
    assert browser.evaluate("document.querySelectorAll('script[src], link[href]').length") == 0
