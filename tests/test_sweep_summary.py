"""Reading a sweep: the summary over seeds, its chart, the validated loader, and the notebooks' section.

The tables under ``tests/fixtures/sweeps/`` are real ``results.csv`` files written by ``latentlab
sweep`` over the study notebooks at (shortened) quick presets; their grids sit beside them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import altair as alt
import IPython.display
import nbformat
import numpy as np
import pandas as pd
import pytest

from latentlab.h2 import pipeline as h2
from latentlab.recon import pipeline as recon
from latentlab.setvae import pipeline as setvae
from latentlab.sfmn import pipeline as sfmn
from latentlab.sweep import grid as sweep_grid
from latentlab.sweep import plots as sweep_plots
from latentlab.sweep import results as sweeps

ROOT = Path(__file__).parents[1]


def vega_lite(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec as written (VegaFusion, enabled for rendering, only compiles to Vega)."""
    with alt.data_transformers.enable("default"):
        return chart.to_dict()
FIXTURES = Path(__file__).parent / "fixtures" / "sweeps"


def hand_table() -> pd.DataFrame:
    """arms {A, C} × gammas {5, 2.5} × 3 seeds with values whose mean and sd are known by hand."""
    rows = []
    for arm, base in (("A", 0.5), ("C", 0.7)):
        for gamma, shift in ((5.0, 0.0), (2.5, 0.1)):
            for seed, step in zip((0, 1, 2), (-0.1, 0.0, 0.1), strict=True):
                rows.append({"point": f"arms={arm}__gammas={gamma}__seed={seed}", "param.preset": "quick",
                             "param.arms": arm, "param.gammas": gamma, "param.seed": seed,
                             "run.f1_rare": base + shift + step,  # mean base + shift, sd 0.1
                             "run.f1_common": 0.9,  # constant: sd 0
                             "run.f1_overall": math.nan if seed == 2 and arm == "C" else base,  # one missing
                             "verdicts.ok": seed == 0})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- summarise


def test_summary_is_mean_sd_and_n_over_seeds_per_other_axes():
    summary = sweeps.summarise(hand_table())
    assert list(summary.columns) == ["arms", "gammas", "metric", "mean", "sd", "n"]
    assert len(summary) == 2 * 2 * 3  # arms × gammas × the three default Study 3 metrics
    rare = summary[summary.metric == "run.f1_rare"].set_index(["arms", "gammas"])
    assert rare.loc[("A", 5.0), "mean"] == pytest.approx(0.5)
    assert rare.loc[("C", 2.5), "mean"] == pytest.approx(0.8)
    assert np.allclose(rare["sd"], 0.1) and (rare["n"] == 3).all()
    common = summary[summary.metric == "run.f1_common"]
    assert np.allclose(common["sd"], 0.0)
    overall = summary[summary.metric == "run.f1_overall"].set_index(["arms", "gammas"])
    assert overall.loc[("C", 5.0), "n"] == 2 and overall.loc[("A", 5.0), "n"] == 3  # NaN not counted


def test_summary_named_metrics_globs_booleans_and_no_axes():
    table = hand_table()
    summary = sweeps.summarise(table, ["verdicts.ok", "run.f1_r*"], by=[])
    assert list(summary.columns) == ["metric", "mean", "sd", "n"]
    assert list(summary.metric) == ["verdicts.ok", "run.f1_rare"]
    ok = summary.set_index("metric").loc["verdicts.ok"]
    assert ok["mean"] == pytest.approx(4 / 12) and ok["n"] == 12  # a boolean averages to a share
    one_seed = sweeps.summarise(table[table["param.seed"] == 0], ["run.f1_rare"])
    assert one_seed["sd"].isna().all() and (one_seed["n"] == 1).all()  # one seed: no sd, not 0


def test_summary_refuses_unknown_and_non_numeric_metrics():
    table = hand_table().assign(note="text")
    with pytest.raises(sweeps.ResultsError, match=r"metric 'run.f1_typo' matches no column"):
        sweeps.summarise(table, ["run.f1_typo"])
    with pytest.raises(sweeps.ResultsError, match=r"metric column 'note' is not numeric \(e.g. 'text'\)"):
        sweeps.summarise(table, ["note"])
    with pytest.raises(sweeps.ResultsError, match=r"cannot group by \['param.depth'\]"):
        sweeps.summarise(table, by=["param.depth"])


@pytest.mark.parametrize("columns, expected", [
    (["run.f1_rare", "run.f1_overall", "run.f1_common", "verdicts.x"], ["run.f1_overall", "run.f1_rare", "run.f1_common"]),
    (["leakage_auc.AE", "leakage_auc.PCA", "leakage_auc.mmd w=0.3", "biology_accuracy.AE", "mitigation_goal_met"],
     ["leakage_auc.AE", "leakage_auc.PCA", "biology_accuracy.AE", "mitigation_goal_met"]),
    (["models.sfmn.test_aupr", "models.erm.test_aupr", "models.sfmn.gap"], ["models.sfmn.test_aupr", "models.erm.test_aupr"]),
    (["before (seed).auroc_mean", "before (seed).auroc_std", "before (seed).active_ratio_mean"],
     ["before (seed).auroc_mean", "before (seed).active_ratio_mean"]),
    (["constant", "square", "seed", "seconds", "x_sd", "nested.double"], ["square", "nested.double", "constant"]),
])
def test_default_metrics_per_study(columns, expected):
    table = pd.DataFrame({c: [1.0, 2.0] for c in columns}).assign(**{"point": ["a", "b"], "param.seed": [0, 1]})
    table["constant"] = 1.0
    assert sweeps.default_metrics(table) == expected


def test_no_metric_to_summarise_is_an_error():
    table = pd.DataFrame({"point": ["a", "b"], "param.seed": [0, 1], "seconds": [1.0, 2.0], "label": ["x", "y"]})
    with pytest.raises(sweeps.ResultsError, match="no numeric metric column in the sweep's table"):
        sweeps.default_metrics(table)


def test_format_summary_is_one_row_per_configuration():
    wide = sweeps.format_summary(sweeps.summarise(hand_table()))
    assert list(wide.columns) == ["arms", "gammas", "run.f1_overall", "run.f1_rare", "run.f1_common", "n"]
    row = wide[(wide.arms == "A") & (wide.gammas == 5.0)].iloc[0]
    assert row["run.f1_rare"] == "0.500 ± 0.100" and row["n"] == 3


def test_unstack_metrics_turns_per_model_columns_into_rows():
    table = pd.DataFrame({"point": ["p0", "p1"], "param.seeds": [0, 1], "models.sfmn.test_aupr": [0.3, 0.4],
                          "models.erm.test_aupr": [0.2, 0.25], "models.sfmn.gap": [0.1, 0.2],
                          "models.erm.gap": [0.05, math.nan]})
    long = sweeps.unstack_metrics(table, {"aupr": "models.*.test_aupr", "gap": "models.*.gap"}, key="model")
    assert len(long) == 4 and set(long.model) == {"sfmn", "erm"}
    assert long.set_index(["point", "model"]).loc[("p1", "erm"), "aupr"] == 0.25
    with pytest.raises(sweeps.ResultsError, match=r"no column of the results table matches 'models.\*.auroc'"):
        sweeps.unstack_metrics(table, {"auroc": "models.*.auroc"}, key="model")


@pytest.mark.parametrize("by", [["param.arms", "param.gammas"], ["param.gammas"], ["param.arms"], []])
def test_summary_chart_has_a_panel_per_metric(by):
    summary = sweeps.summarise(hand_table(), by=by)
    spec = vega_lite(sweep_plots.summary_chart(summary))
    assert spec["facet"]["field"] == "metric" and len(spec["spec"]["layer"]) >= 2
    assert "Sweep summary" in str(spec["title"])


# --------------------------------------------------------------------------- grids and collect


def test_grid_metrics_key_is_validated(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("grid: {x: [1]}\nmetrics: [square, 'nested.*']\n")
    assert sweep_grid.read_grid(path).metrics == ["square", "nested.*"]
    path.write_text("grid: {x: [1]}\nmetrics: square\n")
    with pytest.raises(sweep_grid.GridError, match="'metrics' must be a non-empty list"):
        sweep_grid.read_grid(path)
    path.write_text("grid: {x: [1]}\nmetrics: []\n")
    with pytest.raises(sweep_grid.GridError, match="'metrics' must be a non-empty list"):
        sweep_grid.read_grid(path)


def fake_point(sweep_dir: Path, parameters: dict, metrics: dict) -> None:
    """A finished point as run_sweep leaves it (done.json + the study's metrics.json), without papermill."""
    point = sweep_dir / sweep_grid.GridPoint(parameters).key
    point.mkdir(parents=True)
    (point / "metrics.json").write_text(json.dumps({"params": parameters, **metrics}))
    (point / "done.json").write_text(json.dumps({"parameters": parameters, "seconds": 1.0}))


def test_collect_flattens_list_parameters_and_writes_the_summary(tmp_path):
    out = tmp_path / "sweep"
    for arm in ("A", "C"):
        for seed in (0, 1):
            fake_point(out, {"preset": "quick", "arms": [arm], "gammas": [5.0], "seed": seed},
                       {"run": {"arm": arm, "gamma": 5.0, "f1_rare": 0.5 + seed / 10, "f1_common": 0.9,
                                "f1_overall": 0.8}, "summary": [{"arm": arm}]})
    (out / "grid.yaml").write_text("grid: {arms: [[A], [C]], seed: [0, 1]}\nmetrics: [run.f1_rare]\n")
    table = sweeps.collect(out)
    assert sorted(table["param.arms"]) == ["A", "A", "C", "C"] and set(table["param.gammas"]) == {5.0}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.metric.unique()) == ["run.f1_rare"]  # the grid's metrics: key wins over the defaults
    assert summary["mean"].tolist() == pytest.approx([0.55, 0.55]) and summary["n"].tolist() == [2, 2]
    assert (out / "summary.png").stat().st_size > 0 and (out / "summary.html").exists()
    reread = sweeps.load_results(out, study=recon.ReconParams)
    assert reread["param.arms"].tolist() == table["param.arms"].tolist()


def test_collect_with_a_metric_the_grid_names_wrongly_keeps_the_results(tmp_path):
    out = tmp_path / "sweep"
    fake_point(out, {"x": 1, "seed": 0}, {"square": 1})
    (out / "grid.yaml").write_text("grid: {x: [1]}\nmetrics: [cube]\n")
    with pytest.raises(sweeps.ResultsError, match="metric 'cube' matches no column"):
        sweeps.collect(out)
    assert (out / "results.csv").exists() and not (out / "summary.csv").exists()


# --------------------------------------------------------------------------- the loader


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", r"missing: no such sweep directory or results file"),
    (lambda d: (d / "empty_dir").mkdir() or d / "empty_dir",
     r"empty_dir: no results.csv or results.parquet in this directory; no finished grid point"),
    (lambda d: write(d / "pending" / "p1" / "done.json", "{}").parents[1],
     r"pending: no results.csv .* 1 finished point\(s\) are there: collect them"),
    (lambda d: write(d / "results.txt", "point\n"), r"results.txt: expected a sweep's results.csv or results.parquet"),
    (lambda d: write(d / "results.csv", ""), r"results.csv: empty file, not a results table"),
    (lambda d: write(d / "results.csv", "point,square\na,1\n"),
     r"results.csv: not a sweep results table: no 'param.<name>' column"),
    (lambda d: write(d / "results.csv", "x,param.seed\n1,0\n"), r"not a sweep results table: no 'point' column"),
    (lambda d: write(d / "results.csv", "point,param.seed,square\n"), r"results.csv: the results table has no rows"),
    (lambda d: write(d / "results.csv", "point,param.seed\na,0\na,1\n"), r"grid point\(s\) \['a'\] appear more than once"),
    (lambda d: write(d / "results.parquet", "not parquet"), r"results.parquet: cannot be read as a results table"),
])
def test_loader_errors_name_the_file_and_what_was_expected(tmp_path, make, message):
    with pytest.raises(sweeps.ResultsError, match=message):
        sweeps.load_results(make(tmp_path))


def test_loader_refuses_another_studys_table_and_an_empty_path():
    with pytest.raises(sweeps.ResultsError, match=r"parameter column\(s\) \['chip_effect', 'n_boot', 'n_perm', 'scib'\] are not ReconParams"):
        sweeps.load_results(FIXTURES / "h2", study=recon.ReconParams)
    with pytest.raises(sweeps.ResultsError, match="no sweep given"):
        sweeps.load_results("  ")


def test_loader_reads_directory_csv_parquet_and_root_relative_paths(tmp_path, monkeypatch):
    table = sweeps.load_results(FIXTURES / "recon")
    assert len(table) == 8
    table.astype({c: str for c in table.columns if table[c].dtype == object}).to_parquet(tmp_path / "results.parquet")
    assert sweeps.load_results(tmp_path).shape == table.shape
    monkeypatch.chdir(tmp_path)  # as a notebook run from notebooks/: the path is the project's
    assert len(sweeps.load_results("tests/fixtures/sweeps/recon/results.csv")) == 8
    old_style = tmp_path / "old" / "results.csv"
    old_style.parent.mkdir()
    pd.DataFrame({"point": ["p"], "param.arms": ["['A', 'B']"], "param.gammas": ["[5.0]"], "m": [1]}).to_csv(old_style)
    old = sweeps.load_results(old_style)
    assert old["param.arms"].iloc[0] == "A+B" and old["param.gammas"].iloc[0] == 5.0


# --------------------------------------------------------------------------- the studies' readers, on real sweeps


def test_study3_sweep_reads_as_arms_by_gamma_with_f1_over_seeds():
    results = sweeps.load_results(FIXTURES / "recon", study=recon.ReconParams)
    summary = recon.sweep_summary(results)
    assert set(summary.metric) == {"f1_rare", "f1_common", "f1_overall"} and (summary["n"] == 2).all()
    raw = results[(results["run.arm"] == "C") & (results["run.gamma"] == 2.5)]["run.f1_rare"]
    c25 = summary[(summary.arm == "C") & (summary.gamma == 2.5) & (summary.metric == "f1_rare")].iloc[0]
    assert c25["mean"] == pytest.approx(raw.mean()) and c25["sd"] == pytest.approx(raw.std(ddof=1))
    table = recon.sweep_table(summary)
    assert list(table.columns) == ["arm", "γ", "rare F1", "common F1", "overall F1", "seeds"] and len(table) == 4
    assert vega_lite(sweep_plots.summary_chart(summary, x="arm", color="gamma"))["facet"]["field"] == "metric"


def test_study3_sweep_without_run_columns_says_what_is_needed():
    results = sweeps.load_results(FIXTURES / "recon").drop(columns=["run.f1_rare"])
    with pytest.raises(sweeps.ResultsError, match=r"no \['run.f1_rare'\] column\(s\): .*one arm at one γ"):
        recon.sweep_summary(results)


def test_point_metrics_only_for_one_arm_at_one_gamma():
    summary = pd.DataFrame({"arm": ["A", "Beagle 5.4"], "gamma": [5.0, math.nan], "n_seeds": [1, 1],
                            "f1_rare_mean": [0.5, 0.9], "f1_rare_sd": [math.nan, math.nan], "best_epoch_mean": [2, 0]})
    assert recon.point_metrics(summary) == {"arm": "A", "gamma": 5.0, "n_seeds": 1, "f1_rare": 0.5}
    assert recon.point_metrics(pd.concat([summary, summary.assign(arm="C")])) is None


def test_study4_sweep_reads_one_row_per_ablated_configuration():
    results = sweeps.load_results(FIXTURES / "setvae", study=setvae.SetVAEParams)
    summary = setvae.sweep_ablation(results)
    assert set(summary.configuration) == {"after − beta 0.5→0.1", "after − pre-norm"} and (summary["n"] == 2).all()
    assert set(summary.metric) == {"active_ratio", "kl_total", "auroc", "auprc", "collapsed_share"}
    raw = results[results["run.name"] == "after − pre-norm"]["run.auroc"]
    row = summary[(summary.configuration == "after − pre-norm") & (summary.metric == "auroc")].iloc[0]
    assert row["mean"] == pytest.approx(raw.mean()) and row["sd"] == pytest.approx(raw.std(ddof=1))
    table = setvae.sweep_table(summary)
    assert list(table.columns) == ["configuration", "active units", "KL nats/step", "auroc", "auprc",
                                   "share collapsed", "seeds"]
    assert sweeps.default_metrics(results) == ["run.active_ratio", "run.kl_total", "run.auroc", "run.collapsed_share"]
    with pytest.raises(sweeps.ResultsError, match=r"no \['run.auroc'\] column\(s\): .*exactly one configuration"):
        setvae.sweep_ablation(results.drop(columns=["run.auroc"]))


def test_study1_sweep_reads_leakage_per_method_against_chip_effect():
    results = sweeps.load_results(FIXTURES / "h2", study=h2.H2Params)
    summary = h2.sweep_leakage(results, methods=["PCA", "AE"])
    assert list(summary.columns[:2]) == ["chip_effect", "method"] and (summary["n"] == 2).all()
    pca0 = results[results["param.chip_effect"] == 0.0]["leakage_auc.PCA"]
    row = summary[(summary.chip_effect == 0.0) & (summary.method == "PCA") & (summary.metric == "leakage_auc")]
    assert row["mean"].iloc[0] == pytest.approx(pca0.mean())
    table = h2.sweep_table(summary)
    assert list(table.index) == ["AE", "PCA"] and list(table.columns) == [0.0, 0.3]
    with pytest.raises(sweeps.ResultsError, match=r"method\(s\) \['magic'\] not in the sweep"):
        h2.sweep_leakage(results, methods=["magic"])


def test_study2_sweep_reads_each_models_aupr_per_axis():
    results = sweeps.load_results(FIXTURES / "sfmn", study=sfmn.SFMNParams)
    summary = sfmn.sweep_models(results)
    assert set(summary.metric) == {"test_aupr", "gap"} and "model" in summary.columns
    assert (summary["n"] == 2).all()  # the grid's seeds axis is what the summary aggregates over


# --------------------------------------------------------------------------- the notebooks' section


def section_cells(notebook: str) -> list[str]:
    """The code of the notebook's "Reading a sweep" section (everything after its heading)."""
    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    start = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "Reading a sweep" in c.source)
    return [c.source for c in nb.cells[start:] if c.cell_type == "code"]


SECTIONS = {
    "01_h2.ipynb": ("h2", h2.H2Params, "h2", "held-out linear-probe AUC"),
    "02_sfmn.ipynb": ("S", sfmn.SFMNParams, "sfmn", "grid points read"),
    "03_recon.ipynb": ("recon", recon.ReconParams, "recon", "grid points read"),
    "04_setvae.ipynb": ("S", setvae.SetVAEParams, "setvae", "grid points read"),
}


@pytest.mark.parametrize("notebook", sorted(SECTIONS))
def test_notebook_section_reads_a_sweep_and_skips_without_one(notebook, capsys, monkeypatch):
    alias, params_cls, fixture, said = SECTIONS[notebook]
    module = {"h2": h2, "S": setvae if notebook.startswith("04") else sfmn, "recon": recon}[alias]
    shown: list = []
    monkeypatch.setattr(IPython.display, "display", shown.append)  # what show_sweep displays with
    for value, expect in ((str(FIXTURES / fixture), said), ("", "No sweep read (sweep_results is empty)")):
        namespace = {alias: module, "display": shown.append,
                     "params": params_cls.from_preset("quick", sweep_results=value)}
        for source in section_cells(notebook):
            exec(compile(source, notebook, "exec"), namespace)  # noqa: S102 - the notebook's own cells
        assert expect in capsys.readouterr().out
    table, chart = shown
    assert isinstance(table, pd.DataFrame) and len(table) and vega_lite(chart)["facet"]["field"] == "metric"
