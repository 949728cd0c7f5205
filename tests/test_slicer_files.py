import json
from importlib import resources

import jsonschema
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

from medseg.bundles import find_bundle, list_bundles
from medseg.io.color_table import write_color_table
from medseg.io.nifti import write_nifti
from medseg.io.seg_nrrd import write_seg_nrrd

from .shapes import grid_affine, sphere

CENTRE = (-20.5, 31.0, -7.25)


@pytest.fixture(scope="module")
def oblique_mask():
    """A liver with a tumour on an oblique, flipped, anisotropic grid: ``(mask, affine)``."""
    shape = (30, 26, 14)
    affine = grid_affine((1.5, 1.7, 3.0), shape, CENTRE, degrees=(12, -20, 35), flip=(-1, 1, -1))
    mask = np.zeros(shape, np.uint8)
    mask[sphere(affine, shape, CENTRE, 16)] = 1
    mask[sphere(affine, shape, np.add(CENTRE, (4, 0, 0)), 6)] = 2
    return mask, affine


@pytest.fixture(scope="module")
def seg_file(tmp_path_factory, oblique_mask):
    mask, affine = oblique_mask
    folder = tmp_path_factory.mktemp("seg")
    write_nifti(folder / "case_seg.nii.gz", mask, affine)
    return write_seg_nrrd(folder / "case.seg.nrrd", mask, affine, find_bundle("ct_liver_tumour_3d").labels)


def test_every_bundle_metadata_follows_the_schema():
    schema = json.loads(resources.files("medseg").joinpath("schemas/bundle_metadata.schema.json").read_text())
    for bundle in list_bundles():
        jsonschema.validate(bundle.metadata, schema)
    broken = dict(find_bundle("ct_liver_tumour_3d").metadata)
    broken["network_data_format"] = json.loads(json.dumps(broken["network_data_format"]))
    broken["network_data_format"]["outputs"]["pred"]["channel_terminology"]["1"]["type"] = ["SCT", "10200004"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_labels_carry_snomed_terms():
    liver, tumour = find_bundle("ct_liver_tumour_3d").labels[1:]
    assert liver.terminology.type == ("SCT", "10200004", "Liver")
    assert tumour.terminology.type == ("SCT", "108369006", "Neoplasm")
    assert tumour.terminology.anatomic_region == liver.terminology.type
    grey, white = find_bundle("mri_brain_tissue_3d").labels[1:]
    assert (grey.terminology.type[1], white.terminology.type[1]) == ("389081007", "389080008")


def test_seg_nrrd_segments_names_values_colours_terms(seg_file, oblique_mask):
    segmentation = slicerio.read_segmentation(str(seg_file))
    segments = segmentation["segments"]
    assert [(s["name"], s["labelValue"], s["layer"]) for s in segments] == [("liver", 1, 0), ("tumour", 2, 0)]
    np.testing.assert_allclose(segments[0]["color"], np.array([221, 130, 101]) / 255)
    np.testing.assert_allclose(segments[1]["color"], np.array([255, 200, 0]) / 255)
    assert segments[0]["terminology"]["type"] == ["SCT", "10200004", "Liver"]
    assert segments[1]["terminology"]["anatomicRegion"] == ["SCT", "10200004", "Liver"]
    np.testing.assert_array_equal(segmentation["voxels"], oblique_mask[0])
    for segment in segments:
        where = np.argwhere(oblique_mask[0] == segment["labelValue"])
        assert segment["extent"] == [int(v) for pair in zip(where.min(0), where.max(0), strict=True) for v in pair]


def test_seg_nrrd_geometry_is_the_nifti_in_lps(seg_file, oblique_mask):
    _, affine = oblique_mask
    _, header = nrrd.read(str(seg_file))
    assert header["space"] == "left-posterior-superior"
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    np.testing.assert_allclose(header["space directions"], lps[:3, :3].T, atol=1e-6)
    np.testing.assert_allclose(header["space origin"], lps[:3, 3], atol=1e-6)
    assert header["Segment1_Tags"].startswith("TerminologyEntry:Segmentation category and type - DICOM master list~")
    from_nrrd, from_nifti = sitk.ReadImage(str(seg_file)), sitk.ReadImage(str(seg_file.parent / "case_seg.nii.gz"))
    assert from_nrrd.GetSize() == from_nifti.GetSize()
    np.testing.assert_allclose(from_nrrd.GetOrigin(), from_nifti.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(from_nrrd.GetSpacing(), from_nifti.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(from_nrrd.GetDirection(), from_nifti.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(from_nrrd), sitk.GetArrayFromImage(from_nifti))


def test_every_label_is_a_segment_even_when_absent(tmp_path):
    labels = find_bundle("mri_brain_tumour_3d").labels
    mask = np.zeros((6, 5, 4), np.uint8)
    mask[1:3, 2, 1] = 4
    path = write_seg_nrrd(tmp_path / "x.seg.nrrd", mask, np.eye(4), labels)
    segments = slicerio.read_segmentation(str(path))["segments"]
    assert [(s["labelValue"], s["name"]) for s in segments] == [
        (1, "necrotic tumour core"),
        (2, "peritumoral oedema"),
        (4, "enhancing tumour"),
    ]
    assert segments[0]["extent"] == [0, -1, 0, -1, 0, -1]
    assert segments[2]["extent"] == [1, 2, 2, 2, 1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["x.seg.nrrd"]


def test_colour_table(tmp_path):
    path = write_color_table(tmp_path / "b_colors.ctbl", find_bundle("mri_brain_tissue_3d").labels)
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["0 background 0 0 0 0", "1 grey_matter 170 170 170 255", "2 white_matter 250 250 225 255"]
