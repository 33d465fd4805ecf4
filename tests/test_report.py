"""runs/index.html gathers each study's tables, charts and notebook links."""

from __future__ import annotations

import pandas as pd

from latentlab import io, report


def test_index_lists_tables_charts_and_notebooks(tmp_path):
    study = tmp_path / "h2_leakage"
    io.write_json(study / "metrics.json", {"params": {"preset": "standard", "seed": 0}, "seconds": 42.0})
    io.write_csv(study / "verdict.csv", pd.DataFrame({"label": ["mmd w=0.3"], "meets_goal": [True]}))
    io.write_csv(study / "history.csv", pd.DataFrame({"epoch": [0]}))
    (study / "tradeoff.png").write_bytes(b"\x89PNG")
    (study / "01_h2_leakage.ipynb").write_text("{}")
    page = report.build_index(tmp_path).read_text()
    assert "run time 42 s" in page and "mmd w=0.3" in page
    assert 'src="h2_leakage/tradeoff.png"' in page and 'href="h2_leakage/01_h2_leakage.ipynb"' in page
    assert "<h3>history" not in page  # long per-epoch logs stay out of the summary


def test_empty_runs_directory_says_what_to_do(tmp_path):
    assert "make run" in report.build_index(tmp_path).read_text()
