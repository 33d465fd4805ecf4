"""Each study notebook is one source kept in two files: ``notebooks/NN_x.ipynb`` (with the executed
outputs nbval compares) and its jupytext percent-format twin ``notebooks/NN_x.py``. These tests fail
when the two disagree, when a notebook has no twin, and when an executed notebook carries noise
(library banners, log lines, htslib warnings) or markdown math that needs MathJax from the network.
"""

from __future__ import annotations

import logging
import re
import shutil
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest
from papermill.translators import PythonTranslator

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STUDIES = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

# what a reader must never see in an executed notebook: banners, library log lines, C-library warnings
NOISE = {
    "htslib warning": re.compile(r"\[[WE]::\w+\]"),
    "library log line": re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(INFO|WARNING|DEBUG)\]", re.M),
    "ASCII banner": re.compile(r"[█╗╔╝╚═║]{6,}"),
    "kernel transport warning": re.compile(r"Kernel is running over TCP"),
    "ANSI colour codes": re.compile(r"\x1b\[[0-9;]*m"),
}


def cells_of(notebook: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    """What the pair must agree on: each cell's type, source and tags (no tags = [])."""
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in notebook.cells]


def pair_differences(ipynb: Path, py: Path) -> list[str]:
    """Human-readable differences between a notebook and its text twin (empty when in sync)."""
    if not py.exists():
        return [f"{py.name} is missing (create it: jupytext --sync {ipynb.name})"]
    left, right = cells_of(jupytext.read(ipynb)), cells_of(jupytext.read(py))
    problems = []
    if len(left) != len(right):
        problems.append(f"{ipynb.name} has {len(left)} cells, {py.name} has {len(right)}")
    for number, (a, b) in enumerate(zip(left, right, strict=False)):
        for what, x, y in zip(("type", "source", "tags"), a, b, strict=True):
            if x != y:
                problems.append(f"cell {number}, {what}: {ipynb.name} has {str(x)[:60]!r}, "
                                f"{py.name} has {str(y)[:60]!r}")
    return problems


def test_every_notebook_has_a_twin_and_the_config_pairs_them():
    assert STUDIES == ["01_h2", "02_sfmn", "03_recon", "04_setvae"]
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py")) == STUDIES
    config = tomllib.loads((ROOT / "jupytext.toml").read_text())
    assert config["formats"] == "notebooks///ipynb,notebooks///py:percent"
    assert not list((ROOT / "tools").glob("build_*.py")), "the notebook builders are gone: edit the notebooks"
    assert not (ROOT / "tools" / "nbbuild.py").exists()


@pytest.mark.parametrize("study", STUDIES)
def test_the_pair_agrees(study):
    problems = pair_differences(NOTEBOOKS / f"{study}.ipynb", NOTEBOOKS / f"{study}.py")
    assert not problems, "\n".join([f"{study}: run `jupytext --sync notebooks/{study}.ipynb`", *problems])


def test_a_drifted_pair_is_caught(tmp_path):
    """Edit the twin only (a source line, a tag, a new cell): each drift is reported with its cell."""
    study = STUDIES[0]
    ipynb = shutil.copy(NOTEBOOKS / f"{study}.ipynb", tmp_path / f"{study}.ipynb")
    py = tmp_path / f"{study}.py"
    shutil.copy(NOTEBOOKS / f"{study}.py", py)
    assert pair_differences(Path(ipynb), py) == []

    text = py.read_text()
    py.write_text(text.replace('preset = "quick"', 'preset = "standard"', 1))
    assert any(p.startswith("cell 2, source:") for p in pair_differences(Path(ipynb), py))

    py.write_text(text.replace('# %% tags=["parameters"]', "# %%", 1))
    assert any(p.startswith("cell 2, tags:") for p in pair_differences(Path(ipynb), py))

    py.write_text(text + '\n# %%\nprint("added only to the twin")\n')
    assert any("cells" in p for p in pair_differences(Path(ipynb), py))

    py.unlink()
    assert "is missing" in pair_differences(Path(ipynb), py)[0]


@pytest.mark.parametrize("study", STUDIES)
def test_papermill_reads_every_parameter_line(study, caplog):
    """papermill's parser skips a line with two '=' (e.g. in a trailing comment) and logs 'Unable to parse'."""
    notebook = jupytext.read(NOTEBOOKS / f"{study}.py")
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    with caplog.at_level(logging.WARNING, logger="papermill"):
        parsed = [p.name for p in PythonTranslator.inspect(cell)]
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assigned = [line.split("=", 1)[0].strip() for line in cell.source.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert parsed == assigned


@pytest.mark.parametrize("study", STUDIES)
def test_markdown_needs_no_mathjax(study):
    """The HTML export renders offline: math is Unicode/HTML, never $...$ waiting for MathJax."""
    notebook = jupytext.read(NOTEBOOKS / f"{study}.py")
    math = [c.source[:80] for c in notebook.cells if c.cell_type == "markdown" and re.search(r"\$[^$\s][^$]*\$", c.source)]
    assert not math


def noise_in(notebook: nbformat.NotebookNode) -> list[str]:
    """Every stderr stream and every noisy text output of an executed notebook, with its cell."""
    found = []
    for number, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else \
                "".join(str(v) for k, v in output.get("data", {}).items() if k == "text/plain")
            if output.get("name") == "stderr":
                found.append(f"cell {number}: stderr {text[:120]!r}")
            found += [f"cell {number}: {kind} {text[:120]!r}" for kind, pattern in NOISE.items()
                      if pattern.search(text)]
    return found


@pytest.mark.parametrize("study", STUDIES)
def test_the_executed_notebook_has_no_noise(study):
    found = noise_in(nbformat.read(NOTEBOOKS / f"{study}.ipynb", as_version=4))
    assert not found, "\n".join(found)


def test_the_noise_check_catches_banners_logs_and_htslib():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="\x1b[34m\n████████╗██╗███╗\n"),
        nbformat.v4.new_output("stream", name="stdout", text="2026-11-25 11:42:35 [INFO]: Have set the random seed\n"),
        nbformat.v4.new_output("stream", name="stderr", text="[W::vcf_parse] Contig '22' is not defined\n"),
        nbformat.v4.new_output("stream", name="stdout", text="AUROC 0.84 over 1 seed\n"),
    ])])
    found = noise_in(notebook)
    assert [f for f in found if "ASCII banner" in f] and [f for f in found if "library log line" in f]
    assert [f for f in found if "htslib warning" in f] and [f for f in found if "stderr" in f]
    assert not [f for f in found if "AUROC" in f]
