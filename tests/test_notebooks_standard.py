"""Each study notebook runs end to end at the `standard` preset — standard data sizes, folds, seeds
and arms — with its training cut to a single epoch, so that CI exercises the code paths `make run`
takes (issue 10: Study 2 had never run at `standard` through its notebook, and died there).

Chart sizes beyond what one epoch produces are covered by ``test_chart_sizes.py``.
"""

from __future__ import annotations

import json

import nbformat
import papermill as pm
import pytest

from latentlab.params import project_root

ROOT = project_root()

# Only the compute is cut: epochs, resampling counts, and seeds down to two (still more than one, so
# every spread and per-seed table takes its multi-seed path). Data sizes, folds, arms stay standard.
TINY_COMPUTE: dict[str, dict] = {
    "01_h2": {"epochs": 1, "n_boot": 20, "n_perm": 5},
    "02_sfmn": {"epochs": 2, "phase2_epochs": 1, "patience": 1, "seeds": [0, 1]},
    "03_recon": {"epochs": 1, "patience": 1, "n_seeds": 2},
    "04_setvae": {"epochs": 1, "min_updates": 0, "grud_epochs": 1, "seeds": [0, 1], "ablation_seeds": 2},
}


def problems(executed: nbformat.NotebookNode) -> list[str]:
    """Error outputs, and tracebacks a display hook printed instead of raising (altair does that)."""
    found = []
    for i, cell in enumerate(executed.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            if out.get("output_type") == "error" or "Traceback" in text or "MaxRowsError" in text:
                found.append(f"cell {i}: {out.get('ename') or text[:300]}")
    return found


@pytest.mark.parametrize("notebook", sorted(TINY_COMPUTE))
def test_notebook_runs_at_standard_shapes(notebook, tmp_path):
    out_dir = tmp_path / "out"
    executed_path = tmp_path / f"{notebook}.ipynb"
    pm.execute_notebook(ROOT / "notebooks" / f"{notebook}.ipynb", executed_path, kernel_name="python3",
                        cwd=str(ROOT), progress_bar=False,
                        parameters={"preset": "standard", "output_dir": str(out_dir), **TINY_COMPUTE[notebook]})
    executed = nbformat.read(str(executed_path), as_version=4)
    assert problems(executed) == []
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["params"]["preset"] == "standard"
