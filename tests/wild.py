"""Real-world DICOM and NIfTI files that nobody on the project made: the test files of pydicom,
pydicom-data and nibabel.

pydicom and nibabel ship theirs inside their wheels (both are installed with medseg's ``dev`` extra);
pydicom-data's (enhanced multi-frame CT and MR, a DICOM SEG, a CT slice without a frame of reference)
come from its wheel, fetched once with ``pip download`` into ``$MEDSEG_TEST_CACHE`` (default
``~/.cache/medseg-tests``). Their licences: pydicom and pydicom-data MIT, nibabel MIT; the files
are read in place and never copied into this repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel
import pydicom

PYDICOM_DATA = "pydicom-data==1.0.0"
CACHE = Path(os.environ.get("MEDSEG_TEST_CACHE") or Path.home() / ".cache" / "medseg-tests")
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(nibabel.__file__).parent / "tests" / "data"


def pydicom_data_file(name: str) -> Path:
    """A file of the pydicom-data wheel (``data_store/data/<name>``), downloaded and unpacked once."""
    target = CACHE / "pydicom-data" / name
    if not target.is_file():
        wheels = CACHE / "wheels"
        wheel = next(wheels.glob("pydicom_data-*.whl"), None) if wheels.is_dir() else None
        if wheel is None:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), PYDICOM_DATA]
            subprocess.run(command, check=True, capture_output=True, timeout=600)
            wheel = next(wheels.glob("pydicom_data-*.whl"))
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            partial = target.with_suffix(".partial")
            partial.write_bytes(archive.read(f"data_store/data/{name}"))
            partial.replace(target)
    return target


def as_folder(files: list[Path], folder: Path) -> Path:
    """Copy ``files`` into a new ``folder``, as an export puts one series (or object) in a folder."""
    folder.mkdir(parents=True)
    for path in files:
        shutil.copy(path, folder / path.name)
    return folder
