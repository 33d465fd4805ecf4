"""The main job: every study notebook through papermill, then the report.

``--jobs N`` runs N studies at once, each kernel limited to cores/N threads, longest study first
(by the last job's times): on 2 cores, the longest study on one and the other three on the
other. A study that fails does not stop the others: its executed notebook (with the failing cell)
and a ``run_status.json`` saying what failed are written into its output directory, the
report shows it, and the job exits non-zero once every study has had its turn. The number of study
slots still taken is kept in ``runs/.studies_running`` (its path in ``LATENTLAB_RUNNING_STUDIES``):
Study 4 trains its independent runs on the cores the other studies have left.

``python -m latentlab.runall --preset standard --jobs 2`` (what ``make run`` calls).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

import papermill as pm

from latentlab import io
from latentlab.kernels import EncryptedKernelManager
from latentlab.params import project_root

STUDIES: tuple[tuple[str, str], ...] = (
    ("01_h2", "h2"),
    ("02_sfmn", "sfmn"),
    ("03_recon", "recon"),
    ("04_setvae", "setvae"),
)
STATUS_FILE = "run_status.json"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
# Longest first when no earlier job has timed them (standard preset, idle 2-core machine, 2026-11).
TYPICAL_SECONDS = {"setvae": 950.0, "recon": 510.0, "sfmn": 300.0, "h2": 160.0}


@dataclasses.dataclass
class StudyRun:
    """What happened to one study in this job (written as ``run_status.json``)."""

    study: str
    notebook: str
    preset: str
    ok: bool
    seconds: float
    started: str
    error: str = ""
    failed_cell: int | None = None


def _failure(exc: BaseException) -> tuple[str, int | None]:
    """A one-line cause and the failing cell's execution count, from papermill or anything else."""
    if isinstance(exc, pm.PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue}", exc.exec_count
    return f"{type(exc).__name__}: {exc}", None


def run_study(notebook: str, study: str, *, preset: str, runs: Path, notebooks: Path, cwd: Path) -> StudyRun:
    """Execute one study notebook into ``runs/<study>/``; never raises for the study's own failure."""
    out_dir = runs / study
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STATUS_FILE).unlink(missing_ok=True)  # a status from an earlier job must not describe this one
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    error, cell = "", None
    try:
        pm.execute_notebook(notebooks / f"{notebook}.ipynb", out_dir / f"{notebook}.ipynb",
                            parameters={"preset": preset, "output_dir": str(out_dir)},
                            kernel_name="python3", cwd=str(cwd), progress_bar=sys.stderr.isatty(),
                            log_output=False, kernel_manager_class=EncryptedKernelManager,
                            shutdown_kernel="immediate")  # outputs are written; skip the kernel's 1-3 s teardown
    except Exception as exc:  # noqa: BLE001 — a study's failure is recorded; the next study still runs
        error, cell = _failure(exc)
    status = StudyRun(study=study, notebook=notebook, preset=preset, ok=not error,
                      seconds=round(time.perf_counter() - t0, 1), started=started, error=error, failed_cell=cell)
    io.write_json(out_dir / STATUS_FILE, dataclasses.asdict(status))
    return status


def run_all(preset: str, *, studies: list[str] | None = None, runs: str | Path = "runs",
            notebooks: str | Path | None = None, jobs: int = 1) -> list[StudyRun]:
    """Every study (or the named ones), ``jobs`` at a time, then ``runs/index.html``.

    Relative ``runs`` are taken from the project root (as every study's ``output_dir`` is).
    Results come back in the README's study order whatever order they finished in.
    """
    from latentlab import report

    root = project_root()
    runs = Path(runs) if Path(runs).is_absolute() else root / runs
    notebooks = Path(notebooks) if notebooks is not None else root / "notebooks"
    chosen = [(nb, st) for nb, st in STUDIES if not studies or st in studies or nb in studies]
    if studies and len(chosen) != len(studies):
        known = [s for _, s in STUDIES]
        raise SystemExit(f"latentlab.runall: unknown study in {studies}; choose from {known}")
    if jobs < 1:
        raise SystemExit(f"latentlab.runall: --jobs must be >= 1, got {jobs}")
    queue = sorted(chosen, key=lambda item: -expected_seconds(runs / item[1], item[1]))
    busy = runs / BUSY_FILE  # how many study slots are taken: a study may use the cores of the others
    with job_environment(jobs, busy):
        _write_busy(busy, min(jobs, len(queue)))
        done = _run_queue(queue, preset, runs, notebooks, root, jobs, busy)
    report.build_index(runs)
    return [done[study] for _, study in chosen]


def _run_queue(queue: list[tuple[str, str]], preset: str, runs: Path, notebooks: Path, root: Path, jobs: int,
               busy: Path) -> dict[str, StudyRun]:
    t0 = time.perf_counter()
    done: dict[str, StudyRun] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {}
        for notebook, study in queue:
            futures[pool.submit(run_study, notebook, study, preset=preset, runs=runs, notebooks=notebooks,
                                cwd=root)] = study
            print(f"queued {notebook} ({preset}) -> {runs / study}", flush=True)
        for future in as_completed(futures):
            result = future.result()
            done[result.study] = result
            # slots still taken: studies running or waiting (never a transient gap between two studies)
            _write_busy(busy, min(jobs, len(futures) - len(done)))
            print(f"[{time.perf_counter() - t0:6.0f} s] {result.study}: {'ok' if result.ok else 'FAILED'} "
                  f"in {result.seconds:.0f} s ({len(done)}/{len(futures)} studies done)"
                  + (f" — In [{result.failed_cell}]: {result.error}" if not result.ok else ""), flush=True)
    return done


BUSY_FILE = ".studies_running"
BUSY_ENV = "LATENTLAB_RUNNING_STUDIES"  # read by studies that can spread independent runs (Study 4)


def _write_busy(path: Path, slots: int) -> None:
    io.atomic_write(path, lambda tmp: tmp.write_text(f"{slots}\n"))


def job_variables(jobs: int, busy: Path) -> dict[str, str]:
    """What the job's kernels inherit: a share of the cores each, and where the busy-slot count is kept."""
    variables = {BUSY_ENV: str(busy)}
    if jobs > 1:
        per_job = str(max(1, (os.cpu_count() or 1) // jobs))
        variables.update({name: per_job for name in THREAD_VARIABLES})
    return variables


@contextlib.contextmanager
def job_environment(jobs: int, busy: Path) -> Iterator[dict[str, str]]:
    """Set the job's variables for the kernels it starts, and put everything back when it ends.

    The kernels inherit this process's environment, so the variables are set here — but only for the
    job: run in-process (a test, a notebook), a finished job must leave no thread limits behind and no
    pointer to a busy-slot file that would tell a later Study 4 run that cores are free. The file goes too.
    """
    variables = job_variables(jobs, busy)
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield variables
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        busy.unlink(missing_ok=True)


def expected_seconds(directory: Path, study: str) -> float:
    """How long the study took in the last job that ran it (its run_status.json), else a typical time."""
    try:
        return float(json.loads((directory / STATUS_FILE).read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return TYPICAL_SECONDS.get(study, 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentlab.runall", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="standard", choices=("quick", "standard", "full"))
    parser.add_argument("--runs", default="runs", help="output root (default runs/)")
    parser.add_argument("--notebooks", default=None, help="folder of the study notebooks (default notebooks/)")
    parser.add_argument("--jobs", type=int, default=1, help="studies run at once (default 1)")
    parser.add_argument("studies", nargs="*", help="only these studies (default all four)")
    args = parser.parse_args(argv)
    results = run_all(args.preset, studies=args.studies or None, runs=args.runs, notebooks=args.notebooks,
                      jobs=args.jobs)
    failed = [r for r in results if not r.ok]
    print("\nstudy               status   seconds")
    for r in results:
        print(f"{r.study:<19} {'ok' if r.ok else 'FAILED':<8} {r.seconds:>7.0f}")
    print(f"report: {Path(args.runs) / 'index.html'}")
    if failed:
        print(f"{len(failed)} of {len(results)} studies failed: " + ", ".join(r.study for r in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
