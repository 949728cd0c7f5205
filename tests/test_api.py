"""The Python API: `import medseg` gives five typed, documented functions without importing MONAI or torch;
they run the library's code, and their errors name arguments, which the command line shows as flags."""

import ast
import doctest
import importlib
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import typer

import medseg
from medseg.cli import app
from medseg.cli_flags import ARGUMENT, RENAMED, option_flags, with_flags
from medseg.errors import MedsegError
from medseg.samples.datasets import case_count
from medseg.samples.mri_variants import HELD_OUT
from medseg.weights import weights_among

from .conftest import TINY

API = ("segment", "train", "evaluate", "find_bundle", "check_dataset")
ROOT = Path(__file__).resolve().parents[1]
# Library strings that are other programs' flags (torchrun's), not medseg's.
OTHER_PROGRAMS_FLAGS = {"--nproc-per-node=", "--standalone", "--nnodes=", "--rdzv-backend=", "--rdzv-endpoint="}


@pytest.mark.parametrize("name", API)
def test_each_function_is_typed_and_has_examples(name):
    function = getattr(medseg, name)
    signature = inspect.signature(function)
    assert signature.return_annotation is not inspect.Signature.empty
    assert all(param.annotation is not inspect.Parameter.empty for param in signature.parameters.values())
    assert "\n    Examples:\n        >>> import medseg\n" in function.__doc__
    assert name in dir(medseg)


def test_import_medseg_imports_neither_torch_nor_monai():
    code = (
        "import sys, medseg; medseg.find_bundle; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'monai', 'numpy', 'typer'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'medseg' has no attribute 'segmnet'"):
        medseg.segmnet  # noqa: B018


def test_segment_a_small_scan(tmp_path, small_ct, random_weights):
    scan = small_ct / "imagesTs" / "liver_006.nii.gz"
    arguments = {"weights": random_weights, "device": "cpu", "overrides": TINY, "masks_only": True}
    report = medseg.segment("ct_liver_tumour_3d", [scan], tmp_path / "out", **arguments)
    assert report.written == [tmp_path / "out" / "liver_006_seg.nii.gz"] and not report.failed
    mask, image = nib.load(report.written[0]), nib.load(scan)
    assert mask.shape == image.shape and mask.get_data_dtype() == np.uint8
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-5)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1, 2}
    missing = tmp_path / "missing.nii.gz"
    with pytest.raises(MedsegError, match=r"missing\.nii\.gz: file not found"):
        medseg.segment("ct_liver_tumour_3d", [missing, scan], tmp_path / "strict", **arguments)
    assert (tmp_path / "strict" / "liver_006_seg.nii.gz").is_file()  # the scan that worked is kept
    report = medseg.segment("ct_liver_tumour_3d", [missing], tmp_path / "on", keep_going=True, **arguments)
    assert [error.path for error in report.failed] == [missing] and not report.written


@pytest.fixture()
def bad_dataset(tmp_path, small_ct):
    """The small CT dataset with one label on another grid than its image."""
    data = shutil.copytree(small_ct, tmp_path / "data")
    label = data / "labelsTr" / "liver_000.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)), label)
    return data, label


def test_check_dataset_names_the_argument_that_returns_the_errors(bad_dataset):
    data, label = bad_dataset
    with pytest.raises(MedsegError) as raised:
        medseg.check_dataset(data)
    message = str(raised.value)
    assert message.startswith(f"{data}: the dataset has 1 error(s), the first: {label}")
    assert message.endswith("`strict=False` returns them all") and " --" not in message
    check = medseg.check_dataset(data, strict=False)
    assert not check.ok and [problem.path for problem in check.report.errors] == [label]
    assert check.describe().splitlines()[0] == str(check.report.errors[0])


def test_find_bundle_refuses_an_outside_folder_naming_the_argument(tmp_path):
    bundle = shutil.copytree(medseg.find_bundle("ct_liver_tumour_3d").root / "configs", tmp_path / "b" / "configs")
    with pytest.raises(MedsegError, match=r"read them, then pass `trust=True`$"):
        medseg.find_bundle(bundle.parent)
    said = []
    assert medseg.find_bundle(bundle.parent, trust=True, say=said.append).root == bundle.parent.resolve()
    assert said == [f"running bundle code from {bundle.parent.resolve()} (`trust=True`)"]


@pytest.fixture(scope="module")
def flags():
    return option_flags(typer.main.get_command(app))


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("is MR (`ignore_modality=True` runs it anyway)", "is MR (--ignore-modality runs it anyway)"),
        ("`window='large'` needs the fast path (`stock=True`)", "--window large needs the fast path (--stock)"),
        ("for `coarse=True`", "for --fast"),
        ("`label_rules=False` and `progress=False`", "--no-label-rules and --no-progress"),
        ("`cases` must be at least 1", "--cases must be at least 1"),
        ("needs `rdzv_endpoint='HOST:PORT'`", "needs --rdzv-endpoint HOST:PORT"),
        ("`strict=False` returns them all", "`strict=False` returns them all"),  # no such option: left as it is
        ("made by `medseg demo`", "made by `medseg demo`"),
    ],
)
def test_the_command_line_names_its_flags(flags, message, shown):
    assert with_flags(message, flags) == shown


def _library_strings():
    """Each string constant, docstrings left out, of the modules outside the command line, with its file."""
    for path in sorted((ROOT / "medseg").rglob("*.py")):
        if path.name.startswith("cli"):
            continue
        tree = ast.parse(path.read_text())
        documented = (ast.Module, ast.ClassDef, ast.FunctionDef)
        firsts = [node.body[0] for node in ast.walk(tree) if isinstance(node, documented) and node.body]
        docstrings = {id(first.value) for first in firsts if isinstance(first, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                yield path, node.value


def test_library_messages_name_arguments_not_flags(flags):
    strings = list(_library_strings())
    flagged = [(path.name, text) for path, text in strings if re.search(r"(^|\W)--[a-z]", text)]
    assert [text for _, text in flagged if text not in OTHER_PROGRAMS_FLAGS] == []
    named = {match.group(1) for _, text in strings for match in ARGUMENT.finditer(text)}
    assert named - {*flags, *RENAMED, "strict"} == set()  # each names an option, or an argument of the API alone
    assert {"ignore_modality", "trust", "tta", "coarse", "cases", "resume", "output"} <= named


def test_sample_data_errors_show_the_flag(tmp_path):
    command = [sys.executable, "-m", "medseg", "sample-data", "ct", str(tmp_path / "d"), "--cases", "0"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.splitlines()[-1] == "error: --cases must be at least 1, got 0"


@pytest.mark.parametrize("module", ["medseg.cli_flags", "medseg.weights", "medseg.samples.datasets"])
def test_the_examples_of_the_helpers_run(module):
    results = doctest.testmod(importlib.import_module(module))
    assert results.attempted > 0 and results.failed == 0


def test_weights_files_given_as_scans_join_the_weights():
    weights, scans = weights_among([Path("a.pt")], [Path("b.pth"), Path("scan.nii.gz"), Path("c.ckpt")])
    assert weights == [Path("a.pt"), Path("b.pth"), Path("c.ckpt")] and scans == [Path("scan.nii.gz")]
    assert weights_among(None, ["x.pt"]) == (None, [Path("x.pt")])  # without --weights, a .pt is a (bad) scan


def test_sample_datasets_count_their_default_test_cases():
    assert [case_count("ct", 20), case_count("ct", 2), case_count("brats", 6, 0)] == [25, 3, 6]
    assert case_count("mri", 3) == 3 + len(HELD_OUT)
