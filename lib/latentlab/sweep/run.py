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

Every sweep ends with a status table (``status.csv``, one row per grid point):
``done`` (its ``done.json`` and ``metrics.json`` read back), ``failed`` (with the
error: the notebook's exception, a worker that died running it, an unreadable
result) or ``missing`` (never reported, e.g. the scheduler went away). What
finished is collected even when other points failed. A point is skipped on a
rerun only when its ``done.json`` reads back with the same parameters.

The grid file is read by ``latentlab.sweep.grid``; the finished points are read,
summarised and drawn by ``latentlab.sweep.results`` and ``latentlab.sweep.plots``.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from latentlab import io
from latentlab.kernels import EncryptedKernelManager
from latentlab.runall import THREAD_VARIABLES
from latentlab.sweep.grid import GridError, GridPoint, load_grid
from latentlab.sweep.results import ResultsError, read_json_file


def execute_point(notebook: str, parameters: dict[str, Any], out_dir: str, threads: int = 1) -> dict[str, Any]:
    """Run one grid point (in a Dask worker). Never raises: failures come back as a status."""
    import papermill

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # every thread pool the kernel may start (torch's OpenMP, MKL, numpy/scipy's OpenBLAS, numba), as runall sets
    # them: numba's was left at the core count (OpenBLAS already follows OMP_NUM_THREADS)
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    status: dict[str, Any] = {"point": out.name, "dir": str(out)}
    try:
        papermill.execute_notebook(
            notebook, str(out / "notebook.ipynb"),
            parameters={**parameters, "output_dir": str(out.resolve())},
            kernel_name="python3", progress_bar=False, cwd=str(Path(notebook).resolve().parent),
            # papermill otherwise rewrites (and schema-validates) the whole notebook before and after every
            # cell: ~80 writes of a notebook holding its charts, CPU in this worker process that competes with
            # the other worker's kernel. It is still written at the start, on an error, at the end, and every
            # 30 s inside a long cell (papermill's autosave).
            request_save_on_cell_execute=False,
            kernel_manager_class=EncryptedKernelManager,  # no "running over TCP without encryption" warning
            # the point's outputs are on disk once its last cell has run; a graceful shutdown then let the kernel
            # tear down torch, scanpy and its data for 1-3 s (measured: 3.1 s of a 16.4 s point under load),
            # CPU taken from the point beside it
            shutdown_kernel="immediate",
        )
        if not (out / "metrics.json").exists():
            raise RuntimeError(f"{notebook} finished but wrote no metrics.json into {out}")
        read_json_file(out / "metrics.json")  # a point counts as done only if its result reads back
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
    """Execute every unfinished grid point on Dask; return the status of every point (see module doc).

    Never loses finished points: a point whose worker dies (``KilledWorker``) or whose future errs is
    recorded as failed with its error, and if the cluster itself fails the points not reported yet are
    recorded as missing. ``status.csv`` is written in every case.
    """
    notebook = Path(notebook).resolve()
    if not notebook.exists():
        raise GridError(f"{notebook}: notebook not found")
    base, points = load_grid(grid)
    out = Path(out_dir) if out_dir else Path("runs/sweeps") / Path(grid).stem
    out.mkdir(parents=True, exist_ok=True)
    grid_text = Path(grid).read_text()  # kept with the results: which grid (and summary metrics) made them
    io.atomic_write(out / "grid.yaml", lambda p: p.write_text(grid_text))
    parameters = {p.key: {**base, **p.params} for p in points}
    reports: dict[str, dict[str, Any]] = {}
    todo = []
    for point in points:
        finished = _finished(out / point.key, parameters[point.key])
        if finished is True:
            reports[point.key] = {"state": "done", "skipped": True, "seconds": 0.0, "error": None}
        else:
            todo.append(point)
    try:
        if todo:
            _execute(notebook, todo, parameters, out, reports, scheduler, workers, threads_per_worker)
    finally:
        table = status_table(points, reports, out)
        io.write_csv(out / "status.csv", table)
    return table


def _execute(notebook: Path, todo: list[GridPoint], parameters: dict[str, dict[str, Any]], out: Path,
             reports: dict[str, dict[str, Any]], scheduler: str | None, workers: int, threads: int) -> None:
    """Submit ``todo`` and record each point's outcome in ``reports`` as it arrives."""
    from distributed import Client, LocalCluster, as_completed

    # dashboard_address=None turns the dashboard off but the scheduler still serves HTTP on the fixed port
    # 8787 (falling back with a warning when taken): every sweep on the machine contended for it.
    cluster = None if scheduler else LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
    try:
        with Client(scheduler or cluster) as client:
            futures = {client.submit(execute_point, str(notebook), parameters[p.key], str(out / p.key), threads,
                                     key=f"point-{p.key}", pure=False): p.key for p in todo}
            for future in _progress(as_completed(futures), len(futures)):
                key = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # KilledWorker, a lost scheduler, ...: this point only
                    result = {"ok": False, "error": _worker_error(exc), "seconds": math.nan}
                reports[key] = {"state": "done" if result["ok"] else "failed", "skipped": False,
                                "seconds": result.get("seconds", math.nan), "error": result["error"]}
    finally:
        if cluster is not None:
            cluster.close()


def _worker_error(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return (f"KilledWorker: the Dask worker running this point died (out of memory, a crash, or killed); "
                f"{_short_error(exc)}")
    return f"{name}: {_short_error(exc)}"


def _finished(point_dir: Path, parameters: dict[str, Any]) -> bool | str:
    """True when the point's done.json and metrics.json read back and done.json has these parameters;
    else the reason it does not count as finished (None-like: no done.json at all)."""
    done = point_dir / "done.json"
    if not done.exists():
        return "no done.json"
    try:
        record = read_json_file(done)
        read_json_file(point_dir / "metrics.json")
    except ResultsError as exc:
        return str(exc)
    if not isinstance(record, dict) or "parameters" not in record:
        return f"{done}: no 'parameters' record"
    if _canonical(record["parameters"]) != _canonical(parameters):
        return f"{done}: written for other parameters ({record['parameters']!r})"
    return True


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def status_table(points: list[GridPoint], reports: dict[str, dict[str, Any]], out: Path) -> pd.DataFrame:
    """One row per grid point: state done / failed / missing, with the error; ``ok`` = done."""
    rows = []
    for point in points:
        report = reports.get(point.key)
        if report is None:
            report = {"state": "missing", "skipped": False, "seconds": math.nan,
                      "error": "never reported (the sweep stopped or the cluster failed before this point finished)"}
        rows.append({"point": point.key, "state": report["state"], "ok": report["state"] == "done",
                     "skipped": report["skipped"], "seconds": report["seconds"], "error": report["error"],
                     "dir": str(out / point.key)})
    return pd.DataFrame(rows, columns=["point", "state", "ok", "skipped", "seconds", "error", "dir"])


def _progress(iterable: Iterable, total: int) -> Iterable:
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="sweep", leave=False)
