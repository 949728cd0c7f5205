"""A wheel built from the repository carries the bundles: installed into a fresh environment, medseg
lists them and segments a scan from a folder outside the checkout."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import pytest

from medseg import __version__

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "medseg", "bundles")  # all that the build reads
NOT_BUILT = shutil.ignore_patterns("__pycache__", "eval")
BUNDLES = sorted(path.name for path in (ROOT / "bundles").iterdir() if (path / "configs").is_dir())

pytestmark = pytest.mark.slow


def _run(*command: str | Path, cwd: Path) -> str:
    """Run a command in ``cwd`` without this session's PYTHONPATH (no checkout on the path); its stdout."""
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=cwd, env=environment)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline from a copy of the repository's build inputs."""
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in BUILD_INPUTS:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": NOT_BUILT} if copy is shutil.copytree else {}))
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source, cwd=source
    )
    [built] = dist.glob("medseg-*.whl")
    return built


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtual environment holding the wheel; a .pth file lends it this one's dependencies."""
    root = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", root, cwd=root)
    python = root / "bin" / "python"
    purelib = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root).strip())
    (purelib / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # --ignore-installed: the dependencies' folder may hold an (editable) medseg of its own
    _run(python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", wheel, cwd=root)
    return root


def test_the_wheel_carries_every_module_and_bundle_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "medseg").rglob("*.py")}
    bundle_files = {
        f"medseg/shipped_bundles/{path.relative_to(ROOT / 'bundles').as_posix()}"
        for path in (ROOT / "bundles").rglob("[!.]*")  # not hidden files, nor eval/ (outputs of a bundle's run)
        if path.is_file() and path.relative_to(ROOT / "bundles").parts[1:2] != ("eval",)
    }
    assert modules - names == set()
    assert bundle_files - names == set()
    assert "medseg/io/viewer.js" in names, "the report's slice viewer"
    assert "medseg/py.typed" in names, "the type hints are for users (PEP 561)"


def test_the_installed_wheel_lists_the_bundles_and_segments_a_scan(environment, tmp_path):
    medseg = environment / "bin" / "medseg"
    imported = _run(environment / "bin" / "python", "-c", "import medseg; print(medseg.__file__)", cwd=tmp_path)
    assert Path(imported.strip()).is_relative_to(environment)  # the installed copy, not the checkout
    assert _run(medseg, "--version", cwd=tmp_path).startswith(f"medseg {__version__} (MONAI ")
    listed = _run(medseg, "bundles", cwd=tmp_path).splitlines()
    assert [line.split()[0] for line in listed] == BUNDLES
    assert not any("no weights" in line for line in listed)
    _run(medseg, "sample-data", "ct", "data", "--cases", "1", "--test-cases", "0", "--preset", "small", cwd=tmp_path)
    [scan] = (tmp_path / "data" / "imagesTr").glob("*.nii.gz")
    _run(medseg, "infer", "ct_liver_tumour_3d", scan, "-o", "out", "--masks-only", "--device", "cpu", cwd=tmp_path)
    mask = nib.load(tmp_path / "out" / scan.name.replace(".nii.gz", "_seg.nii.gz"))
    assert mask.shape == nib.load(scan).shape
