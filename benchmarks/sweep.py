"""Sweep scaling: a 12-point grid of Study 1 (small sizes) on a LocalCluster with 1 vs 2 workers.

Run: ``.venv/bin/python benchmarks/sweep.py [--quick]``. Prints wall time and speed-up.
Each point is a real papermill execution of notebooks/01_h2.ipynb; one
BLAS/torch thread per point, so two workers use the machine's two cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from latentlab.sweep import run as sweep_run

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_h2.ipynb"


def grid_file(directory: Path, n_seeds: int) -> Path:
    path = directory / "bench.yaml"
    path.write_text(
        "base: {preset: quick, n_cells: 400, n_genes: 300, epochs: 5, n_boot: 20, n_perm: 5,\n"
        "       mitigations: [mmd], penalty_weights: {mmd: [0.3]}, baselines: [], scib: false,\n"
        "       probes: [linear], progress: false}\n"
        f"grid: {{chip_effect: [0.0, 0.3], seed: {list(range(n_seeds))}}}\n"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 4-point grid, to check the script runs")
    args = parser.parse_args()
    n_seeds = 2 if args.quick else 6
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        grid = grid_file(Path(tmp), n_seeds)
        for workers in (1, 2):
            started = time.perf_counter()
            status = sweep_run.run_sweep(NOTEBOOK, grid, out_dir=Path(tmp) / f"w{workers}", workers=workers)
            seconds = time.perf_counter() - started
            rows.append({"points": len(status), "workers": workers, "ok": int(status.ok.sum()),
                         "wall_s": seconds, "mean_point_s": status.seconds.mean()})
    table = pd.DataFrame(rows)
    table["speed_up"] = table.wall_s.iloc[0] / table.wall_s
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
