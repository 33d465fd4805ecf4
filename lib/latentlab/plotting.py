"""Shared chart settings for every study's charts (each study keeps its own in ``<study>/plots.py``).

Importing this module switches altair to its ``png`` renderer: charts are
drawn in-process by vl-convert, so they show with no network (altair's HTML
output loads vega from a CDN, unreachable here) and in untrusted notebooks,
where JupyterLab strips scripts. For interactive charts in a live session:
``alt.renderers.enable("jupyter", offline=True)`` (needs anywidget).

It also switches altair to the VegaFusion data transformer: altair's default
refuses any table over 5,000 rows (``MaxRowsError``), which a `standard` or
`full` run's per-epoch histories exceed; VegaFusion evaluates the chart's
transforms in Python and passes every row on, so no chart fails or silently
drops data as a run grows.
"""

from __future__ import annotations

import altair as alt


def enable_offline_rendering(kind: str = "png") -> None:
    """Render charts as static images (``png`` or ``svg``) drawn locally by vl-convert, with
    VegaFusion preparing the data so that tables of any size render."""
    alt.renderers.enable(kind)
    alt.data_transformers.enable("vegafusion")


enable_offline_rendering()
