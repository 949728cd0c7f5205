"""The package's layout: no import cycle among medseg's modules, and users' datasets apart from sample data."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "medseg"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports_at_load(path: Path, modules: set[str]) -> set[str]:
    """The medseg modules a module imports when it is loaded (not inside functions, nor for type checking)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found & modules


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (module -> modules it imports), or [] if there is none."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        for imported in sorted(graph[module]):
            if cycle := visit(imported, [*path, module]):
                return cycle
        done.add(module)
        return []

    for module in sorted(graph):
        if cycle := visit(module, []):
            return cycle
    return []


def test_no_import_cycle_among_medseg_modules():
    files = {_module(path): path for path in PACKAGE.rglob("*.py")}
    graph = {module: _imports_at_load(path, set(files)) - {module} for module, path in files.items()}
    assert graph["medseg.bundles"] >= {"medseg.labels"} and "medseg.bundles" not in graph["medseg.io.stats"]
    assert _cycle(graph) == []


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("generator", ["phantom", "mni.py", "mri_variants.py", "brain_tumour.py", "samples.py"])
def test_sample_data_generators_live_in_samples(generator):
    assert not (PACKAGE / "data" / generator).exists()
    assert (PACKAGE / "samples" / generator.replace("samples.py", "datasets.py")).exists()
