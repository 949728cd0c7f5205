import gzip
import io

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

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
    assert isinstance(ours.dataobj, np.ndarray)  # read here, in memory: not nibabel's lazy proxy
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
    assert voxels.flags.c_contiguous and voxels.dtype == np.int16
    # cast as they are reordered: LoadImage's own cast to float32 then has nothing to copy
    casting = FastNibabelReader(dtype="float32")
    cast, _ = casting.get_data(casting.read(scan))
    assert cast.flags.c_contiguous and cast.dtype == np.float32
    np.testing.assert_array_equal(cast, np.asarray(theirs))


def test_the_cast_while_reordering_makes_no_second_copy_of_the_stored_voxels(tmp_path):
    import tracemalloc

    from monai.transforms import LoadImage

    voxels = np.asfortranarray(np.arange(128 * 128 * 96, dtype=np.int16).reshape(128, 128, 96))
    save_nifti(nib.Nifti1Image(voxels, np.eye(4)), tmp_path / "scan.nii.gz")
    load = LoadImage(reader=FastNibabelReader(dtype="float32"), image_only=True)
    load(tmp_path / "scan.nii.gz")  # imports and caches out of the way
    tracemalloc.start()
    loaded = load(tmp_path / "scan.nii.gz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert loaded.dtype == torch.float32
    stored, cast = voxels.nbytes, voxels.size * 4
    assert peak < stored + cast + stored // 2, "the stored voxels were copied before the cast"


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
    cast = c_order(array, np.float32)
    assert cast.flags.c_contiguous and cast.dtype == np.float32
    np.testing.assert_array_equal(cast, array)


def test_c_order_copies_flipped_views_exactly():
    # nibabel's as_closest_canonical and MONAI's orientation can hand over negative-stride views
    array = np.asfortranarray(np.arange(20 * 9 * 37, dtype=np.float32).reshape(20, 9, 37))
    for view in (array[::-1], array[:, ::-1, ::-2], array.transpose(2, 0, 1)):
        copied = c_order(view)
        assert copied.flags.c_contiguous
        np.testing.assert_array_equal(copied, view)


@pytest.mark.parametrize(("slope", "intercept"), [(1.0, -1024.0), (2.0, 0.0), (0.5, 3.0)])
def test_every_scaling_nibabel_applies(tmp_path, slope, intercept):
    stored = np.arange(-30, 30, dtype=np.int16).reshape(3, 4, 5)
    image = nib.Nifti1Image(stored, np.eye(4))
    image.header.set_slope_inter(slope, intercept)
    nib.save(image, tmp_path / "scaled.nii.gz")
    _, mine, _, expected = _pair(tmp_path / "scaled.nii.gz")
    np.testing.assert_array_equal(mine, stored * np.float32(slope) + np.float32(intercept))
    np.testing.assert_array_equal(mine, expected)


def test_unscaled_floats_stay_as_stored(tmp_path):
    stored = np.random.default_rng(4).random((4, 3, 2), dtype=np.float32)
    image = nib.Nifti1Image(stored, np.eye(4))
    image.header["scl_slope"], image.header["scl_inter"] = np.nan, np.nan  # "no scaling"
    nib.save(image, tmp_path / "plain.nii")
    ours = load_nifti(tmp_path / "plain.nii")
    assert ours.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), stored)


def test_voxels_are_read_from_the_headers_offset(tmp_path):
    """Some writers leave a gap between the header and the voxels; vox_offset says where they start."""
    stored = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = nib.Nifti1Header()
    header.set_data_shape(stored.shape)
    header.set_data_dtype(np.uint8)
    header.set_data_offset(1024)
    raw = header.binaryblock + bytes(1024 - len(header.binaryblock)) + stored.tobytes(order="F")
    (tmp_path / "gap.nii.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(np.asanyarray(nib.load(tmp_path / "gap.nii.gz").dataobj), stored)
    np.testing.assert_array_equal(np.asanyarray(load_nifti(tmp_path / "gap.nii.gz").dataobj), stored)


def test_the_grid_codes_are_nibabels(tmp_path):
    affine = np.diag([-0.8, -0.8, 3.0, 1.0])
    image = nib.Nifti1Image(np.zeros((4, 3, 2), np.int16), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine @ np.diag([1.0, 1.0, 1.5, 1.0]), code=2)  # sform and qform differ
    nib.save(image, tmp_path / "codes.nii.gz")
    ours, _, theirs, _ = _pair(tmp_path / "codes.nii.gz")
    for form in ("qform_code", "sform_code"):
        assert int(ours.header[form]) == int(theirs.header[form])
    np.testing.assert_array_equal(ours.get_qform(), theirs.get_qform())
    np.testing.assert_array_equal(ours.get_sform(), theirs.get_sform())


def test_an_uncompressed_file_is_written_as_plain_nifti(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    save_nifti(nib.Nifti1Image(array, np.eye(4)), tmp_path / "mask.nii")
    assert (tmp_path / "mask.nii").read_bytes()[:4] == (348).to_bytes(4, "little")
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "mask.nii").dataobj), array)


def test_a_big_endian_header_is_read_here(tmp_path):
    """A header written on a big-endian machine starts with 348 in big-endian bytes; the voxels follow it."""
    stored = (np.arange(24).reshape(2, 3, 4) - 5).astype(">i2")
    header = nib.Nifti1Header(endianness=">")
    header.set_data_shape(stored.shape)
    header.set_data_dtype(stored.dtype)
    header.set_data_offset(352)
    (tmp_path / "big.nii").write_bytes(header.binaryblock + bytes(4) + stored.tobytes(order="F"))
    assert (tmp_path / "big.nii").read_bytes()[:4] == b"\x00\x00\x01\x5c"
    ours = load_nifti(tmp_path / "big.nii")
    assert isinstance(ours.dataobj, np.ndarray)  # not handed to nibabel's lazy loader
    np.testing.assert_array_equal(ours.dataobj, stored)


def test_the_header_is_taken_as_stored_not_repaired(tmp_path):
    """nibabel's load repairs a qfac of 0 to 1; here the header is read with check=False, as stored, and not repaired.

    The qform is then built from the stored header, so nibabel refuses the qfac of 0 with its own error.
    """
    raw = write_nifti(tmp_path / "scan.nii", np.zeros((2, 3, 4), np.int16), np.eye(4)).read_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    header["pixdim"][0] = 0.0
    (tmp_path / "qfac.nii").write_bytes(header.binaryblock + raw[len(header.binaryblock) :])
    assert nib.load(tmp_path / "qfac.nii").header["pixdim"][0] == 1.0
    with pytest.raises(nib.spatialimages.HeaderDataError, match=r"qfac \(pixdim\[0\]\) should be 1 or -1"):
        load_nifti(tmp_path / "qfac.nii")


def test_a_slope_of_one_and_no_intercept_keeps_the_stored_integers(tmp_path):
    stored = np.arange(-12, 12, dtype=np.int16).reshape(2, 3, 4)
    raw = write_nifti(tmp_path / "plain.nii", stored, np.eye(4)).read_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    header["scl_slope"], header["scl_inter"] = 1.0, 0.0  # written by some scanners: "scaled" by identity
    (tmp_path / "identity.nii").write_bytes(header.binaryblock + raw[len(header.binaryblock) :])
    stored_header = nib.Nifti1Header.from_fileobj(io.BytesIO((tmp_path / "identity.nii").read_bytes()))
    assert stored_header.get_slope_inter() == (1.0, 0.0)
    _, mine, _, expected = _pair(tmp_path / "identity.nii")
    assert mine.dtype == expected.dtype == np.int16
    np.testing.assert_array_equal(mine, stored)
