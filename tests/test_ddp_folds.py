"""Two training processes on a validation fold smaller than the ranks, and a rank that fails."""

import json

import pytest

from medseg.errors import MedsegError
from medseg.samples.datasets import write_ct_dataset
from medseg.training.distributed import Launcher
from medseg.training.run import train

from .conftest import TINY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def four_cases(tmp_path_factory):
    """A 4-case dataset: its fold 0 validates on one case."""
    root = tmp_path_factory.mktemp("data") / "four"
    return write_ct_dataset(root, cases=4, test_cases=0, seed=3, preset="small", workers=1)


def train_two_ranks(bundle, data, output, handlers=()):
    launcher = Launcher(nproc=2)
    return train(
        bundle, data, output=output, epochs=1, device="cpu", launcher=launcher, overrides=TINY, handlers=handlers
    )


def test_two_ranks_train_and_save_on_a_one_case_validation_fold(tmp_path, ct_bundle, four_cases):
    run = train_two_ranks(ct_bundle, four_cases, tmp_path / "run")
    assert len(json.loads((run.output / "run.json").read_text())["validation_cases"]) == 1
    assert run.best_weights.is_file()


def test_a_failing_rank_ends_in_one_line_naming_it(tmp_path, ct_bundle, four_cases, capfd):
    probe = {"_target_": "tests.probes.FailOnRank", "rank": 1, "message": "probe failure"}
    with pytest.raises(MedsegError) as failed:
        train_two_ranks(ct_bundle, four_cases, tmp_path / "run", handlers=[probe])
    assert str(failed.value) == "the training process of rank 1 failed: RuntimeError: probe failure"
    printed = capfd.readouterr()
    assert "Traceback" not in printed.out + printed.err
    assert " - ERROR - " not in printed.out + printed.err
