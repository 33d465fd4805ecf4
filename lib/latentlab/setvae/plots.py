"""Altair charts for Study 4 (SetVAE collapse): pure functions, data in, chart out."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from latentlab.plotting import enable_offline_rendering

enable_offline_rendering()


def zh_projection(projections: pd.DataFrame, runs: list[str], *, seed: int = 0, max_panels: int = 4) -> alt.VConcatChart:
    """The seed's picture: Z and H of the same steps in one 2-D PCA, per epoch (rows = runs)."""
    rows = []
    for run in runs:
        part = projections[(projections["run"] == run) & (projections["seed"] == seed)]
        epochs = sorted(part["epoch"].unique())
        pick = sorted({epochs[int(round(i))] for i in np.linspace(0, len(epochs) - 1, min(max_panels, len(epochs)))})
        frame = part[part["epoch"].isin(pick)]
        rows.append(alt.Chart(frame).mark_circle(size=10, opacity=0.5).encode(
            x=alt.X("pc1:Q", title="PC 1"), y=alt.Y("pc2:Q", title="PC 2"),
            color=alt.Color("kind:N", title="", scale=alt.Scale(domain=["Z", "H"], range=["#d62728", "#2ca02c"])),
            column=alt.Column("epoch:O", title=f"{run} — epoch"),
        ).properties(width=150, height=150))
    return alt.vconcat(*rows)


def diagnostics_over_epochs(history: pd.DataFrame, runs: list[str]) -> alt.Chart:
    """Active-unit ratio, KL per level, Z–H CKA and validation AUROC per epoch, one line per run·seed."""
    cols = [c for c in history.columns if c in ("active_ratio", "zh_cka", "val_auroc") or c.startswith("kl_level")]
    frame = history[history["run"].isin(runs)].melt(id_vars=["run", "seed", "epoch"], value_vars=cols,
                                                     var_name="diagnostic", value_name="value")
    frame["line"] = frame["run"] + " · seed " + frame["seed"].astype(str)
    return alt.Chart(frame).mark_line(point=True).encode(
        x="epoch:Q", y=alt.Y("value:Q", title=""), color=alt.Color("run:N"), detail="line:N",
        facet=alt.Facet("diagnostic:N", columns=3, title=None),
    ).properties(width=200, height=130).resolve_scale(y="independent")


def ablation_chart(agg: pd.DataFrame) -> alt.HConcatChart:
    """Mean ± sd over seeds of the active-unit ratio, KL and AUROC per configuration."""
    panels = []
    for metric, title in (("active_ratio", "active-unit ratio"), ("kl_total", "KL (nats/step)"), ("auroc", "test AUROC")):
        frame = agg[["run", f"{metric}_mean", f"{metric}_std"]].rename(columns={f"{metric}_mean": "mean", f"{metric}_std": "sd"})
        frame["sd"] = frame["sd"].fillna(0.0)
        frame["lo"], frame["hi"] = frame["mean"] - frame["sd"], frame["mean"] + frame["sd"]
        base = alt.Chart(frame).encode(y=alt.Y("run:N", sort=None, title=None if panels else "configuration"))
        panels.append((base.mark_bar().encode(x=alt.X("mean:Q", title=title))
                       + base.mark_rule().encode(x="lo:Q", x2="hi:Q")).properties(width=160, height=alt.Step(16)))
    return alt.hconcat(*panels)


def kl_per_dim_chart(per_dim: pd.DataFrame) -> alt.Chart:
    """KL per latent dimension (mean over seeds), run × level·dim heat map."""
    frame = per_dim.groupby(["run", "level", "dim"], sort=False)["kl"].mean().reset_index()
    frame["unit"] = "L" + frame["level"].astype(str) + "·" + frame["dim"].astype(str)
    return alt.Chart(frame).mark_rect().encode(
        x=alt.X("unit:N", sort=None, title="latent unit (level·dim)"), y=alt.Y("run:N", sort=None, title=None),
        color=alt.Color("kl:Q", title="KL (nats)", scale=alt.Scale(scheme="viridis")),
        tooltip=["run", "unit", alt.Tooltip("kl:Q", format=".3f")],
    ).properties(width=alt.Step(14), height=alt.Step(14))


def scores_chart(scores: pd.DataFrame, base_rate: float) -> alt.HConcatChart:
    """AUROC and AUPRC per model (SetVAE runs as mean ± sd over seeds, baselines single fits)."""
    panels = []
    for metric, ref in (("auroc", 0.5), ("auprc", base_rate)):
        frame = scores[["model", f"{metric}_mean", f"{metric}_std"]].rename(columns={f"{metric}_mean": "mean", f"{metric}_std": "sd"})
        frame["sd"] = frame["sd"].fillna(0.0)
        frame["lo"], frame["hi"] = frame["mean"] - frame["sd"], frame["mean"] + frame["sd"]
        base = alt.Chart(frame).encode(y=alt.Y("model:N", sort=None, title=None))
        chance = alt.Chart(pd.DataFrame({"x": [ref]})).mark_rule(strokeDash=[4, 3], color="grey").encode(x="x:Q")
        panels.append((base.mark_bar().encode(x=alt.X("mean:Q", title=f"test {metric.upper()}"))
                       + base.mark_rule().encode(x="lo:Q", x2="hi:Q") + chance).properties(width=200, height=alt.Step(18)))
    return alt.hconcat(*panels)
