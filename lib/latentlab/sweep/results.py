"""Reading a sweep: collect the finished points into one table, summarise over seeds, draw it.

What a study notebook's "Reading a sweep" section calls (``latentlab.sweep.run`` writes the points)::

    results = load_results("runs/sweeps/recon")   # dir or results.csv/.parquet; validated
    summary = summarise(results)                  # long: <axes...>, metric, mean, sd, n (over seeds)
    format_summary(summary)                       # wide "mean ± sd" table for display
    from latentlab.sweep import plots as sweep_plots
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
import fnmatch
import json
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from latentlab import io
from latentlab.sweep.grid import read_grid


class ResultsError(ValueError):
    """A sweep's results table is missing, unreadable or not what ``collect`` writes."""


SEED_AXES = ("seed", "seeds")  # the axes a summary aggregates over (Study 2 takes a list of seeds)


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
                    f"`python -c \"from latentlab.sweep import results; results.collect('{path}')\"`" if points
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
    from latentlab.sweep import plots as sweep_plots

    sweep_dir = Path(sweep_dir)
    table = load_results(sweep_dir) if table is None else table
    if metrics is None and (sweep_dir / "grid.yaml").exists():
        metrics = read_grid(sweep_dir / "grid.yaml").metrics
    summary = summarise(table, metrics)
    io.write_csv(sweep_dir / "summary.csv", summary)
    io.save_chart(sweep_plots.summary_chart(summary), sweep_dir / "summary")
    return summary
