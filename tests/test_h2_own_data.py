"""Study 1 on a user's own data, the way a stranger runs it: files in a documented format, column
names that are not the defaults, the notebook executed by papermill — and the verdict checked
against the truth the generator put in (chance without a chip effect, leakage with a strong one).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from latentlab.h2 import fixtures as scrna_fixtures

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks/01_h2.ipynb"
COLUMNS = dict(context_key="chip_id", condition_key="donor", biology_key="celltype",
               holdout=scrna_fixtures.HOLDOUT)
FAST = dict(epochs=4, n_boot=100, n_perm=20, mitigations=[], baselines=["harmony"], scib=False, progress=False)


def run_notebook(tmp_path: Path, data: Path | str, **parameters) -> dict:
    import papermill

    out = tmp_path / "run"
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, cwd=str(ROOT / "notebooks"),
                               parameters={"preset": "quick", "data": str(data), "output_dir": str(out),
                                           **COLUMNS, **FAST, **parameters})
    return json.loads((out / "metrics.json").read_text())


def digest(path: Path) -> str:
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def test_10x_directory_with_a_strong_chip_effect_reports_leakage(tmp_path):
    data = scrna_fixtures.write_10x_dataset(tmp_path / "tenx", chip_effect=0.8, library_shift=0.5)
    before = digest(data)
    metrics = run_notebook(tmp_path, data)
    verdict = metrics["leakage_verdict"]
    assert verdict["overall"] == "leakage", metrics["conclusions"]
    assert verdict["splits"] == ["holdout donor=D3"]
    assert metrics["conclusions"][0].startswith("Verdict (holdout donor=D3, linear probe): **leakage**")
    assert metrics["harmony"]["iterations"] > 1
    assert digest(data) == before  # the user's files are read, never rewritten


def test_h5ad_without_a_chip_effect_reports_chance(tmp_path):
    data = scrna_fixtures.write_h5ad_dataset(tmp_path / "cells.h5ad", chip_effect=0.0, library_shift=0.0)
    metrics = run_notebook(tmp_path, data)
    assert metrics["leakage_verdict"]["overall"] == "chance", metrics["conclusions"]
    assert metrics["skipped"] == []


@pytest.mark.parametrize("missing", ["biology_key"])
def test_own_data_without_a_cell_type_column_runs_and_says_what_it_skips(tmp_path, missing):
    data = scrna_fixtures.write_10x_dataset(tmp_path / "tenx", n_cells=300, n_genes=200, chip_effect=0.8,
                                            library_shift=0.5)
    metrics = run_notebook(tmp_path, data, **{missing: ""}, epochs=2, n_boot=50, n_perm=5)
    assert "knn_agreement" in metrics and "biology_accuracy" not in metrics
    assert any("biology_key is empty" in item for item in metrics["skipped"])


def test_the_readme_real_cells_command_runs(tmp_path):
    """README: -p data pbmc68k -p context_key phase -p condition_key "" -p biology_key bulk_labels."""
    metrics = run_notebook(tmp_path, "pbmc68k", context_key="phase", condition_key="", biology_key="bulk_labels",
                           holdout=None, epochs=2, n_boot=50, n_perm=5)
    assert metrics["leakage_verdict"]["splits"] == ["random"]
    assert any("condition_key is empty" in item for item in metrics["skipped"])
