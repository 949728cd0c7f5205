import json
import os

import pytest

from medseg.data.discover import discover
from medseg.errors import MedsegError

from . import datasets


@pytest.fixture(scope="module")
def cases(small_ct):
    return datasets.tiny_cases(small_ct)


def test_msd_single_channel(small_ct):
    dataset = discover(small_ct)
    assert dataset.layout == "msd" and dataset.channels == 1
    assert dataset.labels == {0: "background", 1: "liver", 2: "tumour"}
    assert len(dataset.training) == 6 and len(dataset.labelled_test) == 2
    assert all(case.image[0].is_absolute() and case.label.is_file() for case in dataset.training)


def test_msd_four_channels(tmp_path, cases):
    dataset = discover(datasets.msd(tmp_path, cases, channels=4))
    assert dataset.channels == 4 and len(dataset.training) == 4


def test_nnunet_two_channels(tmp_path, cases):
    dataset = discover(datasets.nnunet(tmp_path, cases, channels=2))
    assert dataset.layout == "nnunet" and dataset.channels == 2
    assert dataset.labels == {0: "background", 1: "liver", 2: "tumour"}
    first = dataset.training[0]
    assert first.id == "case0"
    assert [p.name for p in first.image] == ["case0_0000.nii.gz", "case0_0001.nii.gz"]
    assert first.label.name == "case0.nii.gz"
    assert first.as_dict()["image"] == [str(p) for p in first.image]


@pytest.mark.parametrize("subfolders", [False, True])
def test_folder_pairs(tmp_path, cases, subfolders):
    dataset = discover(datasets.folder_pairs(tmp_path, cases, subfolders=subfolders))
    assert dataset.layout == "folder" and not dataset.orphans
    assert [case.id for case in dataset.training] == ["case0", "case1", "case2", "case3"]


def test_folder_reports_unpaired_files(tmp_path, cases):
    root = datasets.folder_pairs(tmp_path, cases)
    (root / "case1_seg.nii.gz").unlink()
    (root / "extra_seg.nii.gz").write_bytes(b"")
    dataset = discover(root)
    assert sorted(p.name for p in dataset.orphans) == ["case1.nii.gz", "extra_seg.nii.gz"]


def test_csv(tmp_path, cases):
    dataset = discover(datasets.csv_table(tmp_path, cases))
    assert dataset.layout == "csv" and len(dataset.training) == 4
    assert dataset.training[0].label == (tmp_path / "data" / "case0_seg.nii.gz").resolve()
    assert discover(tmp_path).layout == "csv"  # the only CSV in the folder


@pytest.mark.parametrize(
    ("entry", "problem"),
    [("/etc/passwd", "absolute path"), ("../outside.nii.gz", "outside the dataset"), ("", "expected a file path")],
)
def test_paths_that_escape_are_refused(tmp_path, entry, problem):
    description = {"labels": {"0": "background"}, "training": [{"image": entry, "label": "./l.nii.gz"}]}
    (tmp_path / "dataset.json").write_text(json.dumps(description))
    with pytest.raises(MedsegError, match=problem) as raised:
        discover(tmp_path)
    assert str(tmp_path / "dataset.json") in str(raised.value)


def test_symlink_out_of_the_dataset_is_refused(tmp_path, cases):
    outside = datasets.folder_pairs(tmp_path / "outside", cases[:1])
    root = datasets.folder_pairs(tmp_path / "data", cases[1:2])
    os.symlink(outside / "case0.nii.gz", root / "linked.nii.gz")
    os.symlink(outside / "case0_seg.nii.gz", root / "linked_seg.nii.gz")
    with pytest.raises(MedsegError, match="outside the dataset"):
        discover(root)


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{not json", "cannot read dataset description"), ("[]", "must be a JSON object"), ('{"labels": {}}', "MSD")],
)
def test_broken_dataset_json(tmp_path, content, problem):
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(MedsegError, match=problem):
        discover(tmp_path)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(MedsegError, match="no cases found"):
        discover(tmp_path)
    with pytest.raises(MedsegError, match="dataset folder not found"):
        discover(tmp_path / "nowhere")


def test_case_dicts_name_one_image_or_a_list_and_a_label_only_when_there_is_one(tmp_path):
    from medseg.data.discover import Case

    one, two = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    assert Case("a", (one,)).as_dict() == {"image": str(one)}
    assert Case("a", (one,), two).as_dict() == {"image": str(one), "label": str(two)}
    assert Case("a", (one, two)).as_dict() == {"image": [str(one), str(two)]}


def test_nnunet_training_labels_are_expected_test_labels_optional(tmp_path, cases):
    root = datasets.nnunet(tmp_path, cases[:2], channels=2)
    (root / "labelsTr" / "case1.nii.gz").unlink()
    (root / "imagesTs").mkdir()
    (root / "labelsTs").mkdir()
    for name in ("test0_0000", "test0_0001", "test1_0000", "test1_0001"):
        (root / "imagesTs" / f"{name}.nii.gz").write_bytes((root / "imagesTr" / "case0_0000.nii.gz").read_bytes())
    (root / "labelsTs" / "test1.nii.gz").write_bytes(b"")
    dataset = discover(root)
    assert [(case.id, case.label.name) for case in dataset.training] == [
        ("case0", "case0.nii.gz"),
        ("case1", "case1.nii.gz"),
    ]
    assert [(case.id, case.label and case.label.name) for case in dataset.test] == [
        ("test0", None),
        ("test1", "test1.nii.gz"),
    ]


def test_only_nifti_files_count(tmp_path, cases):
    root = datasets.folder_pairs(tmp_path, cases[:2])
    (root / "notes.txt").write_text("scanned in 2021")
    (root / "extra.nii.gz").mkdir()  # a folder, not a file
    (root / "images").mkdir()  # images/ without labels/ is not that layout
    dataset = discover(root)
    assert [case.id for case in dataset.training] == ["case0", "case1"] and not dataset.orphans


def test_csv_with_one_row_and_an_unlabelled_one(tmp_path, cases):
    datasets.folder_pairs(tmp_path / "data", cases[:2])
    (tmp_path / "cases.csv").write_text("image,label\ndata/case0.nii.gz,data/case0_seg.nii.gz\n")
    assert [case.id for case in discover(tmp_path / "cases.csv").training] == ["case0"]
    (tmp_path / "cases.csv").write_text("image,label\ndata/case0.nii.gz,data/case0_seg.nii.gz\ndata/case1.nii.gz,\n")
    dataset = discover(tmp_path / "cases.csv")
    assert [c.id for c in dataset.training] == ["case0"] and [(c.id, c.label) for c in dataset.test] == [
        ("case1", None)
    ]


@pytest.mark.parametrize("content", ["image,label\n", "image\ndata/case0.nii.gz\n"], ids=["no-rows", "no-label-column"])
def test_csv_without_rows_or_label_column(tmp_path, content):
    (tmp_path / "cases.csv").write_text(content)
    with pytest.raises(MedsegError, match="CSV needs a header with 'image' and 'label' columns and at least one row"):
        discover(tmp_path / "cases.csv")


def test_a_file_that_is_not_a_csv_is_not_a_dataset(tmp_path):
    (tmp_path / "scan.nii.gz").write_bytes(b"")
    with pytest.raises(MedsegError, match="dataset folder not found"):
        discover(tmp_path / "scan.nii.gz")
