"""The main job: every study notebook through papermill, one after another, then the report.

A study that fails does not stop the others: its executed notebook (with the failing cell)
and a ``run_status.json`` saying what failed are written into its output directory, the
report shows it, and the job exits non-zero once every study has had its turn.

``python -m latentlab.runall --preset standard`` (what ``make run`` calls).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import papermill as pm

from latentlab import io
from latentlab.params import project_root

STUDIES: tuple[tuple[str, str], ...] = (
    ("01_h2_leakage", "h2_leakage"),
    ("02_sfmn", "sfmn"),
    ("03_recon_ablation", "recon_ablation"),
    ("04_setvae_collapse", "setvae_collapse"),
)
STATUS_FILE = "run_status.json"


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
                            log_output=False)
    except Exception as exc:  # noqa: BLE001 — a study's failure is recorded; the next study still runs
        error, cell = _failure(exc)
    status = StudyRun(study=study, notebook=notebook, preset=preset, ok=not error,
                      seconds=round(time.perf_counter() - t0, 1), started=started, error=error, failed_cell=cell)
    io.write_json(out_dir / STATUS_FILE, dataclasses.asdict(status))
    return status


def run_all(preset: str, *, studies: list[str] | None = None, runs: str | Path = "runs",
            notebooks: str | Path | None = None) -> list[StudyRun]:
    """Every study (or the named ones) in order, then ``runs/index.html``.

    Relative ``runs`` are taken from the project root (as every study's ``output_dir`` is).
    """
    from latentlab import report

    root = project_root()
    runs = Path(runs) if Path(runs).is_absolute() else root / runs
    notebooks = Path(notebooks) if notebooks is not None else root / "notebooks"
    chosen = [(nb, st) for nb, st in STUDIES if not studies or st in studies or nb in studies]
    if studies and len(chosen) != len(studies):
        known = [s for _, s in STUDIES]
        raise SystemExit(f"latentlab.runall: unknown study in {studies}; choose from {known}")
    results = []
    for notebook, study in chosen:
        print(f"== {notebook} ({preset}) -> {runs / study}", flush=True)
        result = run_study(notebook, study, preset=preset, runs=runs, notebooks=notebooks, cwd=root)
        print(f"   {'ok' if result.ok else 'FAILED'} in {result.seconds:.0f} s"
              + (f" — In [{result.failed_cell}]: {result.error}" if not result.ok else ""), flush=True)
        results.append(result)
    report.build_index(runs)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentlab.runall", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="standard", choices=("quick", "standard", "full"))
    parser.add_argument("--runs", default="runs", help="output root (default runs/)")
    parser.add_argument("--notebooks", default=None, help="folder of the study notebooks (default notebooks/)")
    parser.add_argument("studies", nargs="*", help="only these studies (default all four)")
    args = parser.parse_args(argv)
    results = run_all(args.preset, studies=args.studies or None, runs=args.runs, notebooks=args.notebooks)
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
