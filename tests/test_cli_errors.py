"""Bad input: one clear line on stderr, exit status 1, no traceback, nothing written; usage errors: the
usage line and the problem, exit status 2."""

import gzip
import signal
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest


def medseg(*args, **options):
    return subprocess.run([sys.executable, "-m", "medseg", *map(str, args)], capture_output=True, text=True, **options)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def assert_usage_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Usage: "), result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture()
def scan(small_ct):
    return small_ct / "imagesTs" / "liver_006.nii.gz"


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_run):
    """Valid weights, so that each test reaches the input it is about."""
    return tiny_run.best_weights


def test_unknown_bundle(tmp_path, scan):
    result = medseg("infer", "no_such_bundle", scan, "-o", tmp_path / "out")
    assert_one_line_error(result, "unknown bundle 'no_such_bundle'", "ct_liver_tumour_3d")
    assert not (tmp_path / "out").exists()


def test_missing_input(tmp_path, weights):
    missing = tmp_path / "nowhere.nii.gz"
    result = medseg("infer", "ct_liver_tumour_3d", missing, "-o", tmp_path / "out", "--weights", weights)
    assert_one_line_error(result, str(missing), "file not found")
    assert not (tmp_path / "out").exists()


def test_corrupt_nifti(tmp_path, weights):
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(gzip.compress(b"this is not a NIfTI header" * 20))
    result = medseg("infer", "ct_liver_tumour_3d", corrupt, "-o", tmp_path / "out", "--weights", weights)
    assert_one_line_error(result, str(corrupt), "cannot read NIfTI")
    assert not (tmp_path / "out").exists()


def test_truncated_nifti(tmp_path, scan, weights):
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(scan.read_bytes()[: scan.stat().st_size // 2])
    result = medseg("infer", "ct_liver_tumour_3d", truncated, "-o", tmp_path / "out", "--weights", weights)
    assert_one_line_error(result, str(truncated), "cannot read NIfTI")
    assert not (tmp_path / "out").exists()


def test_4d_file_for_a_3d_bundle(tmp_path, weights):
    four_d = tmp_path / "timeseries.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.int16), np.eye(4)), four_d)
    result = medseg("infer", "ct_liver_tumour_3d", four_d, "-o", tmp_path / "out", "--weights", weights)
    assert_one_line_error(result, str(four_d), "8 x 8 x 8 x 3", "expected a 3D scan")
    assert not (tmp_path / "out").exists()


def test_existing_output_folder_is_left_as_it_was(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier_seg.nii.gz").write_bytes(b"keep")
    result = medseg("infer", "ct_liver_tumour_3d", tmp_path / "missing.nii.gz", "-o", out)
    assert result.returncode == 1
    assert [p.name for p in out.iterdir()] == ["earlier_seg.nii.gz"]


def test_pickled_checkpoint_is_refused(tmp_path, scan):
    import torch

    weights = tmp_path / "pickled.pt"
    torch.save({"model": object()}, weights)
    result = medseg("infer", "ct_liver_tumour_3d", scan, "-o", tmp_path / "out", "--weights", weights)
    assert_one_line_error(result, str(weights), "pickled")
    assert not (tmp_path / "out").exists()


def test_help_is_instant():
    result = medseg("--help")
    assert result.returncode == 0 and "infer" in result.stdout


def test_an_unknown_option_is_a_usage_error():
    assert_usage_error(medseg("infer", "--bogus"), "medseg infer [OPTIONS]", "No such option: --bogus")


def test_a_misspelt_option_gets_a_suggestion(tmp_path):
    result = medseg("infer", "ct_liver_tumour_3d", tmp_path / "scan.nii.gz", "-o", tmp_path / "out", "--overlapp", "1")
    assert_usage_error(result, "No such option: --overlapp", "--overlap")


def test_a_misspelt_command_gets_a_suggestion():
    assert_usage_error(medseg("infr"), "medseg [OPTIONS] COMMAND", "No such command 'infr'. Did you mean 'infer'?")


def test_no_arguments_print_the_help():
    result = medseg()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Usage: " in result.stdout + result.stderr and "sample-data" in result.stdout + result.stderr
    assert "error:" not in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize("where", ["first", "last"])
def test_debug_works_anywhere_on_the_line(tmp_path, where):
    command = ["infer", "no_such_bundle", tmp_path / "scan.nii.gz", "-o", tmp_path / "out"]
    result = medseg(*(["--debug", *command] if where == "first" else [*command, "--debug"]))
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "MedsegError: unknown bundle 'no_such_bundle'" in result.stderr


def _ctrl_c_works() -> None:
    """Let the child handle SIGINT even when the tests run in the background (which ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_in_the_network_step_prints_one_line(tmp_path, scan, random_weights):
    ctrl_c = '{"_target_": "tests.probes.CtrlC"}'
    command = ["infer", "ct_liver_tumour_3d", scan, "-o", tmp_path / "out", "--weights", random_weights]
    result = medseg(*command, "--override", f"inferer={ctrl_c}", preexec_fn=_ctrl_c_works)
    assert result.returncode == 130, result.stderr
    assert (result.stdout + result.stderr).splitlines() == ["interrupted"]
    assert not (tmp_path / "out").exists()


def test_a_failure_inside_the_engine_prints_one_line(tmp_path, scan, random_weights):
    command = ["infer", "ct_liver_tumour_3d", scan, "-o", tmp_path / "out", "--weights", random_weights]
    result = medseg(*command, "--override", "overlap=1.5")
    assert_one_line_error(result, str(scan), "overlap must be >= 0 and < 1")
    assert result.stdout == ""


@pytest.mark.parametrize("overlap", ["1", "1.5"])
def test_an_overlap_outside_0_1_is_a_usage_error(tmp_path, overlap):
    result = medseg(
        "infer", "ct_liver_tumour_3d", tmp_path / "scan.nii.gz", "-o", tmp_path / "out", "--overlap", overlap
    )
    assert_usage_error(result, f"{float(overlap)} is not in [0, 1)")


def test_a_misspelt_override_names_the_closest_key(tmp_path):
    result = medseg(
        "infer", "ct_liver_tumour_3d", tmp_path / "scan.nii.gz", "-o", tmp_path / "out", "--override", "overlapp=0.3"
    )
    assert_one_line_error(result, "configs/inference.json", "no key 'overlapp'", "did you mean 'overlap'?")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    out = tmp_path / "out"
    out.write_text("keep")
    result = medseg("infer", "ct_liver_tumour_3d", tmp_path / "scan.nii.gz", "-o", out)
    assert_one_line_error(result, str(out), "is a file, not a folder")
    assert out.read_text() == "keep"


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("model.onnx", b"\x08\x07\x12\x07pytorch", "is an ONNX model"),
        ("notes.pt", b"hello" * 20, "not a PyTorch checkpoint"),
    ],
)
def test_weights_that_are_not_a_checkpoint_are_named_as_such(tmp_path, name, content, problem):
    weights = tmp_path / name
    weights.write_bytes(content)
    result = medseg(
        "infer", "ct_liver_tumour_3d", tmp_path / "scan.nii.gz", "-o", tmp_path / "out", "--weights", weights
    )
    assert_one_line_error(result, str(weights), problem)


@pytest.mark.parametrize("kind", ["mri", "brats"])
def test_brain_samples_without_nilearn_say_which_extra_to_install(tmp_path, kind):
    hidden = "import sys; sys.modules['nilearn'] = None; from medseg.cli import main; sys.exit(main())"
    target = tmp_path / kind
    result = subprocess.run(
        [sys.executable, "-c", hidden, "sample-data", kind, str(target)], capture_output=True, text=True
    )
    assert_one_line_error(result, "nilearn, which is not installed: pip install 'medseg[mri]'")
    assert not target.exists()
