"""The import rules of the house (issue 14), read from the source with ``ast``, nothing imported.

- no import circle among latentlab modules;
- no study's module imports another study's module;
- models never import losses (a model is a plain ``nn.Module``; the loss terms read the model);
- the shared core imports no study module.

Every ``import`` statement counts, wherever it sits: at module level, inside a function, or
under ``if TYPE_CHECKING``. A function-level import delays a circle to the first call but does
not remove it, and a core function that imports a study still makes the core know that study.
Importing ``a.b.c`` also runs ``a.b``'s ``__init__``, so each module depends on its parent packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
PACKAGE = "latentlab"

STUDIES = ("h2", "sfmn", "recon", "setvae")  # one folder each; everything else is the shared core

# A study's model modules (plain ``nn.Module``s) and its loss module: models never import losses.
MODEL_MODULES = ("model", "baselines")
LOSS_MODULE = "losses"

# Breaks of the rules that exist today, each named exactly so that a new break fails the test and a
# fixed one must be struck off here (a ratchet, not a waiver).
KNOWN_VIOLATIONS: set[tuple[str, str, str]] = set()


def owner(module: str) -> str:
    """The study a module belongs to (its folder under ``latentlab``), or ``core``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STUDIES else "core"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((LIB / PACKAGE).rglob("*.py"))}


def _resolve(name: str, known: set[str]) -> str | None:
    """The latentlab module an imported name refers to (``latentlab.sfmn.plots.chart`` → ``latentlab.sfmn.plots``)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Every latentlab module ``module`` imports anywhere in its file, plus its parent packages."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [f"{stem}.{alias.name}" for alias in node.names] + [stem]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == PACKAGE and (hit := _resolve(target, known)):
                found.add(hit)
    parent = module.rpartition(".")[0]
    while parent:
        found.add(parent)
        parent = parent.rpartition(".")[0]
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _kind(module: str) -> str:
    """``model``, ``losses``, ... for a study's module; empty for the core."""
    parts = module.split(".")
    return parts[2] if len(parts) == 3 and parts[1] in STUDIES else ""


def violations(graph: dict[str, set[str]]) -> set[tuple[str, str, str]]:
    broken = set()
    for source, targets in graph.items():
        for target in targets:
            mine, theirs = owner(source), owner(target)
            if mine == "core" and theirs != "core":
                broken.add(("the shared core imports no study", source, target))
            if "core" not in (mine, theirs) and mine != theirs:
                broken.add(("no study imports another", source, target))
            if _kind(source) in MODEL_MODULES and _kind(target) == LOSS_MODULE:
                broken.add(("models never import losses", source, target))
    return broken


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_study_is_one_folder_with_the_same_shape(graph):
    for study in STUDIES:
        present = {m.rsplit(".", 1)[1] for m in graph if m.startswith(f"latentlab.{study}.")}
        missing = {"data", "model", "losses", "pipeline", "plots"} - present
        assert not missing, f"latentlab/{study}/ lacks {sorted(missing)}.py (every study has the same shape)"


def test_package_inits_import_nothing(graph):
    """A package ``__init__`` that imported its modules would make every module depend on its siblings."""
    for module, path in modules().items():
        if path.name == "__init__.py":
            assert graph[module] <= {"latentlab"}, f"{path} imports {sorted(graph[module])}"


def test_no_import_circles(graph):
    assert cycles(graph) == []


def test_study_rules_hold_apart_from_the_named_known_breaks(graph):
    found = violations(graph)
    new = sorted(found - KNOWN_VIOLATIONS)
    assert not new, "import rules broken:\n" + "\n".join(f"  {rule}: {a} imports {b}" for rule, a, b in new)
    fixed = sorted(KNOWN_VIOLATIONS - found)
    assert not fixed, f"fixed, strike them off KNOWN_VIOLATIONS: {fixed}"


# The checker itself: it must find what is there and nothing where nothing is.

def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_a_circle_through_a_function_level_import(tmp_path, monkeypatch):
    _write(tmp_path, {"__init__.py": "", "sweep/__init__.py": "", "sweep/results.py": "def f():\n    from latentlab.sweep import plots\n",
                      "sweep/plots.py": "from latentlab.sweep.results import f\n"})
    monkeypatch.setitem(globals(), "LIB", tmp_path)
    assert cycles(import_graph()) == [["latentlab.sweep.plots", "latentlab.sweep.results"]]


def test_checker_reads_relative_imports_and_finds_each_rule(tmp_path, monkeypatch):
    _write(tmp_path, {"__init__.py": "", "sfmn/__init__.py": "", "setvae/__init__.py": "",
                      "sfmn/model.py": "from . import losses\n", "sfmn/losses.py": "",
                      "setvae/model.py": "from latentlab.sfmn.model import x\n",
                      "report.py": "def f():\n    from latentlab.setvae import model\n"})
    monkeypatch.setitem(globals(), "LIB", tmp_path)
    assert violations(import_graph()) == {
        ("models never import losses", "latentlab.sfmn.model", "latentlab.sfmn.losses"),
        ("no study imports another", "latentlab.setvae.model", "latentlab.sfmn.model"),
        ("the shared core imports no study", "latentlab.report", "latentlab.setvae.model"),
        ("the shared core imports no study", "latentlab.report", "latentlab.setvae"),
    }
