"""Study 1's charts (embedding scatter, ROC, leakage intervals, the leakage/biology trade-off,
loss curves, batch-metric bars): pure functions, data in, chart out."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from latentlab.plotting import enable_offline_rendering

enable_offline_rendering()

MAX_POINTS = 4000  # a scatter of more cells than this is unreadable; draw a seeded random sample and say so


def _subsample(frame: pd.DataFrame, n: int = MAX_POINTS, seed: int = 0) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n, random_state=seed)


def _shown(frame: pd.DataFrame, total: int) -> str:
    """Caption part naming how many of the rows a subsampled chart draws (empty when all)."""
    return "" if len(frame) == total else f" ({len(frame):,} of {total:,} cells, random sample)"


def embedding_scatter(z: np.ndarray, obs: pd.DataFrame, colour_by: list[str], *, title: str = "") -> alt.HConcatChart:
    """First two embedding axes, one panel per colouring (chip, sample, cell type)."""
    frame = pd.DataFrame({"dim 1": z[:, 0], "dim 2": z[:, 1]})
    for key in colour_by:
        frame[key] = obs[key].astype(str).to_numpy()
    shown = _subsample(frame)
    base = alt.Chart(shown).mark_circle(size=12, opacity=0.6)
    panels = [
        base.encode(x="dim 1:Q", y="dim 2:Q", color=alt.Color(f"{key}:N", title=key), tooltip=colour_by)
        .properties(width=220, height=220, title=f"{title} — {key}{_shown(shown, len(frame))}")
        for key in colour_by
    ]
    return alt.hconcat(*panels).resolve_scale(color="independent")


def roc_curves(roc: pd.DataFrame) -> alt.FacetChart:
    """ROC curve per embedding, one panel per split, with the chance diagonal as a dashed curve."""
    roc = roc.assign(curve=roc["embedding"] + " · " + roc["probe"], chance=False)
    diagonals = pd.DataFrame([{"fpr": x, "tpr": x, "split": s, "curve": "chance", "chance": True}
                              for s in roc["split"].unique() for x in (0.0, 1.0)])
    data = pd.concat([roc[["fpr", "tpr", "split", "curve", "chance"]], diagonals], ignore_index=True)
    return alt.Chart(data).mark_line().encode(
        x=alt.X("fpr:Q", title="false positive rate"), y=alt.Y("tpr:Q", title="true positive rate"),
        color=alt.Color("curve:N", title="embedding · probe"),
        strokeDash=alt.StrokeDash("chance:N", legend=None),
    ).properties(width=240, height=240).facet(column="split:N")


def metric_intervals(table: pd.DataFrame, metric: str = "roc_auc") -> alt.LayerChart:
    """Point + bootstrap CI per embedding × split × probe, with the permutation null as a grey band."""
    data = table[table.metric == metric].copy()
    data["row"] = data["embedding"] + " · " + data["probe"]
    data["null_low"] = data["null_mean"] - 2 * data["null_sd"]
    data["null_high"] = data["null_mean"] + 2 * data["null_sd"]
    base = alt.Chart(data).encode(y=alt.Y("row:N", title=None), yOffset="split:N", color="split:N")
    null = base.mark_bar(color="lightgrey", opacity=0.5, height=6).encode(
        x=alt.X("null_low:Q", title=metric, scale=alt.Scale(domain=[0, 1])), x2="null_high:Q")
    bars = base.mark_rule().encode(x="ci_low:Q", x2="ci_high:Q")
    points = base.mark_point(filled=True).encode(x="value:Q", tooltip=["embedding", "split", "probe", "value",
                                                                        "ci_low", "ci_high", "null_mean", "p_value"])
    return (null + bars + points).properties(width=420, title=f"{metric}: estimate, 95% CI, ±2 sd null")


def tradeoff(points: pd.DataFrame, *, biology: str = "biology_accuracy") -> alt.LayerChart:
    """Context leakage (held-out probe AUC) against biology retained; one point per method × weight."""
    low = float(min(0.5, points[biology].min() - 0.02)) if len(points) else 0.5
    x_scale = alt.Scale(domain=[0.4, 1.0], clamp=True)
    base = alt.Chart(points).encode(
        x=alt.X("leakage_auc:Q", title="chip leakage: linear-probe ROC-AUC on the held-out sample", scale=x_scale),
        y=alt.Y(f"{biology}:Q", title=biology.replace("_", " "), scale=alt.Scale(domain=[low, 1.0])),
        color=alt.Color("method:N"),
    )
    chance = alt.Chart(pd.DataFrame({"x": [0.5]})).mark_rule(strokeDash=[4, 4], color="grey").encode(
        x=alt.X("x:Q", scale=x_scale))
    errors = base.mark_rule().encode(x="leakage_auc_low:Q", x2="leakage_auc_high:Q")
    dots = base.mark_point(filled=True, size=80).encode(tooltip=["label", "leakage_auc", biology, "weight"])
    labels = base.mark_text(dx=6, dy=-8, fontSize=9, align="left").encode(text="label:N")
    return (chance + errors + dots + labels).properties(
        width=460, height=320, title="Leakage vs biology: good mitigations sit top-left (AUC 0.5, biology kept)")


def loss_curves(history: pd.DataFrame, *, group: str = "method") -> alt.Chart:
    """Training loss terms per epoch for each trained model."""
    terms = [c for c in history.columns if c.startswith("train_") and c != "train_loss"]
    long = history.melt(id_vars=["epoch", group, "weight"], value_vars=terms, var_name="term", value_name="value")
    long = long.dropna(subset=["value"])
    long["model"] = long[group].astype(str) + " w=" + long["weight"].astype(str)
    return alt.Chart(long).mark_line().encode(
        x="epoch:Q", y=alt.Y("value:Q", scale=alt.Scale(type="symlog")), color="model:N",
    ).properties(width=200, height=160).facet(facet="term:N", columns=3)


def batch_metric_bars(frame: pd.DataFrame) -> alt.FacetChart:
    long = frame.melt(id_vars="embedding", var_name="metric", value_name="value")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("value:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("embedding:N", title=None), color="embedding:N",
    ).properties(width=180, height=160).facet(column="metric:N")
