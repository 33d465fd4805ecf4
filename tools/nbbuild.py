"""Build a study notebook from a compact cell list (keeps notebooks reviewable as code).

Usage in a builder script: ``write_notebook(path, [md(...), params(...), code(...)])``.
Cells are stored without outputs; ``make notebooks`` executes them in place.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, *tags: str):
    cell = new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def params(text: str):
    return code(text, "parameters")


def sweep_reader(*, study: str, params_class: str, summarise: str, table: str, chart: str, title: str,
                 read_note: str, notebook: str, grid: str) -> nbformat.NotebookNode:
    """The "Reading a sweep" cell every study notebook ends with: load ``params.sweep_results`` through
    the validated loader, show the study's summary table and chart — or, when empty, how to make one.

    ``summarise``/``table`` are the study's reader functions, ``chart`` the ``summary_chart`` keyword
    arguments besides its ``title`` (source text), ``grid`` the grid YAML to suggest.
    """
    out = "runs/sweeps/" + (Path(grid).stem if not grid.startswith("<") else "<grid>")
    return code(f"""
from latentlab import sweep
from latentlab.plots import sweep as sweep_plots

if params.sweep_results:
    swept = sweep.load_results(params.sweep_results, study={study}.{params_class})
    swept_summary = {study}.{summarise}(swept)
    print(f"{{len(swept)}} grid points read from {{params.sweep_results}}{read_note}")
    display({table}(swept_summary))
    display(sweep_plots.summary_chart(swept_summary, {chart},
                                      title="{title}"))
else:
    print("No sweep read (sweep_results is empty). Make one with\\n"
          "  latentlab sweep {notebook} --grid {grid}\\n"
          "then rerun this notebook with -p sweep_results {out}")
""", "nbval-check-output")


def write_notebook(path: str | Path, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, str(path))
