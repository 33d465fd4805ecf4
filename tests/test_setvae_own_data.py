"""Study 4 on a stranger's data: the notebook, run by papermill on real-format files generated here
(PhysioNet-2012 set-a text files; a long CSV under other column names, times in minutes), must load them,
report what the step cap kept, train the fixed ("after") configuration so that it learns (training AUROC
well above chance) and name the right problem — with no code change between the two formats."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from make_clinical_examples import LONG_COLUMNS, make_examples  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "04_setvae.ipynb"
# Three seeds, judged on their mean: at `quick` on 220 stays one "after" run in three can still collapse and
# stall (measured 2026-12-03: long CSV seed 0 train AUROC 0.617 with 0/8 active units, seeds 1–2 0.892/0.846),
# so one seed tests the seed's luck, not whether the fixed configuration learns a stranger's data.
SMALL = {"references": ["after (seed)"], "ablation": [], "extras": [], "baselines": ["logistic"], "seeds": [0, 1, 2]}


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return make_examples(tmp_path_factory.mktemp("clinical"), stays=220, seed=11)


def _run(tmp_path: Path, **parameters) -> dict:
    out = tmp_path / "run"
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), kernel_name="python3", cwd=str(ROOT / "notebooks"),
                        parameters={"preset": "quick", "output_dir": str(out), "progress": False, **SMALL, **parameters},
                        progress_bar=False)
    return json.loads((out / "metrics.json").read_text())


def _check_learned(metrics: dict) -> None:
    after = metrics["after (seed)"]
    assert after["train_auroc_mean"] > 0.7, after  # learned its own training stays
    assert after["auroc_mean"] > 0.65, after  # and it carries over to held-out stays
    assert "underfitting" not in after["problems"] and "overfitting" not in after["problems"], after["problems"]
    assert metrics["truncation"]["observations_dropped_share"] < 0.5
    assert any(line.startswith("after (seed):") and "learned the task" in line for line in metrics["conclusions"])


def test_physionet_text_files_through_the_notebook(examples, tmp_path):
    metrics = _run(tmp_path, data=str(examples["set-a"]), outcomes=str(examples["outcomes"]))
    assert metrics["n_stays"] == 220 and metrics["data"]["variables"] == 37
    _check_learned(metrics)


def test_long_csv_with_other_column_names_through_the_notebook(examples, tmp_path):
    metrics = _run(tmp_path, data=str(examples["events"]), outcomes=str(examples["labels"]), columns=LONG_COLUMNS,
                   time_unit="minutes", label_column="died")
    assert metrics["n_stays"] == 220
    _check_learned(metrics)


def test_a_cap_that_drops_most_data_warns_in_output_and_metrics(examples, tmp_path):
    metrics = _run(tmp_path, data=str(examples["set-a"]), outcomes=str(examples["outcomes"]), max_steps=8,
                   set_window_minutes=0, min_updates=0, epochs=1, baselines=[])
    assert metrics["truncation"]["observations_dropped_share"] > 0.5
    assert metrics["warnings"][0].startswith("WARNING: truncation drops most of the data")
    notebook = (tmp_path / "out.ipynb").read_text()
    assert "WARNING: truncation drops most of the data" in notebook
