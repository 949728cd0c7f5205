import json

import pytest

from medseg.data.discover import Case
from medseg.data.splits import fold_cases, kfold_splits
from medseg.errors import MedsegError


def test_kfold_partitions_every_case_once():
    ids = [f"c{i:02d}" for i in range(13)]
    splits = kfold_splits(ids, folds=5)
    assert len(splits) == 5
    assert sorted(i for s in splits for i in s["val"]) == ids
    for split in splits:
        assert sorted(split["train"] + split["val"]) == ids
        assert len(split["val"]) in (2, 3)
    assert kfold_splits(list(reversed(ids)), folds=5) == splits  # deterministic, order-independent


def test_fewer_cases_than_folds():
    assert len(kfold_splits(["a", "b", "c"], folds=5)) == 3


def cases(n):
    return [Case(f"c{i}", (f"/data/c{i}.nii.gz",), f"/data/c{i}_seg.nii.gz") for i in range(n)]


def test_written_beside_the_run_and_reused_from_the_dataset(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    train, val, path = fold_cases(cases(10), 1, dataset_dir=data, output_dir=run)
    assert path == run / "splits.json"
    assert [c.id for c in val] == json.loads(path.read_text())[1]["val"]
    (data / "splits.json").write_text(json.dumps([{"train": ["c0", "c1"], "val": ["c2"]}]))
    train, val, path = fold_cases(cases(10), 0, dataset_dir=data, output_dir=run)
    assert path == data / "splits.json"
    assert [c.id for c in train] == ["c0", "c1"] and [c.id for c in val] == ["c2"]


def test_bad_fold_and_unknown_cases(tmp_path):
    with pytest.raises(MedsegError, match="fold 7 does not exist"):
        fold_cases(cases(6), 7, dataset_dir=tmp_path, output_dir=tmp_path / "run")
    (tmp_path / "splits.json").write_text(json.dumps([{"train": ["c0", "zz"], "val": ["c1"]}]))
    with pytest.raises(MedsegError, match="not in the dataset: zz"):
        fold_cases(cases(6), 0, dataset_dir=tmp_path, output_dir=tmp_path / "run")
    (tmp_path / "splits.json").write_text("{}")
    with pytest.raises(MedsegError, match="cannot read splits"):
        fold_cases(cases(6), 0, dataset_dir=tmp_path, output_dir=tmp_path / "run")


def test_the_default_split_is_pinned():
    """Runs made with one medseg version must find the same folds in the next: 5 folds, seed 12345."""
    ids = [f"c{i}" for i in range(7)]
    assert [split["val"] for split in kfold_splits(ids)] == [["c4", "c6"], ["c3", "c5"], ["c0"], ["c2"], ["c1"]]


def test_two_cases_are_enough_and_one_is_not():
    assert kfold_splits(["a", "b"]) == [{"train": ["b"], "val": ["a"]}, {"train": ["a"], "val": ["b"]}]
    with pytest.raises(MedsegError, match="cross-validation needs at least 2 labelled cases, found 1"):
        kfold_splits(["a"])


def test_the_last_fold_exists_and_the_next_does_not(tmp_path):
    (tmp_path / "splits.json").write_text(json.dumps([{"train": ["c0"], "val": ["c1"]}] * 3))
    assert [c.id for c in fold_cases(cases(2), 2, dataset_dir=tmp_path, output_dir=tmp_path)[1]] == ["c1"]
    with pytest.raises(MedsegError, match=r"fold 3 does not exist; .*splits.json has folds 0 to 2"):
        fold_cases(cases(2), 3, dataset_dir=tmp_path, output_dir=tmp_path)


@pytest.mark.parametrize("entry", [{"train": ["c0"]}, {"val": ["c0"]}, {"train": "c0", "val": ["c1"]}, ["c0"]])
def test_each_fold_needs_train_and_val_lists(tmp_path, entry):
    (tmp_path / "splits.json").write_text(json.dumps([{"train": ["c0"], "val": ["c1"]}, entry]))
    with pytest.raises(MedsegError, match=r"cannot read splits \(expected a list of"):
        fold_cases(cases(2), 0, dataset_dir=tmp_path, output_dir=tmp_path)
