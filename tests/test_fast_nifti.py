import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medseg.io.fast_nifti import c_order, load_nifti, save_nifti
from medseg.io.nifti import write_nifti
from medseg.io.readers import FastNibabelReader


def _pair(path):
    ours, theirs = load_nifti(path), nib.load(path)
    return ours, np.asanyarray(ours.dataobj), theirs, np.asanyarray(theirs.dataobj)


@pytest.mark.parametrize(
    ("name", "array", "affine"),
    [
        ("ct.nii.gz", np.random.default_rng(0).integers(-1024, 2000, (20, 17, 9), np.int16), np.diag([-1, 1, 2.5, 1])),
        ("mr4d.nii.gz", np.random.default_rng(1).random((8, 9, 7, 4), dtype=np.float32), np.diag([2.0, 2.0, 2.0, 1])),
        ("bigendian.nii", np.random.default_rng(2).random((6, 5, 4)).astype(">f4"), np.eye(4)),
    ],
)
def test_same_voxels_and_affine_as_nibabel(tmp_path, name, array, affine):
    nib.save(nib.Nifti1Image(array, affine), tmp_path / name)
    ours, mine, theirs, expected = _pair(tmp_path / name)
    np.testing.assert_array_equal(mine, expected)
    np.testing.assert_array_equal(ours.affine, theirs.affine)


def test_scaled_integers_are_scaled(tmp_path):
    image = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.eye(4))
    image.header.set_slope_inter(0.5, -10)
    nib.save(image, tmp_path / "scaled.nii.gz")
    _, mine, _, expected = _pair(tmp_path / "scaled.nii.gz")
    np.testing.assert_allclose(mine, expected, rtol=1e-6)
    assert mine[0, 0, 1] == pytest.approx(-9.5)


def test_nifti2_falls_back_to_nibabel(tmp_path):
    nib.save(nib.Nifti2Image(np.ones((3, 3, 3), np.float32), np.eye(4)), tmp_path / "two.nii.gz")
    assert isinstance(load_nifti(tmp_path / "two.nii.gz"), nib.Nifti2Image)


def test_truncated_data_is_an_error(tmp_path):
    write_nifti(tmp_path / "scan.nii.gz", np.random.default_rng(3).random((30, 30, 30), np.float32), np.eye(4))
    raw = gzip.decompress((tmp_path / "scan.nii.gz").read_bytes())
    (tmp_path / "short.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(EOFError, match="voxel bytes"):
        load_nifti(tmp_path / "short.nii.gz")


def test_saved_files_open_everywhere(tmp_path):
    array = np.zeros((16, 12, 8), np.uint8)
    array[4:10, 3:9, 2:6] = 2
    affine = np.diag([-0.8, -0.8, 3.0, 1.0])
    save_nifti(nib.Nifti1Image(array, affine), tmp_path / "mask.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "mask.nii.gz").dataobj), array)
    read = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "mask.nii.gz")))
    np.testing.assert_array_equal(read.transpose(2, 1, 0), array)


def test_monai_reader_gives_what_nibabel_reader_gives(tmp_path, small_ct):
    from monai.transforms import LoadImage

    scan = small_ct / "imagesTs" / "liver_006.nii.gz"
    ours, theirs = LoadImage(reader=FastNibabelReader())(scan), LoadImage(reader="NibabelReader")(scan)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    np.testing.assert_array_equal(np.asarray(ours.affine), np.asarray(theirs.affine))
    assert ours.dtype == theirs.dtype
    # the voxels reach MONAI already C-ordered, so its own reordering copy is skipped
    reader = FastNibabelReader()
    voxels, _ = reader.get_data(reader.read(scan))
    assert voxels.flags.c_contiguous


def test_reader_refuses_to_gpu():
    with pytest.raises(ValueError, match="reads on the CPU"):
        FastNibabelReader(to_gpu=True)


@pytest.mark.parametrize("shape", [(37, 20, 35), (6, 5, 40, 2), (7, 3, 33, 4), (1, 1, 17), (9, 40)])
def test_c_order_copies_fortran_arrays_exactly(shape):
    array = np.asfortranarray(np.arange(np.prod(shape), dtype=np.int16).reshape(shape))
    copied = c_order(array)
    assert copied.flags.c_contiguous and copied.dtype == np.int16
    np.testing.assert_array_equal(copied, array)
    already = np.ones((3, 4, 5), np.float32)
    assert c_order(already) is already


def test_c_order_copies_flipped_views_exactly():
    # nibabel's as_closest_canonical and MONAI's orientation can hand over negative-stride views
    array = np.asfortranarray(np.arange(20 * 9 * 37, dtype=np.float32).reshape(20, 9, 37))
    for view in (array[::-1], array[:, ::-1, ::-2], array.transpose(2, 0, 1)):
        copied = c_order(view)
        assert copied.flags.c_contiguous
        np.testing.assert_array_equal(copied, view)
