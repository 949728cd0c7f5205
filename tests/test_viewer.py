"""The report's slice viewer: its data (small, numbered as stored) and the page, driven in headless Chromium."""

import base64
import json
import re
import time
import zlib

import numpy as np
import pytest
from scipy import ndimage

from medseg.bundles import find_bundle
from medseg.inference.outputs import CaseRecord, write_case_outputs, write_run_outputs
from medseg.io.nifti import write_nifti
from medseg.io.paths import CaseFiles, ScanInput
from medseg.io.viewer_data import block_max, block_mean, shrink_factors, viewer_volume

from .shapes import grid_affine, sphere

CENTRE = np.array([5.0, -12.0, 30.0])
TUMOUR = np.add(CENTRE, (18, 6, 4))
MAX_PAGE_MB = 4.0  # the viewer's data for a 512 x 512 x 600 CT


def _unpacked(data, key):
    return np.frombuffer(zlib.decompress(base64.b64decode(data[key])), np.uint8).reshape(data["shape"])


def test_blocks_shrink_by_whole_factors_mean_and_highest_label():
    assert shrink_factors((512, 512, 600)) == (2, 2, 3)
    assert shrink_factors((256, 40, 257)) == (1, 1, 2)
    volume = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    mean = block_mean(volume, (2, 2, 3))
    assert mean.shape == (3, 1, 1)
    np.testing.assert_allclose(mean[:, 0, 0], [volume[0:2].mean(), volume[2:4].mean(), volume[4:].mean()])
    labels = np.zeros((5, 2, 3), np.uint8)
    labels[4, 1, 2], labels[0, 0, 0], labels[1, 1, 1] = 1, 2, 1
    assert block_max(labels, (2, 2, 3))[:, 0, 0].tolist() == [2, 0, 1], "a one-voxel lesion still shows"


def test_viewer_data_is_ras_ordered_and_numbered_as_stored():
    shape = (30, 20, 10)
    affine = grid_affine((1.0, 1.0, 3.0), shape, CENTRE, flip=(-1, -1, 1))  # stored LPS
    scan = np.full(shape, -1000.0, np.float32)
    scan[2, 3, 4] = 1000.0
    mask = np.zeros(shape, np.uint8)
    mask[2, 3, 4] = 2
    data = viewer_volume(
        scan, mask, affine, labels=find_bundle("ct_liver_tumour_3d").labels, modality="CT", focus=(2, 3, 4)
    )
    assert data["shape"] == [30, 20, 10] and data["factors"] == [1, 1, 1] and data["range"] == [-1000.0, 1000.0]
    assert data["stored"] == [
        {"length": 30, "reversed": True},
        {"length": 20, "reversed": True},
        {"length": 10, "reversed": False},
    ]
    assert data["start"] == [27, 16, 4], "x and y run backwards in RAS order"
    assert _unpacked(data, "mask")[27, 16, 4] == 2 and _unpacked(data, "image")[27, 16, 4] == 255
    assert [label["name"] for label in data["labels"]] == ["liver", "tumour"]
    assert data["window"] == [40.0, 400.0]


@pytest.mark.slow
def test_viewer_data_of_a_512_x_512_x_600_ct_stays_small():
    """A synthetic CT: air around a body ellipse with a liver, 25 HU of noise, 0.7 x 0.7 x 1 mm."""
    x, y = np.ogrid[:512, :512]
    body = ((x - 256) / 230) ** 2 + ((y - 256) / 180) ** 2 < 1
    liver = ((x - 200) / 90) ** 2 + ((y - 230) / 70) ** 2 < 1
    plane = np.select([liver, body], [110.0, 40.0], -1000.0).astype(np.float32)
    scan = np.tile(plane[..., None], (1, 1, 600))
    rng = np.random.default_rng(0)
    for first in range(0, 600, 60):  # fresh noise for every slab: nothing repeats that zlib could find
        scan[..., first : first + 60] += rng.standard_normal((512, 512, 60), np.float32) * 25 * body[..., None]
    mask = np.broadcast_to(liver[..., None], scan.shape).astype(np.uint8)
    started = time.perf_counter()
    data = viewer_volume(
        scan,
        mask,
        np.diag([0.7, 0.7, 1.0, 1.0]),
        labels=find_bundle("ct_liver_tumour_3d").labels,
        modality="CT",
        focus=(200, 230, 300),
    )
    seconds = time.perf_counter() - started
    size_mb = len(json.dumps(data)) / 1e6
    print(f"viewer data of a 512 x 512 x 600 CT: {size_mb:.2f} MB in {seconds:.1f} s")
    assert data["shape"] == [256, 256, 200]
    assert size_mb < MAX_PAGE_MB


def _write_case(folder):
    """A CT case stored LPS with 300 thin slices (the viewer shows them in pairs): a liver (110 HU) holding a
    tumour (45 HU); its outputs and the tumour's centre voxel."""
    shape, spacing = (60, 60, 300), (1.8, 1.8, 0.4)
    affine = grid_affine(spacing, shape, CENTRE, flip=(-1, -1, 1))
    liver, tumour = sphere(affine, shape, CENTRE, 40), sphere(affine, shape, TUMOUR, 9)
    scan = np.full(shape, -90, np.int16)
    scan[liver], scan[tumour] = 110, 45
    mask = np.zeros(shape, np.uint8)
    mask[liver], mask[tumour & liver] = 1, 2
    bundle = find_bundle("ct_liver_tumour_3d")
    write_nifti(folder / "scan.nii.gz", scan, affine)
    files = CaseFiles(folder, "scan")
    write_nifti(files.mask, mask, affine)
    write_case_outputs(bundle, ScanInput(folder / "scan.nii.gz", folder / "scan.nii.gz"), files, CaseRecord({}))
    write_run_outputs(bundle, folder)
    return folder / "report.html", np.rint(ndimage.center_of_mass(mask == 2)).astype(int)


AXIAL = ".medseg-view[data-view=axial] canvas"


def _caption(browser, view):
    return browser.evaluate(f"document.querySelector('.medseg-view[data-view={view}] figcaption').textContent")


def test_viewer_scrolls_toggles_labels_and_windows_in_headless_chromium(tmp_path, browser):
    page, tumour = _write_case(tmp_path)
    browser.open(page.as_uri(), "document.querySelector('.medseg-viewer')?.dataset.ready")
    first, last = json.loads((tmp_path / "scan_stats.json").read_text())["lesions"][0]["axial_slices"]
    low, high = map(int, re.fullmatch(r"axial, slices (\d+)-(\d+)", _caption(browser, "axial")).groups())
    assert first < low == tumour[2] - tumour[2] % 2 and high == low + 1 < last, "at the lesion, as the table numbers"
    assert _caption(browser, "coronal") == f"coronal, slice {tumour[1]}"
    assert _caption(browser, "sagittal") == f"sagittal, slice {tumour[0]}", "x runs backwards in RAS order"
    shown = browser.screenshot(AXIAL)

    browser.wheel(AXIAL, 3)
    assert _caption(browser, "axial") == f"axial, slices {low + 6}-{high + 6}"
    assert np.abs(browser.screenshot(AXIAL).astype(int) - shown).max() > 50, "another slice of the tumour"
    browser.wheel(AXIAL, -3)
    np.testing.assert_array_equal(browser.screenshot(AXIAL), shown)

    browser.click("input[data-label='2']")  # hide the tumour
    changed = np.abs(browser.screenshot(AXIAL).astype(int) - shown).max(axis=2) > 30
    rows, columns = np.argwhere(changed).mean(axis=0) / changed.shape
    assert changed.mean() > 0.005 and rows < 0.5 and columns < 0.5, "the tumour (right, anterior) alone changed"
    browser.click("input[data-label='2']")
    np.testing.assert_array_equal(browser.screenshot(AXIAL), shown)

    browser.click(AXIAL, at=(20.5 / 60, 20.5 / 60))  # the middle of pixel (20, 20): stored voxels x = y = 20
    assert [_caption(browser, view) for view in ("coronal", "sagittal")] == ["coronal, slice 20", "sagittal, slice 20"]

    browser.evaluate(
        "(() => { const s = document.querySelector('input[data-window=level]'); s.value = 400; "
        "s.dispatchEvent(new Event('input')); })()"
    )
    assert browser.screenshot(AXIAL).mean() < shown.mean() - 20, "a higher level shows the same tissue darker"


def test_blocks_of_a_fortran_ordered_or_flipped_volume_are_the_c_ordered_ones():
    volume = np.random.default_rng(3).normal(0, 300, (9, 10, 7)).astype(np.float32)
    labels = (volume > 200).astype(np.uint8) + (volume > 500)
    for factors in [(2, 2, 1), (3, 2, 3)]:
        for stored in (np.asfortranarray, lambda v: np.asfortranarray(v)[::-1, :, ::-1][::-1, :, ::-1]):
            np.testing.assert_array_equal(block_mean(stored(volume), factors), block_mean(volume, factors))
            np.testing.assert_array_equal(block_max(stored(labels), factors), block_max(labels, factors))
    shrunk = block_mean(np.asfortranarray(volume[:8, :10, :6]), (2, 2, 3))
    expected = volume[:8, :10, :6].reshape(4, 2, 5, 2, 2, 3).astype(np.float64).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(shrunk, expected, rtol=1e-5, atol=1e-3)
