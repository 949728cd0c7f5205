"""The teaching notebooks run top to bottom (their own asserts check figures and metrics) and are stored clean."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# Seconds one cell may run: the longest cell of 02 trains four networks.
CELL_TIMEOUT = 360


def _execute(name: str, workdir: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3")
    client.execute(cwd=str(workdir), env={"OMP_NUM_THREADS": "1", **os.environ})  # one thread unless told otherwise
    return notebook


def _shows_figures(notebook: nbformat.NotebookNode) -> bool:
    return any("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def test_quickstart_runs(tmp_path: Path) -> None:  # about 40 s on one busy CPU core
    notebook = _execute("01_quickstart.ipynb", tmp_path)
    assert (tmp_path / "quickstart_output" / "results" / "masks" / "open_in_slicer.py").is_file()
    assert _shows_figures(notebook)


@pytest.mark.slow  # about 3 minutes on one busy CPU core: it trains four networks
def test_architectures_runs(tmp_path: Path) -> None:
    notebook = _execute("02_architectures.ipynb", tmp_path)
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["boundaries.png", "instances.png"]
    assert _shows_figures(notebook)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda path: path.name)
def test_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "strip outputs before committing"
