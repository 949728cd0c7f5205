"""Mutation testing of medseg's core modules (``make mutation``): do the tests notice a small bug?

Each *mutant* is one small change to one module, the kind of slip a person makes: an arithmetic
operator swapped (``+`` / ``-``, ``*`` / ``/``), a comparison moved by one (``<`` / ``<=``,
``==`` / ``!=``, ``in`` / ``not in``), ``and`` / ``or`` swapped, a ``not`` or a minus sign dropped,
a number changed by one, ``True`` / ``False`` swapped, a call that stands alone as a statement
removed. A mutant is *killed* when one of the tests that cover its module fails (or runs past its
timeout), and *survives* when they all pass: then either a test is missing, or the change cannot
alter behaviour (an *equivalent* mutant), which ``tools/mutation_equivalents.txt`` lists with the
reason.

Not mutated: strings and f-strings (messages), docstrings, type annotations, decorators,
``assert`` statements (checks for the type checker) and lines marked ``# pragma: no mutate``.

How it runs fast enough for 2 cores: one pytest session collects every mapped test file and runs
them once, unchanged (a failure there stops the run); the session's fixtures (the synthetic
datasets, the small trained model) stay alive. Then, for each mutant, the process forks; the child
compiles the mutated module, swaps the changed function's code (or the changed module constant)
into the already imported module, and re-runs only the tests mapped to that module, stopping at
the first failure, with ``torch``, ``monai`` and the fixtures already in memory. Tests that run
medseg in a subprocess are left out of the map: a subprocess would not see the mutant.

Usage::

    python tools/mutate.py                      # every module, 2 workers
    python tools/mutate.py medseg/data/splits.py --workers 1
    python tools/mutate.py --list               # print the mutants, run nothing
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tools" / "mutation_equivalents.txt"
os.environ.setdefault("OMP_NUM_THREADS", "1")  # forked children each run torch on one thread

# Each core module and the tests that cover it (file, or node-id prefix). Tests that start medseg in a
# subprocess are left out: the subprocess imports the unmutated module.
MODULES: dict[str, list[str]] = {
    "medseg/io/mask_writer.py": ["tests/test_mask_writer.py"],
    "medseg/inference/resample.py": [
        "tests/test_resample_exact.py",
        "tests/test_resample_nearest.py",
        "tests/test_fast_inference.py::test_trilinear",
        "tests/test_fast_inference.py::test_cells",
        "tests/test_fast_inference.py::test_cell_shortcut",
    ],
    "medseg/inference/label_rules.py": ["tests/test_label_rules.py", "tests/test_fast_inference.py::test_label_rules"],
    "medseg/lesions.py": ["tests/test_lesions.py"],
    "medseg/data/discover.py": ["tests/test_discover.py", "tests/test_splits.py"],
    "medseg/data/validate.py": [
        "tests/test_validate.py::test_clean",
        "tests/test_validate.py::test_corrupt",
        "tests/test_validate.py::test_missing",
        "tests/test_validate.py::test_label",
        "tests/test_validate.py::test_non_integer",
        "tests/test_validate.py::test_nan",
        "tests/test_validate.py::test_four_d",
        "tests/test_validate.py::test_3d",
        "tests/test_validate.py::test_duplicates",
        "tests/test_validate.py::test_unpaired",
        "tests/test_validate.py::test_grid",
        "tests/test_validate.py::test_scan",
        "tests/test_validate.py::test_negative_values",
        "tests/test_validate_exact.py",
        "tests/test_fingerprint.py::test_fingerprint_worked_out_by_hand",
        "tests/test_fingerprint.py::test_foreground_is_sampled",
    ],
    "medseg/data/splits.py": ["tests/test_splits.py"],
    "medseg/io/fast_nifti.py": ["tests/test_fast_nifti.py"],
    "medseg/inference/options.py": [
        "tests/test_fast_inference.py::test_tta",
        "tests/test_options.py",
        "tests/test_ensemble.py::test_a_mixed",
    ],
    "medseg/inference/ensemble.py": [
        "tests/test_ensemble.py::test_the_ensemble",
        "tests/test_ensemble.py::test_a_mixed",
    ],
}

SWAPPED_OPERATORS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.MatMult: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.And: ast.Or,
    ast.Or: ast.And,
}
SKIPPED_FIELDS = {"annotation", "returns", "type_comment", "decorator_list"}


@dataclass
class Mutant:
    """One change to one module.

    Args:
        path: the module's file, relative to the repository root.
        index: its position among the module's mutants (the order of the AST walk).
        scope: qualified name of the outermost function or class holding it (``""`` at module level).
        line: line number of the change.
        description: what changed, e.g. ``1 -> 2`` or ``'a < b' -> 'a <= b'``.
        key: a line-number-free name, stable while the code around it is unchanged.
    """

    path: str
    index: int
    scope: str
    line: int
    description: str
    key: str = ""
    outcome: str = ""
    seconds: float = 0.0


class _Walker(ast.NodeTransformer):
    """Visit mutation points in a fixed order; change the one numbered ``target`` (or none: just list them)."""

    def __init__(self, lines: list[str], target: int = -1) -> None:
        self.lines, self.target = lines, target
        self.found: list[tuple[str, int, str]] = []  # (scope, line, description)
        self.scope: list[tuple[str, bool]] = []  # (name, is a function)

    def _point(self, node: ast.AST, replacement: ast.AST | None, what: str) -> ast.AST:
        """Register a mutation point; return ``replacement`` if it is the target, else ``node``."""
        line = getattr(node, "lineno", 0)
        if "pragma: no mutate" in self.lines[line - 1]:
            return node
        number = len(self.found)
        self.found.append((self._scope_name(), line, what))
        return replacement if number == self.target and replacement is not None else node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for name, value in ast.iter_fields(node):
            if name in SKIPPED_FIELDS:
                continue
            if isinstance(value, list):
                new = []
                for child in value:
                    result = self.visit(child) if isinstance(child, ast.AST) else child
                    new.extend(result if isinstance(result, list) else [result])
                setattr(node, name, new)
            elif isinstance(value, ast.AST):
                setattr(node, name, self.visit(value))
        return node

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        # A function's default values run in the enclosing scope but live on the function
        # (``__defaults__``), so they count as the function's, like its body.
        self.scope.append((node.name, not isinstance(node, ast.ClassDef)))
        result = self.generic_visit(node)
        self.scope.pop()
        return result

    def _scope_name(self) -> str:
        """Qualified name up to the outermost function (nested functions are part of its code)."""
        names = []
        for name, is_function in self.scope:
            names.append(name)
            if is_function:
                break
        return ".".join(names)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        return self._operator(node, node.op, lambda op: ast.BinOp(node.left, op, node.right))

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        return self._operator(node, node.op, lambda op: ast.AugAssign(node.target, op, node.value))

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        return self._operator(node, node.op, lambda op: ast.BoolOp(op, node.values))

    def _operator(self, node: ast.AST, op: ast.AST, build: Any) -> ast.AST:
        swapped = SWAPPED_OPERATORS.get(type(op))
        if swapped is None:
            return node
        mutated = ast.copy_location(build(swapped()), node)
        return self._point(node, mutated, f"{ast.unparse(node)!r} -> {ast.unparse(mutated)!r}")

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        result: ast.AST = node
        for position, op in enumerate(node.ops):
            swapped = SWAPPED_OPERATORS.get(type(op))
            if swapped is None:
                continue
            ops = [*node.ops[:position], swapped(), *node.ops[position + 1 :]]
            mutated = ast.copy_location(ast.Compare(node.left, ops, node.comparators), node)
            chosen = self._point(node, mutated, f"{ast.unparse(node)!r} -> {ast.unparse(mutated)!r}")
            result = chosen if chosen is mutated else result
        return result

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not | ast.USub):
            return self._point(node, node.operand, f"{ast.unparse(node)!r} -> {ast.unparse(node.operand)!r}")
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool):
            new: Any = not value
        elif isinstance(value, int | float):
            new = value + 1
        else:
            return node
        mutated = ast.copy_location(ast.Constant(new), node)
        return self._point(node, mutated, f"{value!r} -> {new!r}")

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.value, ast.Call):
            removed = ast.copy_location(ast.Pass(), node)
            return self._point(node, removed, f"{ast.unparse(node)!r} removed")
        return node


def mutants_of(path: str) -> list[Mutant]:
    """Every mutant of the module at ``path`` (relative to the repository root), with stable keys."""
    source = (ROOT / path).read_text(encoding="utf-8")
    walker = _Walker(source.splitlines())
    walker.visit(ast.parse(source))
    mutants, seen = [], {}
    for index, (scope, line, description) in enumerate(walker.found):
        name = f"{path}::{scope or '<module>'}: {description}"
        seen[name] = seen.get(name, 0) + 1
        key = name if seen[name] == 1 else f"{name} #{seen[name]}"
        mutants.append(Mutant(path, index, scope, line, description, key))
    return mutants


def mutated_tree(mutant: Mutant) -> ast.Module:
    """The module's syntax tree with ``mutant`` applied."""
    source = (ROOT / mutant.path).read_text(encoding="utf-8")
    tree = _Walker(source.splitlines(), target=mutant.index).visit(ast.parse(source))
    return ast.fix_missing_locations(tree)


def _function(owner: Any, name: str) -> FunctionType | None:
    """The plain function behind ``owner.name`` (a function, method, property, static or class method)."""
    value = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if isinstance(value, property):
        value = value.fget
    value = getattr(value, "__func__", value)
    value = getattr(value, "__wrapped__", value)
    return value if isinstance(value, FunctionType) else None


class BreaksImport(Exception):
    """The mutated module raises when it is executed: importing it would fail, which any test notices."""


def _swap(live: FunctionType, new: FunctionType, owner: Any = None) -> None:
    """Give ``live`` the code and defaults of ``new``.

    Where their closures differ (a ``super()`` call removed), a function with the new code, the live
    globals and the live cells it still needs takes ``live``'s place in ``owner``.
    """
    if live.__code__.co_freevars == new.__code__.co_freevars:
        live.__code__ = new.__code__
        live.__defaults__, live.__kwdefaults__ = new.__defaults__, new.__kwdefaults__
        return
    cells = dict(zip(live.__code__.co_freevars, live.__closure__ or (), strict=True))
    closure = tuple(cells[name] for name in new.__code__.co_freevars)
    replacement = FunctionType(new.__code__, live.__globals__, live.__name__, new.__defaults__, closure)
    replacement.__kwdefaults__ = new.__kwdefaults__
    setattr(owner, live.__name__, replacement)


def apply(mutant: Mutant, module: ModuleType) -> None:
    """Put ``mutant`` into the imported ``module``, in place, so that every reference to it sees the change.

    The mutated module is executed in a fresh namespace; then the live function holding the change gets
    the new code and default values, or the live module (or class) the new values of the names that
    the changed statement binds.
    """
    tree = mutated_tree(mutant)
    namespace: dict[str, Any] = {"__name__": module.__name__, "__file__": module.__file__}
    try:
        exec(compile(tree, str(ROOT / mutant.path), "exec"), namespace)
    except Exception as error:
        raise BreaksImport(mutant.key) from error
    parts = mutant.scope.split(".") if mutant.scope else []
    live_owner: Any = module
    new_owner: Any = _Namespace(namespace)
    for part in parts[:-1]:
        live_owner, new_owner = getattr(live_owner, part), getattr(new_owner, part)
    if parts:
        live, new = _function(live_owner, parts[-1]), _function(new_owner, parts[-1])
        if live is not None and new is not None:
            _swap(live, new, live_owner)
            return
        live_owner, new_owner = getattr(live_owner, parts[-1]), getattr(new_owner, parts[-1])
    for name in _bound_names(tree, mutant):
        setattr(live_owner, name, getattr(new_owner, name) if isinstance(new_owner, type) else new_owner[name])
    if isinstance(live_owner, type) and "__dataclass_fields__" in live_owner.__dict__:
        _swap(live_owner.__init__, new_owner.__init__)  # a field default: the generated __init__ holds it
    if not parts:  # a module constant may be some function's default value (``folds=DEFAULT_FOLDS``)
        for live, new in _functions(module, namespace):
            live.__defaults__, live.__kwdefaults__ = new.__defaults__, new.__kwdefaults__


def _functions(module: ModuleType, namespace: dict[str, Any]) -> Iterator[tuple[FunctionType, FunctionType]]:
    """Pairs (live, new) of the module's own top-level functions and methods."""
    for name, value in vars(module).items():
        if getattr(value, "__module__", None) != module.__name__ or name not in namespace:
            continue
        owners = [(value, namespace[name])] if isinstance(value, type) else []
        for live_owner, new_owner in owners:
            for attribute in vars(live_owner):
                live, new = _function(live_owner, attribute), _function(new_owner, attribute)
                if live is not None and new is not None:
                    yield live, new
        if isinstance(value, FunctionType) and isinstance(namespace[name], FunctionType):
            yield value, namespace[name]


class _Namespace(dict):
    """A module namespace read by attribute, like the live module."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


def _bound_names(tree: ast.Module, mutant: Mutant) -> list[str]:
    """Names bound by the statement on the mutant's line, in its module or class body."""
    body = tree.body
    for part in mutant.scope.split(".") if mutant.scope else []:
        body = next(node.body for node in body if isinstance(node, ast.ClassDef) and node.name == part)
    for statement in body:
        if statement.lineno <= mutant.line <= (statement.end_lineno or statement.lineno):
            targets = statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
            return [node.id for target in targets if target for node in ast.walk(target) if isinstance(node, ast.Name)]
    return []


@dataclass
class Result:
    """Outcomes of one module's mutants."""

    path: str
    mutants: list[Mutant] = field(default_factory=list)

    def count(self, *outcomes: str) -> int:
        """How many mutants had one of ``outcomes``."""
        return sum(mutant.outcome in outcomes for mutant in self.mutants)


def _selected(items: list[Any], patterns: list[str]) -> list[Any]:
    return [item for item in items if any(item.nodeid.startswith(pattern) for pattern in patterns)]


class MutationPlugin:
    """A pytest plugin that takes over the test loop: one clean run, then every mutant in forked children."""

    def __init__(self, modules: dict[str, list[str]], workers: int, factor: float) -> None:
        self.modules, self.workers, self.factor = modules, workers, factor
        self.results: list[Result] = []
        self.baseline_failed: list[str] = []

    def pytest_runtestloop(self, session: Any) -> bool:
        """Run the tests once as they are, then each module's mutants against its tests; True: loop done."""
        from _pytest.runner import runtestprotocol

        items, durations = session.items, {}
        print(f"clean run of {len(items)} tests ...", flush=True)
        for position, item in enumerate(items):
            started = time.monotonic()
            following = items[position + 1] if position + 1 < len(items) else items[0]  # keep session fixtures
            reports = runtestprotocol(item, log=False, nextitem=following)
            durations[item.nodeid] = time.monotonic() - started
            if any(report.failed for report in reports):
                self.baseline_failed.append(item.nodeid)
        if self.baseline_failed:
            print("tests fail before any mutation:", *self.baseline_failed, sep="\n  ")
            return True
        for path, patterns in self.modules.items():
            chosen = _selected(items, patterns)
            seconds = sum(durations[item.nodeid] for item in chosen)
            timeout = 30 + self.factor * seconds  # generous: the 2 cores may be shared
            result = Result(path, mutants_of(path))
            print(f"{path}: {len(result.mutants)} mutants, {len(chosen)} tests ({seconds:.1f} s)", flush=True)
            self._run(session, chosen, result, timeout)
            self.results.append(result)
        return True

    def _run(self, session: Any, items: list[Any], result: Result, timeout: float) -> None:
        pending, running = list(result.mutants), {}
        while pending or running:
            while pending and len(running) < self.workers:
                mutant = pending.pop(0)
                scratch = Path(tempfile.mkdtemp(prefix="mutant-"))
                running[self._fork(session, items, mutant, scratch)] = (mutant, time.monotonic(), scratch)
            time.sleep(0.02)
            for pid, (mutant, started, scratch) in list(running.items()):
                finished, status = os.waitpid(pid, os.WNOHANG)
                elapsed = time.monotonic() - started
                if not finished and elapsed < timeout:
                    continue
                if not finished:
                    os.killpg(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    mutant.outcome = "timeout"
                else:
                    code = os.waitstatus_to_exitcode(status)
                    mutant.outcome = {0: "survived", 1: "killed"}.get(code, "error")
                mutant.seconds = elapsed
                shutil.rmtree(scratch, ignore_errors=True)
                del running[pid]
                print({"killed": ".", "timeout": "t", "survived": "S"}.get(mutant.outcome, "?"), end="", flush=True)
        print(flush=True)

    def _fork(self, session: Any, items: list[Any], mutant: Mutant, scratch: Path) -> int:
        pid = os.fork()
        if pid:
            return pid
        code = 3
        try:
            os.setpgid(0, 0)  # its own process group: a timeout kills its helper processes too
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1), os.dup2(quiet, 2)
            code = _child(session, items, mutant, scratch)
        finally:
            os._exit(code)


def _child(session: Any, items: list[Any], mutant: Mutant, scratch: Path) -> int:
    """In a forked child: apply the mutant, run the tests; 1 if one fails, 0 if all pass (or there are none).

    An exception in the tool itself ends the child with status 3, counted as an error, not a kill.
    """
    from _pytest.runner import runtestprotocol

    module = sys.modules.get(mutant.path.removesuffix(".py").replace("/", "."))
    if module is None:
        module = __import__(mutant.path.removesuffix(".py").replace("/", "."), fromlist=["_"])
    try:
        apply(mutant, module)
    except BreaksImport:
        return 1
    if not items:
        return 0
    session.config._tmp_path_factory._basetemp = scratch
    session._setupstate.teardown_exact(items[0])
    for position, item in enumerate(items):
        following = items[position + 1] if position + 1 < len(items) else None
        if any(report.failed for report in runtestprotocol(item, log=False, nextitem=following)):
            return 1
    return 0


def _equivalents() -> dict[str, str]:
    """``{mutant key: reason}`` from ``tools/mutation_equivalents.txt`` (``key  # reason`` per line)."""
    listed = {}
    for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines() if EQUIVALENTS.exists() else []:
        if line.strip() and not line.startswith("#"):
            key, _, reason = line.partition("  # ")
            listed[key.strip()] = reason.strip()
    return listed


def report(results: list[Result], seconds: float) -> dict[str, Any]:
    """Print the share of mutants killed per module and overall, and every unexplained survivor."""
    equivalent = _equivalents()
    rows, survivors, total_killed, total_counted = [], [], 0, 0
    for result in results:
        for mutant in result.mutants:
            if mutant.outcome == "survived" and mutant.key in equivalent:
                mutant.outcome = "equivalent"
        killed = result.count("killed", "timeout")
        counted = len(result.mutants) - result.count("equivalent", "error")
        total_killed, total_counted = total_killed + killed, total_counted + counted
        row = (result.path, len(result.mutants), killed, result.count("timeout"), result.count("equivalent"), counted)
        rows.append(row)
        survivors += [m for m in result.mutants if m.outcome == "survived"]
    print(f"\n{'module':36} {'mutants':>8} {'killed':>7} {'timeout':>8} {'equiv.':>7} {'killed %':>9}")
    for path, total, killed, timeouts, equivalents, counted in rows:
        share = 100 * killed / max(counted, 1)
        print(f"{path:36} {total:8d} {killed:7d} {timeouts:8d} {equivalents:7d} {share:8.1f}%")
    sums = [sum(row[column] for row in rows) for column in (1, 3, 4)]
    print(f"{'overall':36} {sums[0]:8d} {total_killed:7d} {sums[1]:8d} {sums[2]:7d} ", end="")
    print(f"{100 * total_killed / max(total_counted, 1):8.1f}%   ({seconds / 60:.1f} min)")
    if survivors:
        print("\nsurvivors (add a test, or list them in tools/mutation_equivalents.txt with the reason):")
        for mutant in survivors:
            print(f"  {mutant.path}:{mutant.line}  {mutant.key}")
    errors = [m for r in results for m in r.mutants if m.outcome == "error"]
    if errors:
        print("\nerrors of this tool (not counted; run them alone to see why):", *[m.key for m in errors], sep="\n  ")
    stale = set(equivalent) - {m.key for r in results for m in r.mutants}
    if stale and len(results) == len(MODULES):
        print("\nlisted as equivalent but no longer generated (remove them):", *sorted(stale), sep="\n  ")
    names = ("path", "mutants", "killed", "timeout", "equivalent", "counted")
    return {
        "minutes": round(seconds / 60, 1),
        "modules": [dict(zip(names, row, strict=True)) for row in rows],
        "mutants": [asdict(mutant) for result in results for mutant in result.mutants],
    }


def reread(path: Path) -> tuple[list[Result], float]:
    """The results a ``--json`` file holds, with equivalents to be judged again by the current list."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    results: dict[str, Result] = {}
    for fields in saved["mutants"]:
        mutant = Mutant(**fields)
        mutant.outcome = "survived" if mutant.outcome == "equivalent" else mutant.outcome
        results.setdefault(mutant.path, Result(mutant.path)).mutants.append(mutant)
    return list(results.values()), 60 * saved["minutes"]


def main(argv: list[str] | None = None) -> int:
    """Run the mutants of the chosen modules (default: all of :data:`MODULES`); 1 if any survive unexplained."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module files to mutate (default: every core module)")
    parser.add_argument("--workers", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--timeout-factor", type=float, default=5.0, help="per-mutant timeout: 30 s + this x clean run")
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument("--json", type=Path, help="also write the figures and every mutant's outcome here")
    parser.add_argument("--report", type=Path, help="print a --json file's report again (after listing equivalents)")
    args = parser.parse_args(argv)
    if args.report:
        report(*reread(args.report))
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"not a mapped module: {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    modules = {path: MODULES[path] for path in (args.modules or MODULES)}
    if args.list:
        for path in modules:
            for mutant in mutants_of(path):
                print(f"{path}:{mutant.line}  {mutant.key}")
        return 0
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import pytest
    import torch

    torch.set_num_threads(1)
    plugin = MutationPlugin(modules, args.workers, args.timeout_factor)
    files = sorted({pattern.split("::")[0] for patterns in modules.values() for pattern in patterns})
    missing = [name for name in files if not (ROOT / name).is_file()]
    if missing:
        print("mapped test files not found (their modules lose those tests):", *missing, sep="\n  ")
    files = [name for name in files if name not in missing]
    started = time.monotonic()
    pytest.main([*files, "-q", "-p", "no:cacheprovider", "-m", "not gpu"], plugins=[plugin])
    if plugin.baseline_failed or not plugin.results:
        return 2
    figures = report(plugin.results, time.monotonic() - started)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return int(any(m.outcome == "survived" for r in plugin.results for m in r.mutants))


if __name__ == "__main__":
    sys.exit(main())
