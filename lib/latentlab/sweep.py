"""Parameter sweeps: papermill executions over a grid, scheduled by Dask distributed.

A grid file (YAML) names fixed parameters and the axes to cross::

    base: {preset: quick}
    grid: {arm: [A, C], gamma: [5.0, 2.5], seed: [0, 1, 2]}

Each grid point runs the notebook with papermill into its own directory
(executed notebook + the study's metrics.json); a ``done.json`` marker is
written last, so a rerun skips exactly the points that finished. A failing
point is reported with its error and never loses the others. Results are
collected into one tidy table (CSV and Parquet).

Scheduling is Dask's: a ``LocalCluster`` on this machine by default, or an
existing cluster via ``scheduler="tcp://HOST:PORT"``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from latentlab import io


class GridError(ValueError):
    """A grid file is missing, malformed, or names no parameter to vary."""


@dataclasses.dataclass(frozen=True)
class GridPoint:
    params: dict[str, Any]

    @property
    def key(self) -> str:
        """A readable, filesystem-safe, stable id: ``arm=A__gamma=5.0__seed=0``."""
        parts = [f"{k}={'+'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(self.params.items())]
        return re.sub(r"[^A-Za-z0-9=._+-]", "-", "__".join(parts))


def load_grid(path: str | Path) -> tuple[dict[str, Any], list[GridPoint]]:
    """Read a grid YAML: returns (base parameters, every grid point)."""
    path = Path(path)
    if not path.exists():
        raise GridError(f"{path}: grid file not found")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("grid"), dict) or not spec["grid"]:
        raise GridError(f"{path}: expected a mapping with a non-empty 'grid: {{name: [values, ...]}}'")
    unknown = set(spec) - {"base", "grid", "notebook", "description"}
    if unknown:
        raise GridError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected base, grid, notebook")
    base = spec.get("base") or {}
    axes = spec["grid"]
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{path}: grid axis {name!r} must be a non-empty list, got {values!r}")
    overlap = set(base) & set(axes)
    if overlap:
        raise GridError(f"{path}: {sorted(overlap)} appear in both base and grid")
    names = list(axes)
    points = [GridPoint(dict(zip(names, combo, strict=True))) for combo in itertools.product(*axes.values())]
    return base, points


def execute_point(notebook: str, parameters: dict[str, Any], out_dir: str, threads: int = 1) -> dict[str, Any]:
    """Run one grid point (in a Dask worker). Never raises: failures come back as a status."""
    import papermill

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    env_threads = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(env_threads)
    status: dict[str, Any] = {"point": out.name, "dir": str(out)}
    try:
        papermill.execute_notebook(
            notebook, str(out / "notebook.ipynb"),
            parameters={**parameters, "output_dir": str(out.resolve())},
            kernel_name="python3", progress_bar=False, cwd=str(Path(notebook).resolve().parent),
        )
        if not (out / "metrics.json").exists():
            raise RuntimeError(f"{notebook} finished but wrote no metrics.json into {out}")
        status.update(ok=True, error=None)
        io.write_json(out / "done.json", {"parameters": parameters, "seconds": time.perf_counter() - started})
    except Exception as exc:  # report every failure; the sweep goes on
        status.update(ok=False, error=_short_error(exc))
    status["seconds"] = time.perf_counter() - started
    return status


def _short_error(exc: Exception) -> str:
    text = str(exc).strip() or traceback.format_exception_only(type(exc), exc)[-1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # papermill's PapermillExecutionError ends with the notebook's own exception line
    return lines[-1][:500] if lines else type(exc).__name__


def run_sweep(
    notebook: str | Path,
    grid: str | Path,
    *,
    out_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int = 2,
    threads_per_worker: int = 1,
) -> pd.DataFrame:
    """Execute every unfinished grid point on Dask and return the status table (one row per point)."""
    from distributed import Client, LocalCluster, as_completed

    notebook = Path(notebook).resolve()
    if not notebook.exists():
        raise GridError(f"{notebook}: notebook not found")
    base, points = load_grid(grid)
    out = Path(out_dir) if out_dir else Path("runs/sweeps") / Path(grid).stem
    out.mkdir(parents=True, exist_ok=True)
    todo = [p for p in points if not (out / p.key / "done.json").exists()]
    statuses = [{"point": p.key, "dir": str(out / p.key), "ok": True, "error": None, "seconds": 0.0,
                 "skipped": True} for p in points if p not in todo]
    if todo:
        cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                      dashboard_address=None)
        with Client(scheduler or cluster) as client:
            futures = [client.submit(execute_point, str(notebook), {**base, **p.params}, str(out / p.key),
                                     threads_per_worker, key=f"point-{p.key}", pure=False) for p in todo]
            for future in _progress(as_completed(futures), len(futures)):
                statuses.append({**future.result(), "skipped": False})
        if cluster is not None:
            cluster.close()
    table = pd.DataFrame(statuses)
    io.write_csv(out / "status.csv", table)
    return table


def _progress(iterable: Iterable, total: int) -> Iterable:
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="sweep", leave=False)


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    """One tidy row per finished point: its grid parameters plus every scalar in its metrics.json."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for done in sorted(sweep_dir.glob("*/done.json")):
        parameters = json.loads(done.read_text())["parameters"]
        metrics = json.loads((done.parent / "metrics.json").read_text())
        metrics.pop("params", None)
        flat = pd.json_normalize(metrics, sep=".").iloc[0].to_dict()
        scalars = {k: v for k, v in flat.items() if isinstance(v, int | float | str | bool) or v is None}
        rows.append({"point": done.parent.name, **{f"param.{k}": v for k, v in parameters.items()}, **scalars})
    table = pd.DataFrame(rows)
    if len(table):
        io.write_csv(sweep_dir / "results.csv", table)
        io.atomic_write(sweep_dir / "results.parquet", lambda p: table.astype(
            {c: str for c in table.columns if table[c].dtype == object}).to_parquet(p, index=False))
    return table
