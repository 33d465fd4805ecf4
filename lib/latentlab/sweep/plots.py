"""Charts over a sweep's summary (``latentlab.sweep.summarise``): mean ± sd over seeds per grid point.

``summary_chart(summary)`` draws one panel per metric: x = the first grid axis, colour = the
other axes (joined into one label when there are several), a point at the mean and a rule
spanning ± 1 sd (no rule with a single seed). A numeric axis is drawn on a quantitative scale
with the means joined by a line; a categorical one side by side (``xOffset``).

This module reads the summary's columns itself and never imports ``latentlab.sweep``: the sweep
draws its summary with this chart, so an import back would be a circle.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from latentlab.plotting import enable_offline_rendering

enable_offline_rendering()

STAT_COLUMNS = ("metric", "mean", "sd", "n")  # the long frame ``latentlab.sweep.summarise`` returns


def summary_axes(summary: pd.DataFrame) -> list[str]:
    """The grid axes of a summary: every column that is not one of its statistics."""
    return [c for c in summary.columns if c not in STAT_COLUMNS]


def summary_chart(summary: pd.DataFrame, *, x: str | None = None, color: str | None = None,
                  columns: int = 3, width: int = 200, height: int = 160, title: str | None = None) -> alt.FacetChart:
    """Points (mean) and error bars (± sd) per metric panel; the tooltip carries mean, sd and n."""
    if summary.empty:
        raise ValueError("summary is empty: nothing to draw")
    data = summary.copy()
    axes = summary_axes(data)
    x = x or (axes[0] if axes else None)
    if x is None:
        data["config"], x = "all", "config"
    if x not in data.columns:
        raise ValueError(f"x={x!r} is not a column of the summary (axes: {axes})")
    rest = [a for a in axes if a not in (x, color)]
    if color is None and rest:
        if len(rest) == 1:
            color = rest[0]
        else:
            data["config"] = data[rest].astype(str).apply(
                lambda r: ", ".join(f"{k}={v}" for k, v in r.items()), axis=1)
            color = "config"
    if color is not None:
        data[color] = data[color].astype(str)
    sd = data["sd"].fillna(0.0)
    data["low"], data["high"] = data["mean"] - sd, data["mean"] + sd
    numeric_x = pd.api.types.is_numeric_dtype(data[x]) and not pd.api.types.is_bool_dtype(data[x])
    x_enc = alt.X(f"{x}:Q", title=x, scale=alt.Scale(zero=False, padding=12)) if numeric_x else \
        alt.X(f"{x}:N", title=x, sort=list(dict.fromkeys(data[x].astype(str))), axis=alt.Axis(labelAngle=0))
    if not numeric_x:
        data[x] = data[x].astype(str)
    tooltip = [*[a for a in axes if a in data.columns], "metric", alt.Tooltip("mean:Q", format=".4f"),
               alt.Tooltip("sd:Q", format=".4f"), "n:Q"]
    encodings = {"x": x_enc}
    if color is not None:
        encodings["color"] = alt.Color(f"{color}:N", title=color)
        if not numeric_x:
            encodings["xOffset"] = alt.XOffset(f"{color}:N")
    base = alt.Chart(data).encode(**encodings)
    y = alt.Y("mean:Q", title="mean ± sd over seeds", scale=alt.Scale(zero=False))
    layers = [base.mark_rule().encode(y=alt.Y("low:Q"), y2="high:Q").transform_filter("datum.sd > 0"),
              base.mark_point(filled=True, size=60).encode(y=y, tooltip=tooltip)]
    if numeric_x:
        layers.insert(0, base.mark_line(opacity=0.5).encode(y=y))
    chart = alt.layer(*layers).properties(width=width, height=height)
    facet = chart.facet(facet=alt.Facet("metric:N", title=None, sort=list(dict.fromkeys(data["metric"]))),
                        columns=columns).resolve_scale(y="independent")
    n = f"n = {data['n'].min()}" + (f"–{data['n'].max()}" if data["n"].max() != data["n"].min() else "")
    return facet.properties(title=title or f"Sweep summary: mean ± sd over seeds ({n} per point)")
