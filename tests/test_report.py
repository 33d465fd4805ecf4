"""runs/index.html gathers each study's tables, charts and notebook links."""

from __future__ import annotations

import pandas as pd

from latentlab import io, report


def test_index_lists_tables_charts_and_notebooks(tmp_path):
    study = tmp_path / "h2_leakage"
    io.write_json(study / "metrics.json", {"params": {"preset": "standard", "seed": 0}, "seconds": 42.0})
    io.write_csv(study / "verdict.csv", pd.DataFrame({"label": ["mmd w=0.3"], "meets_goal": [True]}))
    io.write_csv(study / "history.csv", pd.DataFrame({"epoch": [0]}))
    io.write_csv(study / "ablations.csv", pd.DataFrame())  # a table switched off: no columns at all
    (study / "tradeoff.png").write_bytes(b"\x89PNG")
    (study / "01_h2_leakage.ipynb").write_text("{}")
    page = report.build_index(tmp_path).read_text()
    assert "run time 42 s" in page and "mmd w=0.3" in page
    assert 'src="h2_leakage/tradeoff.png"' in page and 'href="h2_leakage/01_h2_leakage.ipynb"' in page
    assert "<h3>history" not in page  # long per-epoch logs stay out of the summary
    assert "<h3>ablations" not in page


def test_empty_runs_directory_says_what_to_do(tmp_path):
    assert "make run" in report.build_index(tmp_path).read_text()


def test_index_includes_finished_sweeps(tmp_path):
    sweep_dir = tmp_path / "sweeps" / "setvae_ablation"
    summary = pd.DataFrame({"ablation": ["pre-norm", "pre-norm"], "metric": ["run.auroc", "run.kl_total"],
                            "mean": [0.7123, 1.5], "sd": [0.0312, 0.2], "n": [3, 3]})
    io.write_csv(sweep_dir / "summary.csv", summary)
    io.write_csv(sweep_dir / "status.csv", pd.DataFrame({"point": ["a", "b"], "ok": [True, False]}))
    (sweep_dir / "summary.png").write_bytes(b"\x89PNG")
    page = report.build_index(tmp_path).read_text()
    assert "sweep: setvae_ablation" in page and "1/2 points complete" in page
    assert "0.712 ± 0.031" in page and 'src="sweeps/setvae_ablation/summary.png"' in page
    assert "0 studies, 1 sweeps" in page
