"""Atomic result writing: a rerun never leaves a half-written file that looks complete."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path`` (same directory, same filesystem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, payload: Any) -> Path:
    text = json.dumps(_jsonable(payload), indent=2, sort_keys=True)
    return atomic_write(path, lambda p: p.write_text(text + "\n"))


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    return atomic_write(path, lambda p: frame.to_csv(p, index=False))


def save_chart(chart: Any, stem: str | Path, *, png: bool = True) -> list[Path]:
    """Save an altair chart as standalone HTML and (via vl-convert) PNG."""
    stem = Path(stem)
    written = [atomic_write(stem.with_suffix(".html"), lambda p: chart.save(str(p), format="html"))]
    if png:
        written.append(
            atomic_write(stem.with_suffix(".png"), lambda p: chart.save(str(p), format="png"))
        )
    return written


def write_study_outputs(
    output_dir: str | Path,
    *,
    params: dict[str, Any],
    metrics: dict[str, Any],
    tables: dict[str, pd.DataFrame] | None = None,
    charts: dict[str, Any] | None = None,
    history: pd.DataFrame | None = None,
) -> Path:
    """A study's results: one CSV per table, PNG + HTML per chart, history.csv, then metrics.json.

    metrics.json is written last, so its presence means the rest is complete.
    """
    out = Path(output_dir)
    for name, frame in (tables or {}).items():
        write_csv(out / f"{name}.csv", frame)
    for name, chart in (charts or {}).items():
        save_chart(chart, out / name)
    if history is not None:
        write_csv(out / "history.csv", history)
    write_json(out / "metrics.json", {"params": params, **metrics})
    return out
