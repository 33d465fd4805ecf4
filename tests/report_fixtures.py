"""Small synthetic ``runs/`` trees in the shape the four study notebooks write them.

Each study directory holds what its notebook leaves behind after ``make run``: ``metrics.json``
(with the numbers the report's headline reads and the notebook's conclusions), ``run_status.json``,
a key chart and a second chart as real PNGs, a few CSV tables (one with per-seed spread columns
that are empty at one seed) and an executed notebook (outputs stored, as papermill leaves them).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image, ImageDraw

from latentlab import io, report

RUN_INFO = {"git_commit": "0123456789abcdef", "git_dirty": False, "written_at": "2026-11-25T12:59:10+00:00"}

METRICS = {
    "h2": {
        "leakage_verdict": {"overall": "leakage", "probe": "linear", "splits": ["holdout Sample=36"],
                            "per_embedding": {"PCA": "leakage", "AE": "leakage"}},
        "leakage_auc": {"PCA": 0.8807, "AE": 0.8485, "mmd w=0.3": 0.5791},
        "best_mitigation": {"label": "mmd w=0.3", "leakage_auc": 0.5791, "biology": 0.981,
                            "biology_measure": "biology_accuracy", "biology_change_vs_ae": -0.019},
        "mitigation_goal_met": True,
        "conclusions": ["Verdict (holdout Sample=36, linear probe): **leakage** — the chip is encoded.",
                        "8 of 8 permutation p-values sit at their floor 0.048."],
    },
    "sfmn": {
        "models": {"sfmn": {"test_aupr": 0.0900, "test_aupr_sd": None, "n_folds": 2, "n_seeds": 1,
                            "gate_recovery_unseen": 0.379},
                   "erm": {"test_aupr": 0.0750, "test_aupr_sd": None},
                   "energy": {"test_aupr": 0.1060, "test_aupr_sd": None}},
        "success": [{"criterion": "gap ≤ 0.15", "verdict": "not met"}, {"criterion": "gates", "verdict": "met"},
                    {"criterion": "beats erm", "verdict": "not tested: one seed"}],
        "conclusions": ["Scope: 2 held-out cell line(s) of 8 × 1 seed(s).", "Best: energy."],
    },
    "recon": {
        "beagle_gap": {"best_arm": "D", "best_gamma": 5.0, "best_f1_common": 0.9477, "best_f1_rare": 0.9283,
                       "vote_gain_common": 0.0230, "beagle": True, "common_gap": 0.0146, "rare_gap": 0.0062},
        "verdicts": {"gamma=5": {"gamma": 5.0, "measured_ranking": ["D", "B", "C", "E", "A"],
                                 "seed_ranking": ["C", "D", "B", "A"],
                                 "seed_ranking_confirmed": "not tested: 1 seed per arm"}},
        "conclusions": ["gamma=5: measured ranking D > B > C > E > A."],
    },
    "setvae": {
        "before (seed)": {"collapsed_seeds": "1/1", "auroc_mean": 0.8171},
        "after (seed)": {"collapsed_seeds": "0/1", "auroc_mean": 0.8400},
        "baselines": {"logistic (summary stats)": {"auroc": 0.88}, "GRU-D": {"auroc": 0.757}},
        "conclusions": ["sets: one per distinct timestamp.",
                        "after vs before, test AUROC: not resolved (needs >= 2 seeds each)"],
    },
}
HEADLINE_NUMBERS = {"h2": "0.881", "sfmn": "0.106", "recon": "0.948", "setvae": "0.840"}


def write_png(path: Path, width: int = 640, height: int = 320, label: str = "") -> None:
    """A real PNG (bars and a label), so the browser has something to decode."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, value in enumerate((0.8, 0.55, 0.9, 0.3)):
        x = 40 + i * (width - 80) // 4
        draw.rectangle([x, height - 30 - int(value * (height - 60)), x + 60, height - 30], fill=(70, 130, 180))
    draw.text((10, 10), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def write_executed_notebook(path: Path, title: str) -> None:
    """A notebook as papermill leaves it: outputs stored, including an image and a widget with a text fallback."""
    cells = [new_markdown_cell(f"# {title}\n\nThe gate satisfies $\\|g_c\\|_1 = 1$."),
             new_code_cell("print('AUC 0.881')", execution_count=1,
                           outputs=[new_output("stream", name="stdout", text="AUC 0.881\n")])]
    png = path.with_suffix(".cell.png")
    write_png(png, 300, 150, "cell chart")
    import base64
    cells.append(new_code_cell("chart", execution_count=2, outputs=[new_output(
        "display_data", data={"image/png": base64.b64encode(png.read_bytes()).decode(), "text/plain": "<chart>"})]))
    png.unlink()
    cells.append(new_code_cell("explorer", execution_count=3, outputs=[new_output(
        "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2,
                                                                           "version_minor": 0},
                              "text/plain": "VBox(children=(FloatSlider(value=0.5),))"})]))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    nbformat.write(nb, str(path))


def write_study(runs: Path, study: report.Study, notebook: str, seconds: float = 42.0) -> Path:
    directory = runs / study.directory
    metrics = {**METRICS[study.directory], "params": {"preset": "quick", "seed": 0, "seeds": [0]},
               "seconds": seconds, "run_info": RUN_INFO}
    io.write_json(directory / "metrics.json", metrics)
    io.write_json(directory / "run_status.json", {"study": study.directory, "notebook": notebook, "preset": "quick",
                                                  "ok": True, "seconds": seconds + 5,
                                                  "started": "2026-11-25T12:57:51+00:00", "error": "",
                                                  "failed_cell": None})
    write_png(directory / f"{study.key_chart}.png", label=f"{study.directory} key chart")
    write_png(directory / "other_chart.png", 480, 240, "another chart")
    rng = np.random.default_rng(0)
    io.write_csv(directory / f"{study.key_tables[0]}.csv", pd.DataFrame({
        "model": ["sfmn", "erm", "energy"], "test_aupr": rng.uniform(0, 1, 3), "test_aupr_sd": [np.nan] * 3,
        "meets_goal": [True, False, False], "note": ["a longer sentence that should wrap inside its cell", "", "x"]}))
    io.write_csv(directory / "history.csv", pd.DataFrame({"epoch": range(50), "loss": rng.uniform(size=50)}))
    write_executed_notebook(directory / f"{notebook}.ipynb", study.title)
    return directory


NOTEBOOKS = {"h2": "01_h2", "sfmn": "02_sfmn", "recon": "03_recon",
             "setvae": "04_setvae"}


def write_synthetic_runs(runs: Path) -> Path:
    """All four studies (written in reverse so folder order is not README order) and one finished sweep."""
    for study in reversed(report.STUDIES):
        write_study(runs, study, NOTEBOOKS[study.directory])
    sweep_dir = runs / "sweeps" / "setvae"
    io.write_csv(sweep_dir / "summary.csv", pd.DataFrame({
        "ablation": ["pre-norm", "pre-norm"], "metric": ["run.auroc", "run.kl_total"],
        "mean": [0.7123, 1.5], "sd": [0.0312, 0.2], "n": [3, 3]}))
    io.write_csv(sweep_dir / "status.csv", pd.DataFrame({"point": ["a", "b"], "ok": [True, False]}))
    write_png(sweep_dir / "summary.png", label="sweep summary")
    return runs


def write_wide_and_long_tables(runs: Path) -> Path:
    """A study directory with a 40-column table and a 300-row table (as Study 3's ablation grows)."""
    directory = write_study(runs, report.STUDIES[2], NOTEBOOKS["recon"])
    rng = np.random.default_rng(1)
    wide = pd.DataFrame({f"r2site_0.{i:02d}-0.{i + 1:02d}_mean": rng.uniform(size=6) for i in range(40)})
    wide.insert(0, "arm", list("ABCDEF"))
    io.write_csv(directory / "wide.csv", wide)
    io.write_csv(directory / "long.csv", pd.DataFrame({"site": range(300), "r2": rng.uniform(size=300)}))
    return directory
