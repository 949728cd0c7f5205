"""The default install stays free of the packages that ``import monai`` imports whenever they are installed."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
# import monai imports these when present: 1.65 s of CPU and 130 MB for every medseg infer (benchmarks/RESULTS.md),
# and matplotlib's pyplot another 0.3 s
MONAI_OPTIONAL_IMPORTS = {"mlflow", "scikit-learn", "pandas", "matplotlib"}


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pulled_in(requirements: list[str]) -> dict[str, str]:
    """Every distribution the requirements bring, transitively (extras left out), with the core one that brings it."""
    found: dict[str, str] = {}
    pending = [(_name(r), _name(r)) for r in requirements]
    while pending:
        name, via = pending.pop()
        if name in found:
            continue
        found[name] = via
        try:
            needs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        pending += [(_name(r), via) for r in needs if "extra ==" not in r]
    return found


def test_the_core_install_brings_none_of_monais_optional_imports():
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pulled = _pulled_in(dependencies)
    assert "monai" in pulled and "nibabel" in pulled
    assert {name: pulled[name] for name in MONAI_OPTIONAL_IMPORTS if name in pulled} == {}


def test_the_dev_extra_still_has_nilearn_for_the_brain_samples():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert [_name(r) for r in extras["mri"]] == ["nilearn"]
    assert "mri" in next(r for r in extras["dev"] if r.startswith("medseg["))
