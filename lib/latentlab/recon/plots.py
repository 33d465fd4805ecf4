"""Altair charts for Study 3 (recon-loss ablation): pure functions, tables in, charts out."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from latentlab.plotting import enable_offline_rendering

enable_offline_rendering()

BEAGLE = "Beagle 5.4"


def _label(frame: pd.DataFrame) -> pd.Series:
    gamma = frame["gamma"].map(lambda g: "" if pd.isna(g) else f" γ={g:g}")
    return frame["arm"].astype(str) + gamma


def f1_by_arm(table: pd.DataFrame) -> alt.FacetChart:
    """ALT-F1 overall / rare / common: one dot per seed, the mean as a tick, Beagle as a dashed rule."""
    cols = ["f1_overall", "f1_rare", "f1_common"]
    frame = table.assign(run=lambda f: _label(f), seed=table["seed"].fillna(-1))
    long = frame.melt(id_vars=["run", "seed"], value_vars=cols, var_name="metric", value_name="F1")
    long["beagle"] = long["run"] == BEAGLE
    long["Beagle F1"] = long["F1"].where(long["beagle"])
    long["arm F1"] = long["F1"].where(~long["beagle"])
    base = alt.Chart().transform_filter(~alt.datum.beagle)
    dots = base.mark_circle(size=40, opacity=0.6).encode(
        x=alt.X("run:N", title="arm · focal γ"), y=alt.Y("arm F1:Q", title="ALT F1", scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", legend=None), tooltip=["run", "seed", alt.Tooltip("F1:Q", format=".3f")])
    means = base.mark_tick(thickness=2, size=18, color="black").encode(x="run:N", y="mean(arm F1):Q")
    rule = alt.Chart().transform_filter(alt.datum.beagle).mark_rule(strokeDash=[6, 3], color="firebrick").encode(
        y="Beagle F1:Q", tooltip=[alt.Tooltip("F1:Q", format=".3f", title="Beagle")])
    return alt.layer(dots, means, rule, data=long).properties(width=260, height=220).facet(
        column=alt.Column("metric:N", title=None, sort=cols)).resolve_scale(y="independent").properties(
        title="ALT-allele F1 on masked sites (dots = seeds, tick = mean, red dashed = Beagle 5.4)")


def r2_by_maf(table: pd.DataFrame) -> alt.FacetChart:
    """Dosage r² per MAF bin, pooled over (site, individual) and mean of per-site r², mean over seeds."""
    cols = [c for c in table.columns if (c.startswith("r2_") and c != "r2_site_mean") or c.startswith("r2site_")]
    frame = table.assign(run=lambda f: _label(f)).melt(id_vars=["run"], value_vars=cols, var_name="bin",
                                                        value_name="r2")
    frame["r²"] = np.where(frame["bin"].str.startswith("r2site_"), "mean of per-site r²", "pooled r²")
    frame["MAF bin"] = frame["bin"].str.replace("r2site_", "", regex=False).str.replace("r2_", "", regex=False)
    frame = frame.groupby(["run", "r²", "MAF bin"], as_index=False)["r2"].mean()
    order = list(dict.fromkeys(frame["MAF bin"]))
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("MAF bin:O", sort=order), y=alt.Y("r2:Q", title="dosage r²"),
        color=alt.Color("run:N", title="arm · γ"),
        strokeDash=alt.condition(alt.datum.run == BEAGLE, alt.value([6, 3]), alt.value([1, 0])),
        tooltip=["run", "MAF bin", alt.Tooltip("r2:Q", format=".3f")],
    ).properties(width=300, height=220).facet(column=alt.Column("r²:N", title=None)).properties(
        title="Dosage r² by panel MAF (masked sites of the targets)")


def _curves(history: pd.DataFrame, cols: list[str], title: str, y_title: str, *, log: bool = False) -> alt.FacetChart:
    frame = history.assign(run=lambda f: _label(f)).melt(id_vars=["run", "seed", "epoch"], value_vars=cols,
                                                          var_name="series", value_name="value")
    frame = frame.groupby(["run", "epoch", "series"], as_index=False)["value"].mean()
    frame["epoch"] = frame["epoch"] + 1
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("epoch:Q"), y=alt.Y("value:Q", title=y_title, scale=scale), color=alt.Color("run:N", title="arm · γ"),
        tooltip=["run", "epoch", "series", alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=260, height=200).facet(column=alt.Column("series:N", title=None)).properties(title=title)


def learning_curves(history: pd.DataFrame) -> alt.FacetChart:
    """Validation F1, the weighted training loss (arm A's scale jumps show here) and the unweighted task loss."""
    return _curves(history, ["val_f1", "train_loss", "task_loss"], "Learning curves (mean over seeds)", "value",
                   log=False)


def conflict_curves(history: pd.DataFrame) -> alt.FacetChart:
    """Cosine between task and auxiliary gradients on hap_after and on shared weights, per epoch."""
    return _curves(history, ["conflict_cos_hap_after", "conflict_cos_shared", "conflict_aux_share"],
                   "Gradient conflict: cos(task, aux) < 0 means the terms pull apart", "value")


def utilisation_curves(history: pd.DataFrame) -> alt.FacetChart:
    """Share of labelled positions whose focal weight (1 − p_t)^γ exceeds the threshold, at both γ."""
    cols = sorted(c for c in history.columns if c.startswith("util_g"))
    return _curves(history, cols, "Focal data utilisation (share of positions with weight above threshold)",
                   "share of positions", log=False)


def switch_timeline(history: pd.DataFrame) -> alt.Chart:
    """Arm A's recon terms per epoch against the MIN_RECON_LOSS threshold (log scale)."""
    a = history[history["arm"] == "A"].assign(run=lambda f: _label(f) + " seed " + f["seed"].astype(str))
    frame = a[["run", "epoch", "train_recon1", "train_recon2"]].melt(id_vars=["run", "epoch"], var_name="term")
    frame["epoch"] = frame["epoch"] + 1
    frame = frame[np.isfinite(frame["value"]) & (frame["value"] > 0)]
    lines = alt.Chart(frame).mark_line(point=True).encode(
        x="epoch:Q", y=alt.Y("value:Q", scale=alt.Scale(type="log"), title="recon MSE"),
        color="run:N", strokeDash="term:N")
    rule = alt.Chart(pd.DataFrame({"threshold": [0.01]})).mark_rule(color="firebrick").encode(y="threshold:Q")
    return (lines + rule).properties(width=380, height=220,
                                     title="Arm A: recon terms vs MIN_RECON_LOSS = 0.01 (red)")
