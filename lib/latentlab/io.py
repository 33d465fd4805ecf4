"""Atomic result writing: a rerun never leaves a half-written file that looks complete.

A study's results are one *generation* (``write_study_outputs``): every table, chart and
metrics.json is written into a fresh directory beside ``output_dir`` and swapped in at the end,
so a run that dies midway leaves the previous generation whole and no file of its own. Files a
generation does not own survive the swap: subdirectories (simulated ``data/``, caches), executed
notebooks (papermill writes them while the run goes on) and anything a user put there. The
previous generation's own files (listed in its ``.generation.json``) are replaced as one.

JSON cannot hold NaN or infinity. ``write_json`` writes them as ``null`` and lists every such
value, by its path, under the top-level key ``non_finite`` (``{"auroc.sd": "nan"}``), so a null
is never silent; a non-dict payload with such a value is refused.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
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


def _jsonable(value: Any, path: str = "", non_finite: dict[str, str] | None = None) -> Any:
    """Plain JSON types; NaN/inf become None and are recorded in ``non_finite`` by their path."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{path}.{k}" if path else str(k), non_finite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{path}[{i}]", non_finite) for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), path, non_finite)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        if non_finite is None:
            raise ValueError(f"{path or 'value'} is {value}, which JSON cannot hold")
        non_finite[path or "value"] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, payload: Any) -> Path:
    """Pretty, sorted JSON, atomically. NaN/inf: null plus a ``non_finite`` record (dicts only)."""
    non_finite: dict[str, str] = {}
    plain = _jsonable(payload, "", non_finite if isinstance(payload, dict) else None)
    if non_finite:
        if "non_finite" in plain:
            raise ValueError(f"{path}: the payload already has a 'non_finite' key; cannot record NaN/inf values")
        plain["non_finite"] = non_finite
    text = json.dumps(plain, indent=2, sort_keys=True, allow_nan=False)
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


GENERATION_FILE = ".generation.json"  # the files one generation wrote (so the next one replaces exactly those)
RESULT_SUFFIXES = (".csv", ".json", ".png", ".html", ".svg", ".parquet")  # results of a pre-generation run


def write_study_outputs(
    output_dir: str | Path,
    *,
    params: dict[str, Any],
    metrics: dict[str, Any],
    tables: dict[str, pd.DataFrame] | None = None,
    charts: dict[str, Any] | None = None,
    history: pd.DataFrame | None = None,
) -> Path:
    """A study's results as one generation: one CSV per table, PNG + HTML per chart, history.csv and
    metrics.json (with ``run_info``: when, which parameters, which commit), swapped in together."""
    out = Path(output_dir)
    with generation(out) as stage:
        for name, frame in (tables or {}).items():
            write_csv(stage / f"{name}.csv", frame)
        for name, chart in (charts or {}).items():
            save_chart(chart, stage / name)
        if history is not None:
            write_csv(stage / "history.csv", history)
        write_json(stage / "metrics.json", {"params": params, "run_info": run_info(params), **metrics})
    return out


def run_info(params: dict[str, Any]) -> dict[str, Any]:
    """Which run wrote a result: UTC time, a fingerprint of the parameters, the git commit if any."""
    canonical = json.dumps(_jsonable(params, "", {}), sort_keys=True)
    commit, dirty = _git_commit()
    return {"written_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "params_fingerprint": hashlib.sha256(canonical.encode()).hexdigest()[:16],
            "git_commit": commit, "git_dirty": dirty}


def _git_commit() -> tuple[str | None, bool | None]:
    from latentlab.params import project_root

    root = project_root()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10)
        return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None, None


@contextlib.contextmanager
def generation(output_dir: str | Path) -> Iterator[Path]:
    """Yield a fresh directory beside ``output_dir``; on success it becomes ``output_dir`` (see module doc).

    On an exception the fresh directory is removed and ``output_dir`` is left as it was.
    """
    out = Path(output_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _recover(out)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-{os.getpid()}-", dir=out.parent))
    try:
        yield stage
        written = sorted(p.name for p in stage.iterdir())
        write_json(stage / GENERATION_FILE, {"files": written, "run_info": run_info({})})
        _carry_over(out, stage, set(written))
        _swap(out, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _carry_over(out: Path, stage: Path, written: set[str]) -> None:
    """Hard-link (else copy) into ``stage`` what ``out`` holds that this generation does not replace."""
    if not out.is_dir():
        return
    previous = _previous_files(out)
    for entry in out.iterdir():
        if entry.name in written or entry.name == GENERATION_FILE:
            continue
        owned = entry.name in previous if previous is not None else (
            entry.is_file() and entry.suffix in RESULT_SUFFIXES)
        if owned and not entry.is_dir():
            continue  # the previous generation's result: replaced by this one as a whole
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, stage / entry.name, copy_function=_link_or_copy, symlinks=True)
        else:
            _link_or_copy(entry, stage / entry.name)


def _previous_files(out: Path) -> set[str] | None:
    try:
        return set(json.loads((out / GENERATION_FILE).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _swap(out: Path, stage: Path) -> None:
    if not out.exists():
        os.rename(stage, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
    os.rmdir(old)
    os.rename(out, old)
    os.rename(stage, out)
    shutil.rmtree(old, ignore_errors=True)


def _recover(out: Path) -> None:
    """Clean what a killed run left beside ``out``; bring back a generation caught between two renames."""
    for leftover in sorted(out.parent.glob(f".{out.name}.old-*")) + sorted(out.parent.glob(f".{out.name}.new-*")):
        pid = leftover.name.rsplit(".", 1)[-1].split("-")[1] if "-" in leftover.name else ""
        if pid.isdigit() and _alive(int(pid)):
            continue
        if ".old-" in leftover.name and not out.exists():
            os.rename(leftover, out)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
