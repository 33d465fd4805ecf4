"""Parameters as a notebook run reads them: through papermill, from the cells that set them."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).parents[1]
PAPERMILL = [sys.executable, "-m", "papermill", "-k", "python3", "--no-progress-bar"]

PARAMETERS_CELL = """\
preset = "quick"
seed = None
data = None
epochs = None
arms = None
"""
READ = """\
from latentlab.recon.pipeline import ReconParams  # the lightest study module to import
params = ReconParams.from_namespace(globals())
print("read", params.data, params.epochs, params.arms)
"""


def probe_notebook(path: Path, *extra_cells: str) -> Path:
    """A tiny notebook shaped like a study's: the tagged parameters cell, then the cell that reads it."""
    cells = [new_code_cell(PARAMETERS_CELL, metadata={"tags": ["parameters"]}), new_code_cell(READ)]
    cells += [new_code_cell(text) for text in extra_cells]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def run_papermill(notebook: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PAPERMILL, str(notebook), str(out), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=240)


def printed(notebook: Path) -> list[str]:
    nb = nbformat.read(str(notebook), as_version=4)
    return [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("name") == "stdout"]


def test_a_typo_fails_the_run_and_json_text_lists_are_read(tmp_path):
    nb = probe_notebook(tmp_path / "nb.ipynb")
    result = run_papermill(nb, tmp_path / "out.ipynb", "-p", "epoch", "3")
    assert result.returncode != 0
    assert "ParameterError" in result.stderr
    assert "unknown parameter(s) ['epoch'] in papermill's injected parameters" in result.stderr
    assert "did you mean 'epochs'?" in result.stderr
    ok = run_papermill(nb, tmp_path / "ok.ipynb", "-p", "epochs", "3", "-p", "arms", '["C"]')
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "read simulated 3 ['C']\n" in printed(tmp_path / "ok.ipynb")


def test_a_result_variable_named_like_a_parameter_is_not_read_on_rerun(tmp_path):
    """Cells run in JupyterLab order: parameters, read, a result called ``data``, read again, ..."""
    nb = probe_notebook(tmp_path / "nb.ipynb", 'from pathlib import Path\ndata = str(Path("/tmp/result"))', READ,
                        "epochs = 7", READ, PARAMETERS_CELL, READ)
    result = run_papermill(nb, tmp_path / "out.ipynb", "-p", "epochs", "5")
    assert result.returncode == 0, result.stderr[-2000:]
    reads = [t for t in printed(tmp_path / "out.ipynb") if t.startswith("read")]
    arms = "['A', 'B', 'C', 'D', 'E']"
    assert reads == [f"read simulated 5 {arms}\n",  # preset + papermill's value
                     f"read simulated 5 {arms}\n",  # `data`, a result, is not the parameter
                     f"read simulated 7 {arms}\n",  # a literal-only cell that sets a parameter counts
                     f"read simulated 3 {arms}\n"]  # rerunning the parameters cell resets to the preset


@pytest.mark.parametrize("notebook, typo, nearest", [("01_h2.ipynb", "chip_efect", "chip_effect")])
def test_a_typo_fails_a_real_study_notebook(tmp_path, notebook, typo, nearest):
    """The committed study notebook itself: it fails in its third cell, before any work."""
    result = run_papermill(ROOT / "notebooks" / notebook, tmp_path / notebook, "--cwd", str(ROOT / "notebooks"),
                           "-p", typo, "0")
    assert result.returncode != 0
    assert f"unknown parameter(s) ['{typo}'] in papermill's injected parameters" in result.stderr
    assert f"did you mean '{nearest}'?" in result.stderr


STUDY_PARAMS = {"01_h2": ("latentlab.h2.pipeline", "H2Params"),
                "02_sfmn": ("latentlab.sfmn.pipeline", "SFMNParams"),
                "03_recon": ("latentlab.recon.pipeline", "ReconParams"),
                "04_setvae": ("latentlab.setvae.pipeline", "SetVAEParams")}


def names_bound(source: str) -> set[str]:
    """Every name a cell binds (assignments, loop/with/comprehension targets, imports)."""
    bound: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return bound


@pytest.mark.parametrize("study", sorted(STUDY_PARAMS))
def test_no_cell_binds_a_parameter_name(study):
    """A result never shares a parameter's name (`data`, `beagle`, `ablation` were once both), so no
    reading of the notebook's globals — by a user, nbval or papermill — can take one for the other."""
    module, name = STUDY_PARAMS[study]
    fields = set(getattr(importlib.import_module(module), name).field_names())
    notebook = jupytext.read(ROOT / "notebooks" / f"{study}.py")
    clashes = {number: sorted(names_bound(c.source) & fields) for number, c in enumerate(notebook.cells)
               if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])}
    assert not {k: v for k, v in clashes.items() if v}


def stdout_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


def test_rerunning_the_reading_cell_after_the_whole_notebook_keeps_the_literals(tmp_path):
    """Study 3 run top to bottom in one kernel (history stored, as in JupyterLab), then results bound to the
    parameter names `data` and `beagle`, then the cell that reads the parameters run again: the
    parameters are still the literals of the parameters cell, not the results."""
    notebook = jupytext.read(ROOT / "notebooks" / "03_recon.py")
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = (parameters.source.replace("output_dir = None", f"output_dir = {str(tmp_path / 'out')!r}")
                         .replace("epochs = None", "epochs = 1").replace("beagle = None", "beagle = False"))
    reading = next(i for i, c in enumerate(notebook.cells) if "from_namespace(globals())" in c.source)
    cells = len(notebook.cells)
    show = "import json\nprint(json.dumps(params.to_dict(), sort_keys=True, default=str))"
    notebook.cells += [new_code_cell(show), new_code_cell("data, beagle = genotypes, beagle_run"),
                       new_code_cell(notebook.cells[reading].source), new_code_cell(show)]
    client = NotebookClient(notebook, kernel_name="python3", timeout=900,
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    with client.setup_kernel():
        for index in range(len(notebook.cells)):  # top to bottom, then: show, bind results, reread, show
            client.execute_cell(notebook.cells[index], index)
    before, after = stdout_of(notebook.cells[cells]), stdout_of(notebook.cells[cells + 3])
    read = json.loads(after)
    assert after == before
    assert read["data"] == "simulated" and read["beagle"] is False and read["epochs"] == 1
    assert read["output_dir"] == str(tmp_path / "out")
