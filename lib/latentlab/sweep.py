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

Reading a sweep (what a study notebook's "Reading a sweep" section calls)::

    results = load_results("runs/sweeps/recon_ablation")   # dir or results.csv/.parquet; validated
    summary = summarise(results)                  # long: <axes...>, metric, mean, sd, n (over seeds)
    format_summary(summary)                       # wide "mean ± sd" table for display
    from latentlab.plots import sweep as sweep_plots
    sweep_plots.summary_chart(summary)            # points ± sd, one panel per metric, x = first axis

``summarise`` groups by every grid axis except the seed (``param.*`` columns that
vary; ``by=`` to choose) and aggregates the metric columns over the remaining rows
(the seeds): mean, sample sd (ddof 1; empty with one seed) and n. Metrics default
to the study's headline columns (``default_metrics``); a grid YAML may name them
with ``metrics: [column or glob, ...]``. When a study writes one metric per model
or method (``models.<m>.test_aupr``), ``unstack_metrics`` turns those columns into
rows keyed by the model, so the same two functions summarise and draw them.
After ``collect``, ``write_summary`` leaves ``summary.csv`` and ``summary.png`` /
``summary.html`` next to ``results.csv`` (``latentlab sweep`` does both).
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import hashlib
import itertools
import json
import math
import os
import re
import time
import traceback
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from latentlab import io
from latentlab.kernels import EncryptedKernelManager


class GridError(ValueError):
    """A grid file is missing, malformed, or names no parameter to vary."""


class ResultsError(ValueError):
    """A sweep's results table is missing, unreadable or not what ``collect`` writes."""


SEED_AXES = ("seed", "seeds")  # the axes a summary aggregates over (Study 2 takes a list of seeds)
GRID_KEYS = ("base", "grid", "notebook", "description", "metrics")


@dataclasses.dataclass(frozen=True)
class GridPoint:
    params: dict[str, Any]
    suffix: str = ""  # set by read_grid when two points' readable keys collide (1 vs "1", "a/b" vs "a-b")

    @property
    def readable_key(self) -> str:
        """``arm=A__gamma=5.0__seed=0``: readable and filesystem-safe, but lossy (types, odd characters)."""
        parts = [f"{k}={'+'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(self.params.items())]
        return re.sub(r"[^A-Za-z0-9=._+-]", "-", "__".join(parts))

    @property
    def key(self) -> str:
        """A stable id, unique within its grid: the readable key, plus a hash of the exact values if needed."""
        return self.readable_key + (f"--{self.suffix}" if self.suffix else "")

    def exact(self) -> str:
        """The parameters with their types (``1`` and ``"1"`` differ), as canonical JSON."""
        return json.dumps(self.params, sort_keys=True, default=str)


def _disambiguate(points: list[GridPoint]) -> list[GridPoint]:
    """Points whose readable keys collide get a short hash of their exact values appended."""
    counts: dict[str, int] = {}
    for point in points:
        counts[point.readable_key] = counts.get(point.readable_key, 0) + 1
    out = []
    for point in points:
        if counts[point.readable_key] > 1:
            digest = hashlib.sha256(point.exact().encode()).hexdigest()[:8]
            point = dataclasses.replace(point, suffix=f"h{digest}")
        out.append(point)
    return out


@dataclasses.dataclass(frozen=True)
class Grid:
    base: dict[str, Any]
    points: list[GridPoint]
    metrics: list[str] | None = None  # columns (or globs) the summary aggregates; None = the study's defaults


def load_grid(path: str | Path) -> tuple[dict[str, Any], list[GridPoint]]:
    """Read a grid YAML: returns (base parameters, every grid point)."""
    grid = read_grid(path)
    return grid.base, grid.points


def read_grid(path: str | Path) -> Grid:
    """Read and validate a grid YAML (``base``, ``grid``, optional ``metrics``, ``notebook``, ``description``)."""
    path = Path(path)
    if not path.exists():
        raise GridError(f"{path}: grid file not found")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("grid"), dict) or not spec["grid"]:
        raise GridError(f"{path}: expected a mapping with a non-empty 'grid: {{name: [values, ...]}}'")
    unknown = set(spec) - set(GRID_KEYS)
    if unknown:
        raise GridError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected {', '.join(GRID_KEYS)}")
    metrics = spec.get("metrics")
    if metrics is not None and (not isinstance(metrics, list) or not metrics
                                or not all(isinstance(m, str) and m.strip() for m in metrics)):
        raise GridError(f"{path}: 'metrics' must be a non-empty list of result column names (globs allowed), "
                        f"got {metrics!r}")
    base = spec.get("base") or {}
    axes = spec["grid"]
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{path}: grid axis {name!r} must be a non-empty list, got {values!r}")
    overlap = set(base) & set(axes)
    if overlap:
        raise GridError(f"{path}: {sorted(overlap)} appear in both base and grid")
    names = list(axes)
    for name, values in axes.items():
        exact = [json.dumps(v, sort_keys=True, default=str) for v in values]
        repeated = sorted({v for v in exact if exact.count(v) > 1})
        if repeated:
            raise GridError(f"{path}: grid axis {name!r} lists the value(s) {repeated} more than once")
    points = [GridPoint(dict(zip(names, combo, strict=True))) for combo in itertools.product(*axes.values())]
    return Grid(base, _disambiguate(points), metrics)


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
            # papermill otherwise rewrites (and schema-validates) the whole notebook before and after every
            # cell: ~80 writes of a notebook holding its charts, CPU in this worker process that competes with
            # the other worker's kernel. It is still written at the start, on an error, at the end, and every
            # 30 s inside a long cell (papermill's autosave).
            request_save_on_cell_execute=False,
            kernel_manager_class=EncryptedKernelManager,  # no "running over TCP without encryption" warning
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


def read_json_file(path: Path) -> Any:
    """A JSON file, or a ResultsError naming it, the line/column and what was found."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not text.strip():
        raise ResultsError(f"{path}: empty file (the run was cut off while writing it?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); "
                           "truncated or hand-edited?") from None


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


def collect(sweep_dir: str | Path, *, summary: bool = True) -> pd.DataFrame:
    """One tidy row per finished point: its grid parameters plus every scalar in its metrics.json.

    List-valued parameters become plain values: a one-element list its element (``arms: [A]`` →
    ``A``), a longer one its items joined by ``+`` (as in the point's key). A point whose done.json or
    metrics.json cannot be read is left out with a warning naming the file (and listed in
    ``table.attrs["unreadable"]``); the others are still collected. With ``summary``, the summary over
    seeds (``write_summary``) is written next to the table.
    """
    sweep_dir = Path(sweep_dir)
    rows, unreadable = [], {}
    for done in sorted(sweep_dir.glob("*/done.json")):
        try:
            rows.append(_point_row(done))
        except ResultsError as exc:
            unreadable[done.parent.name] = str(exc)
            warnings.warn(f"sweep point {done.parent.name} left out: {exc}", stacklevel=2)
    table = pd.DataFrame(rows)
    if len(table):
        io.write_csv(sweep_dir / "results.csv", table)
        io.atomic_write(sweep_dir / "results.parquet", lambda p: table.astype(
            {c: str for c in table.columns if table[c].dtype == object}).to_parquet(p, index=False))
        if summary:
            write_summary(sweep_dir, table)
    table.attrs["unreadable"] = unreadable
    return table


def _point_row(done: Path) -> dict[str, Any]:
    record = read_json_file(done)
    if not isinstance(record, dict) or not isinstance(record.get("parameters"), dict):
        raise ResultsError(f"{done}: expected {{\"parameters\": {{...}}, ...}} as execute_point writes, "
                           f"found {type(record).__name__}")
    metrics = read_json_file(done.parent / "metrics.json")
    if not isinstance(metrics, dict):
        raise ResultsError(f"{done.parent / 'metrics.json'}: expected a JSON object, found {type(metrics).__name__}")
    metrics.pop("params", None)
    metrics.pop("run_info", None)
    metrics.pop("non_finite", None)  # those values are null in the file, NaN in the table
    flat = pd.json_normalize(metrics, sep=".").iloc[0].to_dict() if metrics else {}
    scalars = {k: v for k, v in flat.items() if isinstance(v, int | float | str | bool) or v is None}
    return {"point": done.parent.name, **{f"param.{k}": _plain(v) for k, v in record["parameters"].items()},
            **scalars}


def _plain(value: Any) -> Any:
    """A parameter value as one table cell: [x] → x, [x, y] → "x+y", a mapping → its JSON."""
    if isinstance(value, list | tuple):
        return _plain(value[0]) if len(value) == 1 else "+".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


# --------------------------------------------------------------------------- reading a sweep


def resolve_path(path: str | Path) -> Path:
    """A user's path as given if it exists (absolute or from the cwd), else from the project root.

    Notebooks run with ``notebooks/`` as their cwd; ``-p sweep_results runs/sweeps/X`` means the
    project's ``runs/``, as ``output_dir`` does.
    """
    from latentlab.params import project_root

    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    rooted = project_root() / path
    return rooted if rooted.exists() else path


def load_results(path: str | Path, *, study: type | None = None) -> pd.DataFrame:
    """Read a sweep's table (its directory, ``results.csv`` or ``results.parquet``), validated.

    Every error names the file and what was expected. With ``study`` (a ``StudyParams`` class),
    every ``param.`` column must be one of that study's parameters, so a table from another
    study's sweep is refused rather than misread.
    """
    given = str(path).strip()
    if not given:
        raise ResultsError("no sweep given: pass a sweep directory or its results.csv")
    path = resolve_path(given)
    if not path.exists():
        raise ResultsError(f"{path}: no such sweep directory or results file "
                           f"(run `latentlab sweep NOTEBOOK --grid GRID` first; it writes results.csv)")
    if path.is_dir():
        found = [path / name for name in ("results.csv", "results.parquet") if (path / name).exists()]
        if not found:
            points = len(list(path.glob("*/done.json")))
            hint = (f"{points} finished point(s) are there: collect them with "
                    f"`python -c \"from latentlab import sweep; sweep.collect('{path}')\"`" if points
                    else "no finished grid point (*/done.json) either; is this a sweep directory?")
            raise ResultsError(f"{path}: no results.csv or results.parquet in this directory; {hint}")
        path = found[0]
    if path.suffix not in (".csv", ".parquet"):
        raise ResultsError(f"{path}: expected a sweep's results.csv or results.parquet, got a {path.suffix or 'suffix-less'} file")
    try:
        table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError as exc:
        raise ResultsError(f"{path}: empty file, not a results table") from exc
    except Exception as exc:  # a parser's own message, prefixed with the file
        raise ResultsError(f"{path}: cannot be read as a results table ({type(exc).__name__}: {exc})") from exc
    params = [c for c in table.columns if str(c).startswith("param.")]
    if "point" not in table.columns or not params:
        missing = [name for name, ok in (("point", "point" in table.columns), ("param.<name>", bool(params))) if not ok]
        raise ResultsError(f"{path}: not a sweep results table: no {' and no '.join(map(repr, missing))} column(s) "
                           f"(expected point, param.<name>... and metric columns, as `latentlab sweep` writes; "
                           f"found {list(table.columns)[:8]})")
    if table.empty:
        raise ResultsError(f"{path}: the results table has no rows (no grid point finished)")
    if table["point"].duplicated().any():
        dups = sorted(table.loc[table["point"].duplicated(), "point"].astype(str).unique())[:3]
        raise ResultsError(f"{path}: grid point(s) {dups} appear more than once; one row per point expected")
    if study is not None:
        fields = set(study.field_names())
        foreign = sorted(c.removeprefix("param.") for c in params if c.removeprefix("param.") not in fields)
        if foreign:
            raise ResultsError(f"{path}: parameter column(s) {foreign} are not {study.__name__} parameters; "
                               f"is this another study's sweep?")
    for column in params:  # older tables stored list parameters as "['A']"
        if table[column].dtype == object:
            table[column] = table[column].map(_parse_list_literal)
    return table


def _parse_list_literal(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            return _plain(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            return value
    return value


def grid_axes(table: pd.DataFrame) -> list[str]:
    """The ``param.`` columns that vary across the table, except the seed axes."""
    return [c for c in table.columns if str(c).startswith("param.") and c.removeprefix("param.") not in SEED_AXES
            and table[c].astype(str).nunique(dropna=False) > 1]


# Headline metrics per study, tried in order; an entry applies when its first pattern matches a column.
DEFAULT_METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Study 3 (one arm × γ per point)", ("run.f1_overall", "run.f1_rare", "run.f1_common")),
    ("Study 1", ("leakage_auc.AE", "leakage_auc.PCA", "biology_accuracy.AE", "mitigation_goal_met")),
    ("Study 2", ("models.*.test_aupr",)),
    ("Study 4 (one configuration per point)", ("run.active_ratio", "run.kl_total", "run.auroc", "run.collapsed_share")),
    ("Study 4", ("* (seed).auroc_mean", "* (seed).active_ratio_mean")),
)
NOT_METRICS = ("point", "seconds", "seed", "seeds", "*.seed", "*_sd", "*_std", "*.p_value", "*.null_mean", "*.n_*", "n_*")
MAX_FALLBACK_METRICS = 6


def _match(columns: list[str], pattern: str) -> list[str]:
    return [c for c in columns if fnmatch.fnmatchcase(c, pattern)]


def default_metrics(table: pd.DataFrame) -> list[str]:
    """The study's headline columns; for an unknown study, its first few varying numeric metric columns."""
    columns = [str(c) for c in table.columns if not str(c).startswith("param.")]
    for _, patterns in DEFAULT_METRICS:
        if _match(columns, patterns[0]):
            return list(dict.fromkeys(c for p in patterns for c in _match(columns, p)))
    numeric = [c for c in columns if not any(fnmatch.fnmatchcase(c, p) for p in NOT_METRICS)
               and pd.api.types.is_numeric_dtype(table[c])]
    if not numeric:
        raise ResultsError("no numeric metric column in the sweep's table; name the metrics to summarise "
                           "(metrics: [...] in the grid YAML, or summarise(table, metrics=[...]))")
    varying = [c for c in numeric if table[c].nunique() > 1]  # the ones the grid moved come first
    return (varying + [c for c in numeric if c not in varying])[:MAX_FALLBACK_METRICS]


def resolve_metrics(table: pd.DataFrame, metrics: Iterable[str] | None = None) -> list[str]:
    """Metric names or globs → the table's columns; a name that matches nothing is an error naming it."""
    if metrics is None:
        return default_metrics(table)
    if isinstance(metrics, str):
        metrics = [metrics]
    columns = [str(c) for c in table.columns]
    chosen: list[str] = []
    for name in metrics:
        found = _match(columns, name)
        if not found:
            close = [c for c in columns if name.split(".")[-1].strip("*") in c and not c.startswith("param.")][:6]
            raise ResultsError(f"metric {name!r} matches no column of the results table"
                               + (f"; similar: {close}" if close else f"; columns are {columns[:12]}..."))
        chosen += [c for c in found if c not in chosen]
    return chosen


def summarise(table: pd.DataFrame, metrics: Iterable[str] | None = None, *,
              by: Iterable[str] | None = None) -> pd.DataFrame:
    """Mean, sd and n of each metric over seeds, per combination of the other grid axes.

    Returns a long frame: one column per axis (``param.`` dropped from the name), then
    ``metric``, ``mean``, ``sd`` (sample sd; NaN with one seed) and ``n`` (non-missing values).
    ``by`` defaults to ``grid_axes(table)``; booleans average to a share.
    """
    chosen = resolve_metrics(table, metrics)
    by = grid_axes(table) if by is None else list(by)
    missing = [c for c in by if c not in table.columns]
    if missing:
        raise ResultsError(f"cannot group by {missing}: not columns of the results table")
    frame = table[by].copy()
    for column in chosen:
        values = table[column]
        if values.dtype == bool or values.dtype == object and values.dropna().map(type).eq(bool).all():
            values = values.astype(float)
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.isna().sum() > values.isna().sum():
            bad = values[numeric.isna() & values.notna()].iloc[0]
            raise ResultsError(f"metric column {column!r} is not numeric (e.g. {bad!r})")
        frame[column] = numeric
    key = by or ["_all"]
    if not by:
        frame["_all"] = "all"
    groups = frame.groupby(key, dropna=False, sort=True)[chosen]
    stats = {"mean": groups.mean(), "sd": groups.std(ddof=1), "n": groups.count()}
    long = pd.concat({name: part.stack(future_stack=True) for name, part in stats.items()}, axis=1)
    long.index.names = [*key, "metric"]
    long = long.reset_index().drop(columns=["_all"], errors="ignore")
    long["n"] = long["n"].astype(int)
    return long.rename(columns={c: c.removeprefix("param.") for c in by})


def summary_axes(summary: pd.DataFrame) -> list[str]:
    """The grouping columns of a ``summarise`` frame."""
    return [c for c in summary.columns if c not in ("metric", "mean", "sd", "n")]


def format_summary(summary: pd.DataFrame, *, digits: int = 3) -> pd.DataFrame:
    """Wide table for reading: one row per axis combination, one ``mean ± sd`` column per metric, n."""
    axes = summary_axes(summary)
    cells = summary.assign(text=[
        f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if pd.notna(s) else "") if pd.notna(m) else "—"
        for m, s in zip(summary["mean"], summary["sd"], strict=True)])
    metrics = list(dict.fromkeys(summary["metric"]))
    if not axes:
        cells = cells.assign(all="all")
        axes = ["all"]
    wide = cells.pivot_table(index=axes, columns="metric", values="text", aggfunc="first", dropna=False)
    wide = wide.reindex(columns=metrics)
    wide["n"] = cells.groupby(axes, dropna=False)["n"].max()
    wide.columns.name = None
    return wide.reset_index()


def unstack_metrics(table: pd.DataFrame, patterns: dict[str, str], *, key: str) -> pd.DataFrame:
    """Per-model (per-method, per-run) metric columns → rows keyed by ``key``.

    ``patterns`` maps an output name to a column pattern with one ``*`` for the key, e.g.
    ``{"unseen_aupr": "models.*.test_aupr"}``: column ``models.sfmn.test_aupr`` becomes a row with
    ``key="sfmn"``, ``unseen_aupr=<value>``, alongside the point's ``point`` and ``param.`` columns.
    """
    ids = [c for c in table.columns if c == "point" or str(c).startswith("param.")]
    parts = []
    for name, pattern in patterns.items():
        if pattern.count("*") != 1:
            raise ValueError(f"pattern {pattern!r} must contain exactly one '*' (the {key})")
        regex = re.compile("^" + re.escape(pattern).replace(r"\*", "(.+)") + "$")
        matched = {c: m.group(1) for c in table.columns if (m := regex.match(str(c)))}
        if not matched:
            raise ResultsError(f"no column of the results table matches {pattern!r} (for {name!r})")
        long = table[ids + list(matched)].melt(id_vars=ids, var_name=key, value_name=name)
        long[key] = long[key].map(matched)
        parts.append(long.set_index([*ids, key]))
    out = pd.concat(parts, axis=1).reset_index()
    return out.dropna(subset=list(patterns), how="all").reset_index(drop=True)


def write_summary(sweep_dir: str | Path, table: pd.DataFrame | None = None,
                  metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """``summary.csv`` + ``summary.png``/``.html`` in the sweep directory; metrics from its grid.yaml if named."""
    from latentlab.plots import sweep as sweep_plots

    sweep_dir = Path(sweep_dir)
    table = load_results(sweep_dir) if table is None else table
    if metrics is None and (sweep_dir / "grid.yaml").exists():
        metrics = read_grid(sweep_dir / "grid.yaml").metrics
    summary = summarise(table, metrics)
    io.write_csv(sweep_dir / "summary.csv", summary)
    io.save_chart(sweep_plots.summary_chart(summary), sweep_dir / "summary")
    return summary
