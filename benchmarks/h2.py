"""Study 1 at scale: whole-study wall time and peak memory, and AE epoch scaling.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/h2.py [--quick]``). Prints tables;
nothing here is a test. Figures go into the README by hand, with the date.

Old against new under load: ``benchmarks/h2.py --against /tmp/h2base/lib --repeats 1`` runs the
whole study with this checkout's library and with another (e.g. ``git worktree add --detach
/tmp/h2base main``), alternating, each in its own process, and prints the time and peak-memory ratios
(a shared machine's load hits both alike; the ratio is what carries over to an idle machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from memory import PeakSampler  # benchmarks/memory.py (this directory is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def whole_study(preset: str, overrides: dict, root: Path = ROOT) -> dict:
    """Execute notebooks/01_h2.ipynb with papermill; the kernel is our child process.

    Besides wall time and the kernel's peak RSS it reports the kernel's CPU seconds (user + system,
    which a shared machine's load inflates far less than wall time) and the slowest cells.
    """
    import nbformat
    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        papermill.execute_notebook(
            str(root / "notebooks/01_h2.ipynb"), str(Path(tmp) / "out.ipynb"),
            parameters={"preset": preset, "output_dir": str(Path(tmp) / "run"), "progress": False, **overrides},
            kernel_name="python3", progress_bar=False, cwd=str(root),
        )
        seconds = time.perf_counter() - started
        executed = nbformat.read(Path(tmp) / "out.ipynb", as_version=4)
        metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cells = sorted(((c.metadata.get("papermill", {}).get("duration") or 0.0, _first_code_line(c.source))
                    for c in executed.cells if c.cell_type == "code"), reverse=True)
    return {"seconds": seconds, "kernel_cpu_s": children.ru_utime + children.ru_stime,
            "peak_rss_gb": children.ru_maxrss / 2**20, "slowest_cells": [[round(d, 1), line] for d, line in cells[:6]],
            "leakage_auc": metrics.get("leakage_auc", {})}


def _first_code_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return lines[0][:70] if lines else ""


def whole_study_with(lib: str, preset: str) -> dict:
    """``whole_study`` in a fresh process with another checkout's library *and* notebook (``lib``'s parent);
    peak RSS and CPU are that process's kernel's own."""
    env = {**os.environ, "PYTHONPATH": lib}
    done = subprocess.run([sys.executable, __file__, "--whole-study", preset, "--root", str(Path(lib).resolve().parent)],
                          capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(against: str, preset: str, repeats: int) -> None:
    """Alternate this checkout and ``against``; print wall, kernel CPU, peak RSS and their ratios, the
    slowest cells, and how far the held-out leakage AUCs of the two differ."""
    ours = str(ROOT / "lib")
    rows = []
    for r in range(repeats):
        order = [("this checkout", ours), ("against", against)]
        for label, lib in order if r % 2 == 0 else order[::-1]:
            rows.append({"lib": label, "repeat": r, "load_1min": os.getloadavg()[0], **whole_study_with(lib, preset)})
    table = pd.DataFrame(rows)
    print(f"\nWhole study at {preset}: this checkout vs {against} (alternating, {repeats} repeat(s))")
    print(table[["lib", "repeat", "load_1min", "seconds", "kernel_cpu_s", "peak_rss_gb"]].round(2).to_string(index=False))
    for row in rows:
        print(f"slowest cells, {row['lib']} repeat {row['repeat']}: {row['slowest_cells']}")
    med = table.groupby("lib")[["seconds", "kernel_cpu_s", "peak_rss_gb"]].median()
    new, old = med.loc["this checkout"], med.loc["against"]
    print(f"ratios new/old: wall {new.seconds / old.seconds:.3f}, kernel CPU {new.kernel_cpu_s / old.kernel_cpu_s:.3f}, "
          f"peak memory {new.peak_rss_gb / old.peak_rss_gb:.3f}")
    aucs = pd.DataFrame({f"{r['lib']} {r['repeat']}": r["leakage_auc"] for r in rows})
    print("held-out leakage AUC per method (linear probe):")
    print(aucs.round(3).to_string())


def ae_epoch(n_cells: int, n_genes: int, batch_size: int = 64) -> dict:
    """One AE epoch on simulated sparse counts; memory above the loaded data."""
    from latentlab.h2 import pipeline as h2
    from latentlab.h2.data import ScrnaSimulation, simulate_counts

    params = h2.H2Params.from_preset("standard", n_cells=n_cells, n_genes=n_genes, epochs=1,
                                     batch_size=batch_size, progress=False)
    adata = h2.preprocess(simulate_counts(ScrnaSimulation(n_cells=n_cells, n_genes=n_genes)), params)
    data_mb = (adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes) / 2**20
    with PeakSampler() as mem:
        started = time.perf_counter()
        h2.ae_embedding(adata, params)
        seconds = time.perf_counter() - started
    return {"cells": n_cells, "genes": n_genes, "density": adata.X.nnz / np.prod(adata.shape),
            "data_mb": data_mb, "epoch_s": seconds, "s_per_1k_cells": 1000 * seconds / n_cells,
            "train_extra_mb": mem.extra_mb}


def ae_epoch_in_subprocess(n_cells: int, n_genes: int) -> dict:
    """Each size in a fresh process, so one size's memory high-water mark cannot hide another's."""
    done = subprocess.run([sys.executable, __file__, "--ae-epoch", str(n_cells), str(n_genes)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--ae-epoch", nargs=2, type=int, metavar=("CELLS", "GENES"), help=argparse.SUPPRESS)
    parser.add_argument("--whole-study", metavar="PRESET", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--against", metavar="LIB", help="another checkout's lib/ to time the whole study against")
    parser.add_argument("--preset", default="full", help="preset for --against (default full)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating repeats for --against")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.ae_epoch:
        print(json.dumps(ae_epoch(*args.ae_epoch)))
        return
    if args.whole_study:
        print(json.dumps(whole_study(args.whole_study, {}, args.root)))
        return
    if args.against:
        compare(args.against, args.preset, args.repeats)
        return
    pd.set_option("display.width", 200)

    sizes = [2_000, 5_000] if args.quick else [5_000, 10_000, 25_000, 50_000]
    rows = [ae_epoch_in_subprocess(n, 2000) for n in sizes]
    if not args.quick:
        rows.append(ae_epoch_in_subprocess(2418, 18683))
    print("\nAE epoch time (one epoch incl. contract check and embedding; batch 64)")
    print(pd.DataFrame(rows).round(3).to_string(index=False))

    runs = {"quick": ("quick", {})} if args.quick else {
        "full (18,683 genes; AE on 2,000 HVGs)": ("full", {}),
    }
    table = []
    for label, (preset, overrides) in runs.items():
        table.append({"run": label, **whole_study(preset, overrides)})
    print("\nWhole study (papermill, 01_h2.ipynb)")
    print(pd.DataFrame(table).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
