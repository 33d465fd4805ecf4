"""A sweep's grid file (YAML): fixed parameters, the axes to cross, and the metrics to summarise::

    base: {preset: quick}
    grid: {arm: [A, C], gamma: [5.0, 2.5], seed: [0, 1, 2]}
    metrics: [best_arm.common_f1]          # optional; the summary's columns

``read_grid`` validates it and names the file and key on every error; each point's key
(``arm=A,gamma=5.0,seed=0``) is its output directory's name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any

import yaml


class GridError(ValueError):
    """A grid file is missing, malformed, or names no parameter to vary."""


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
