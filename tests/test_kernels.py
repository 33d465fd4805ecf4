"""``make notebooks`` runs papermill over an encrypted kernel connection: no TCP warning on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import zmq
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
WARNING = "Kernel is running over TCP without encryption"


def tiny_notebook(path: Path) -> Path:
    nb = new_notebook(cells=[new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_the_make_target_uses_it():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nnotebooks: setup\n", 1)[1].split("\n\n", 1)[0]
    assert "-m latentlab.kernels $$nb --cwd notebooks" in recipe and "jupytext --quiet --sync $$nb" in recipe


@pytest.mark.skipif(not zmq.has("curve"), reason="pyzmq without CurveZMQ: nothing to encrypt with")
def test_in_place_run_is_encrypted_and_quiet_where_the_papermill_cli_warns(tmp_path):
    notebook = tiny_notebook(tmp_path / "nb.ipynb")
    run = subprocess.run([sys.executable, "-m", "latentlab.kernels", str(notebook)], capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert WARNING not in run.stderr
    assert nbformat.read(str(notebook), as_version=4).cells[0].outputs[0]["text"] == "42\n"

    plain = subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(tmp_path / "out.ipynb"),
                            "-k", "python3", "--no-progress-bar"], capture_output=True, text=True, timeout=240)
    assert plain.returncode == 0 and WARNING in plain.stderr  # the warning this module removes
