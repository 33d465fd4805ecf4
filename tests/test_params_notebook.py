"""Parameters as a notebook run reads them: through papermill, from the cells that set them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
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
from latentlab.studies.recon import ReconParams  # the lightest study module to import
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


@pytest.mark.parametrize("notebook, typo, nearest", [("01_h2_leakage.ipynb", "chip_efect", "chip_effect")])
def test_a_typo_fails_a_real_study_notebook(tmp_path, notebook, typo, nearest):
    """The committed study notebook itself: it fails in its third cell, before any work."""
    result = run_papermill(ROOT / "notebooks" / notebook, tmp_path / notebook, "--cwd", str(ROOT / "notebooks"),
                           "-p", typo, "0")
    assert result.returncode != 0
    assert f"unknown parameter(s) ['{typo}'] in papermill's injected parameters" in result.stderr
    assert f"did you mean '{nearest}'?" in result.stderr
