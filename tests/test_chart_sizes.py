"""Every chart builder renders the tables a `standard` or `full` run hands it.

At `quick` every table is small, so nbval never saw altair's 5,000-row limit; Study 2's
notebook died at `standard` on a 12,760-row monitor history (issue 10). Each builder here gets
synthetic inputs with the columns its study produces and row counts of a `full` run or a
large user data set (70,000 cells, 30 epochs × many folds × seeds), and must render to PNG.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest

from latentlab.h2 import plots
from latentlab.recon import plots as recon_plots
from latentlab.setvae import plots as setvae_plots
from latentlab.sfmn import plots as sfmn_plots
from latentlab.sweep import plots as sweep_plots

RNG = np.random.default_rng(0)


def render(chart: alt.TopLevelMixin) -> bytes:
    """Draw the chart as a notebook displays it (the active renderer's MIME bundle).

    ``chart.save`` skips the row limit; the display path is where the notebook died, and
    altair reports a failure there by printing it and returning an empty bundle.
    """
    bundle = chart._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "image/png" in bundle, "the chart did not render (see the error printed above)"
    return bundle["image/png"]


def per_epoch(keys: dict[str, list], epochs: int, columns: list[str]) -> pd.DataFrame:
    """One row per combination of ``keys`` × epoch, random values in ``columns``."""
    index = pd.MultiIndex.from_product([*keys.values(), range(epochs)], names=[*keys, "epoch"])
    frame = index.to_frame(index=False)
    for col in columns:
        frame[col] = RNG.random(len(frame))
    return frame


# --- Study 1 -------------------------------------------------------------------------------------

def test_h2_embedding_scatter_of_a_large_export_says_it_samples():
    n = 70_000
    obs = pd.DataFrame({"chip": RNG.integers(0, 4, n).astype(str), "cell_type": RNG.integers(0, 9, n).astype(str)})
    chart = plots.embedding_scatter(RNG.normal(size=(n, 8)), obs, ["chip", "cell_type"], title="PCA")
    render(chart)
    assert "4,000 of 70,000 cells" in str(chart.to_dict(format="vega"))


def test_h2_roc_curves_with_every_threshold_of_a_large_test_set():
    rows = []
    for emb in ("PCA", "AE", "Harmony"):
        for split in ("random", "held-out sample"):
            fpr = np.sort(RNG.random(12_000))
            rows.append(pd.DataFrame({"embedding": emb, "split": split, "probe": "linear", "fpr": fpr,
                                      "tpr": np.sqrt(fpr)}))
    render(plots.roc_curves(pd.concat(rows, ignore_index=True)))


def test_h2_loss_curves_of_many_models_and_epochs():
    history = per_epoch({"method": ["ae", "adversarial", "hsic", "mmd", "subspace"], "weight": [0.01, 0.1, 1.0, 3.0]},
                        300, ["train_loss", "train_recon", "train_penalty", "train_adv"])
    render(plots.loss_curves(history))


def test_h2_intervals_tradeoff_and_metric_bars():
    n = 40
    table = pd.DataFrame({"metric": "roc_auc", "embedding": [f"e{i}" for i in range(n)],
                          "split": ["random", "held-out"] * (n // 2), "probe": "linear", "value": RNG.random(n),
                          "ci_low": 0.4, "ci_high": 0.9, "null_mean": 0.5, "null_sd": 0.02, "p_value": 0.05})
    render(plots.metric_intervals(table))
    points = pd.DataFrame({"method": "mmd", "label": [f"w={i}" for i in range(n)], "weight": range(n),
                           "leakage_auc": RNG.random(n), "leakage_auc_low": 0.4, "leakage_auc_high": 0.9,
                           "biology_accuracy": RNG.random(n)})
    render(plots.tradeoff(points))
    render(plots.batch_metric_bars(pd.DataFrame({"embedding": ["PCA", "AE"], "ilisi": [0.2, 0.3],
                                                 "kbet": [0.1, 0.5]})))


# --- Study 2 -------------------------------------------------------------------------------------

def sfmn_history(models: int, folds: int, seeds: int, epochs: int) -> pd.DataFrame:
    frame = per_epoch({"model": [f"m{i}" for i in range(models)], "test_cell_line": [f"CL{i:02d}" for i in range(folds)],
                       "seed": list(range(seeds))}, epochs, list(sfmn_plots.MONITORS))
    return frame


def test_sfmn_monitor_curves_at_standard_size():
    """The exact failure of issue 10: 12,760 melted rows at `standard`."""
    history = sfmn_history(models=2, folds=8, seeds=3, epochs=27)
    assert len(history) * len(sfmn_plots.MONITORS) > 5_000
    render(sfmn_plots.monitor_curves(history))


def test_sfmn_monitor_curves_at_full_size():
    render(sfmn_plots.monitor_curves(sfmn_history(models=6, folds=6, seeds=5, epochs=30)))


def test_sfmn_result_and_gate_charts_with_many_folds():
    rows = 6 * 16 * 5
    results = pd.DataFrame({"model": RNG.choice(["sfmn", "film", "concat", "mlp"], rows),
                            "test_cell_line": RNG.choice([f"CL{i}" for i in range(16)], rows),
                            "seed": RNG.integers(0, 5, rows), "test_aupr": RNG.random(rows),
                            "train_aupr": RNG.random(rows), "gap": RNG.random(rows), "base_rate": 0.3})
    render(sfmn_plots.loco_bars(results))
    render(sfmn_plots.gap_scatter(results))
    dims = [f"E:M{i}" for i in range(400)] + [f"P:M{i}" for i in range(400)]
    gates = pd.DataFrame([{"cell_line": f"CL{c}", "dimension": d, "gate": RNG.random(), "truth": RNG.random(),
                           "role": "seen" if c else "unseen"} for c in range(16) for d in dims])
    render(sfmn_plots.gate_heatmap(gates))
    render(sfmn_plots.ablation_bars(pd.DataFrame({"variant": list("abcdef"), "test_aupr": RNG.random(6),
                                                  "gate_active": RNG.random(6), "gate_sum": RNG.random(6),
                                                  "note": ""})))


# --- Study 3 -------------------------------------------------------------------------------------

def recon_history(seeds: int, epochs: int) -> pd.DataFrame:
    runs = [(arm, g) for arm in "ABCDE" for g in (5.0, 2.5)]
    frames = []
    for arm, gamma in runs:
        part = per_epoch({"seed": list(range(seeds))}, epochs,
                         ["val_f1", "train_loss", "task_loss", "conflict_cos_hap_after", "conflict_cos_shared",
                          "conflict_aux_share", "util_g5", "util_g2.5", "train_recon1", "train_recon2"])
        frames.append(part.assign(arm=arm, gamma=gamma))
    return pd.concat(frames, ignore_index=True)


def test_recon_curves_at_full_size():
    history = recon_history(seeds=5, epochs=300)
    for build in (recon_plots.learning_curves, recon_plots.conflict_curves, recon_plots.utilisation_curves,
                  recon_plots.switch_timeline):
        render(build(history))


def test_recon_tables_with_many_seeds():
    rows = [{"arm": arm, "gamma": g, "seed": s, "f1_overall": RNG.random(), "f1_rare": RNG.random(),
             "f1_common": RNG.random(), "r2_0-1%": RNG.random(), "r2_1-5%": RNG.random(), "r2_5-50%": RNG.random()}
            for arm in "ABCDE" for g in (5.0, 2.5) for s in range(20)]
    rows.append({"arm": recon_plots.BEAGLE, "gamma": np.nan, "seed": np.nan, "f1_overall": 0.99, "f1_rare": 0.97,
                 "f1_common": 0.99, "r2_0-1%": 0.9, "r2_1-5%": 0.95, "r2_5-50%": 0.98})
    table = pd.DataFrame(rows)
    render(recon_plots.f1_by_arm(table))
    render(recon_plots.r2_by_maf(table))


# --- Study 4 -------------------------------------------------------------------------------------

def test_setvae_diagnostics_over_epochs_at_full_size():
    runs = [f"run {i}" for i in range(16)]
    history = per_epoch({"run": runs, "seed": list(range(5))}, 20,
                        ["active_ratio", "zh_cka", "val_auroc", "kl_level1", "kl_level2"])
    assert len(history) * 5 > 5_000
    render(setvae_plots.diagnostics_over_epochs(history, runs))


def test_setvae_zh_projection_of_many_steps():
    n = 3_000  # Z and H of n sampled steps, per epoch
    frames = [pd.DataFrame({"epoch": e, "kind": ["Z"] * n + ["H"] * n, "pc1": RNG.normal(size=2 * n),
                            "pc2": RNG.normal(size=2 * n), "run": r, "seed": 0})
              for r in ("before", "after") for e in range(20)]
    render(setvae_plots.zh_projection(pd.concat(frames, ignore_index=True), ["before", "after"]))


def test_setvae_tables():
    runs = [f"run {i}" for i in range(30)]
    agg = pd.DataFrame({"run": runs, **{f"{m}_{s}": RNG.random(30) for m in ("active_ratio", "kl_total", "auroc")
                                        for s in ("mean", "std")}})
    render(setvae_plots.ablation_chart(agg))
    per_dim = pd.DataFrame([{"run": r, "level": lv, "dim": d, "seed": s, "kl": RNG.random()}
                            for r in runs for lv in (1, 2) for d in range(16) for s in range(5)])
    render(setvae_plots.kl_per_dim_chart(per_dim))
    scores = pd.DataFrame({"model": runs, **{f"{m}_{s}": RNG.random(30) for m in ("auroc", "auprc")
                                             for s in ("mean", "std")}})
    render(setvae_plots.scores_chart(scores, 0.14))


# --- Sweeps --------------------------------------------------------------------------------------

@pytest.mark.parametrize("points", [12, 400])
def test_sweep_summary_chart_of_a_large_grid(points):
    summary = pd.DataFrame({"weight": np.repeat(np.arange(points), 3) * 0.1,
                            "method": np.tile(["mmd", "hsic", "adv"], points),
                            "metric": "leakage_auc", "mean": RNG.random(3 * points), "sd": 0.01, "n": 3})
    render(sweep_plots.summary_chart(summary))
