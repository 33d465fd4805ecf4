"""Altair charts for Study 2 (SFMN): pure functions, data in, chart out."""

from __future__ import annotations

import altair as alt
import pandas as pd

from latentlab.plotting import enable_offline_rendering

enable_offline_rendering()

MONITORS = ("train_task", "train_align", "train_sparse", "train_entropy", "train_smooth", "train_domain",
            "train_aupr", "val_aupr", "gate_active", "gate_entropy", "gate_pairwise", "gate_recovery_seen")


def loco_bars(results: pd.DataFrame) -> alt.LayerChart:
    """Unseen-cell-line AUPR per model: mean over folds and seeds with ±1 sd, points per fold × seed."""
    base = alt.Chart(results).encode(y=alt.Y("model:N", title=None, sort=None), color=alt.Color("model:N", legend=None))
    bars = base.mark_bar(opacity=0.5).encode(x=alt.X("mean(test_aupr):Q", title="unseen-cell-line AUPR"))
    err = base.mark_errorbar(extent="stdev").encode(x="test_aupr:Q")
    pts = base.mark_circle(size=25, color="black").encode(
        x="test_aupr:Q", tooltip=["model", "test_cell_line", "seed", "test_aupr", "train_aupr", "gap"])
    rate = alt.Chart(pd.DataFrame({"x": [float(results.base_rate.mean())]})).mark_rule(
        strokeDash=[4, 4], color="grey").encode(x="x:Q")
    return (bars + err + pts + rate).properties(width=380, height=160,
                                                title="LOCO: AUPR on the held-out cell line (dashed: base rate)")


def gap_scatter(results: pd.DataFrame) -> alt.Chart:
    """Train AUPR against unseen AUPR: the distance below the diagonal is the generalisation gap."""
    diag = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(color="grey", strokeDash=[4, 4]).encode(
        x="x:Q", y="y:Q")
    pts = alt.Chart(results).mark_point(filled=True).encode(
        x=alt.X("train_aupr:Q", title="train AUPR (training cell lines)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("test_aupr:Q", title="unseen-cell-line AUPR", scale=alt.Scale(domain=[0, 1])),
        color="model:N", tooltip=["model", "test_cell_line", "seed", "gap"])
    return (diag + pts).properties(width=260, height=260, title="train vs unseen AUPR")


def monitor_curves(history: pd.DataFrame, model: str | None = None) -> alt.FacetChart:
    """Every loss term and gate monitor per epoch (one line per fold × seed), faceted by monitor."""
    h = history if model is None else history[history.model == model]
    cols = [c for c in MONITORS if c in h.columns]
    long = h.melt(id_vars=["epoch", "model", "seed", "test_cell_line"], value_vars=cols, var_name="monitor",
                  value_name="value").dropna(subset=["value"])
    long["run"] = long["model"] + " " + long["test_cell_line"] + " s" + long["seed"].astype(str)
    return alt.Chart(long).mark_line(opacity=0.6).encode(
        x="epoch:Q", y=alt.Y("value:Q", title=None), color=alt.Color("model:N"), detail="run:N",
    ).properties(width=180, height=120).facet(facet=alt.Facet("monitor:N", title=None), columns=4).resolve_scale(
        y="independent")


def gate_heatmap(frame: pd.DataFrame) -> alt.HConcatChart:
    """Learned gate (cell line × E:/P: motif) beside the simulator's true accessibility."""
    sort = list(dict.fromkeys(frame.dimension))
    frame = frame.assign(line=frame.cell_line.where(frame.role == "seen", frame.cell_line + " (unseen)"))
    base = alt.Chart(frame).encode(
        x=alt.X("dimension:N", sort=sort, title="gate dimension (E: enhancer motif, P: promoter motif)"),
        y=alt.Y("line:N", title=None), tooltip=["cell_line", "dimension", "gate", "truth", "role"])
    learned = base.mark_rect().encode(color=alt.Color("gate:Q", scale=alt.Scale(domain=[0, 1], scheme="viridis"))
                                      ).properties(width=420, height=220, title="learned gates g_c")
    panels = [learned]
    if frame["truth"].notna().any():
        truth = base.mark_rect().encode(color=alt.Color("truth:Q", scale=alt.Scale(domain=[0, 1], scheme="greys"),
                                                        legend=None)).properties(
            width=420, height=220, title="true accessibility a_c (simulator)")
        panels.append(truth)
    return alt.hconcat(*panels).resolve_scale(color="independent")


def ablation_bars(table: pd.DataFrame) -> alt.HConcatChart:
    """Unseen AUPR, active fraction and Σg per SFMN variant (the sparsemax and entropy-sign findings)."""
    panels = []
    for col, title in (("test_aupr", "unseen AUPR"), ("gate_active", "active fraction"), ("gate_sum", "Σ_i g_i")):
        panels.append(alt.Chart(table).mark_bar().encode(
            x=alt.X(f"{col}:Q", title=title), y=alt.Y("variant:N", title=None, sort=None),
            tooltip=["variant", col, "note"]).properties(width=160, height=150))
    return alt.hconcat(*panels)
