"""The "Reading a sweep" section every study notebook ends with, as one function the cell calls.

A sweep runs a study notebook once per grid point (``latentlab sweep``); rerun with
``-p sweep_results DIR`` the same notebook reads the table back through the validated
loader and shows the study's summary (mean ± sd over the sweep's seeds) and its chart.
With no sweep named it says how to make one, so the section is never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from latentlab.sweep import plots as sweep_plots
from latentlab.sweep import results as sweeps


def how_to(notebook: str, grid: str | None) -> str:
    """The two commands that make a sweep for ``notebook`` and read it back."""
    grid_arg = grid or "<grid>.yaml"
    out = f"runs/sweeps/{Path(grid).stem}" if grid else "runs/sweeps/<grid>"
    return ("No sweep read (sweep_results is empty). Make one with\n"
            f"  latentlab sweep notebooks/{notebook} --grid {grid_arg}\n"
            f"then rerun this notebook with -p sweep_results {out}")


def show_sweep(path: str, *, study: type, notebook: str, grid: str | None,
               summarise: Callable[[pd.DataFrame], pd.DataFrame],
               table: Callable[[pd.DataFrame], pd.DataFrame] = sweeps.format_summary,
               heading: str = "", display: Callable[[Any], None] | None = None,
               **chart: Any) -> pd.DataFrame | None:
    """Read the sweep at ``path`` (``study`` validates its parameters), display the study's summary table
    and ``sweep_plots.summary_chart(summary, **chart)``; return the summary (``None`` with no sweep)."""
    if display is None:
        from IPython.display import display
    if not path:
        print(how_to(notebook, grid))
        return None
    swept = sweeps.load_results(path, study=study)
    summary = summarise(swept)
    print(f"{len(swept)} grid points read from {path}{heading}")
    display(table(summary))
    display(sweep_plots.summary_chart(summary, **chart))
    return summary
