"""Study 3 acceptance (issue 12): accuracy vs the retrieval alone and Beagle, inference time, training time.

Run: ``.venv/bin/python benchmarks/recon.py [--quick] [--arm C --gamma 2.5]``. Prints tables; nothing here
is a test. Three parts, each measured in this run:

1. Accuracy on two panels — the standard preset's simulation and a harder one (500 panel individuals,
   ~2.5 % of sites typed): one arm trained at the standard preset against the k-vote of the same
   retrieval and Beagle 5.4 on the same VCFs, with issue 12's bars (best arm − k-vote >= 0.03 on common
   variants; Beagle − best arm <= 0.03 common, <= 0.05 rare).
2. Training time of that arm at standard with ``--train-threads`` torch threads (bar: <= 5 min on 2 cores).
3. Inference for 1,000 target haplotypes × 1 Mb (retrieval + windows + forward) against Beagle on one
   thread, as a ratio of wall time and of CPU time (bar: <= 5×).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from latentlab.recon import data as hp
from latentlab.recon import pipeline as recon


def panel_files(n_panel: int, n_target: int, length_bp: int, typed_share: float | None, out: Path,
                seed: int = 0) -> dict[str, Path]:
    """Simulate, split and write panel/targets/truth VCFs; ``typed_share`` = share of ALL sites on the array."""
    sim = hp.simulate(n_panel, n_target, length_bp, seed=seed + 1)
    fraction = 0.3
    if typed_share is not None:  # the array draws from common sites: scale so typed/all ≈ typed_share
        every = hp.split_panel_targets(sim, n_target, array_fraction=1.0, min_array_maf=0.05, seed=seed)
        fraction = min(1.0, typed_share * every.panel.n_sites / every.array.sum())
    data = hp.split_panel_targets(sim, n_target, array_fraction=fraction, min_array_maf=0.05, seed=seed)
    return hp.write_dataset(data, out)


def accuracy(name: str, paths: dict[str, Path], params: recon.ReconParams, arm: str, gamma: float,
             threads: int) -> tuple[list[dict], dict, recon.ArmRun, recon.Prepared]:
    data = hp.load_dataset(paths)
    prep = recon.prepare(data, params)
    torch.set_num_threads(threads)
    run = recon.train_arm(prep, params, arm, gamma, params.seed)
    torch.set_num_threads(1)
    beagle = recon.run_beagle(paths, prep, paths["panel"].parent / "beagle", threads=1)
    table = recon.ablation_table([run], beagle, recon.retrieval_vote(prep), recon.retrieval_vote(prep, weighted=True),
                                 recon.copying_vote(prep))
    gap = recon.beagle_gap(recon.summary_table(table))
    rows = [{"panel": name, "row": r["arm"] if pd.isna(r["gamma"]) else f"arm {r['arm']} γ={r['gamma']:g}",
             **{c: r[c] for c in ("f1_overall", "f1_common", "f1_rare", "r2_site_mean")}} for _, r in table.iterrows()]
    typed = f"{data.array.sum()} of {data.panel.n_sites} sites typed ({100 * data.array.mean():.1f} %)"
    return rows, {"panel": name, "typed": typed, **gap}, run, prep


def inference(params: recon.ReconParams, model: torch.nn.Module, data: hp.ImputationData) -> dict:
    """Retrieval + copying model + windowing + forward over every target on one thread (torch and BLAS: the
    copying model's interpolation is matrix products), scaled to 1,000 haplotypes × 1 Mb."""
    torch.set_num_threads(1)
    with threadpool_limits(1):
        started, cpu_started = time.perf_counter(), time.process_time()
        ws = recon.build_sampled(data.truth.haps, np.arange(len(data.truth.samples)), data.panel.flat(), data.array,
                                 data.panel.positions, params, 0, np.random.default_rng(0))
        retrieval = time.perf_counter() - started
        recon.predict_windows(model, ws, data.af)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    mb = (data.panel.positions[-1] - data.panel.positions[0]) / 1e6
    haps = 2 * len(data.truth.samples)
    return {"method": f"BERT+RAG imputer (depth {params.depth}, k {params.k})", "target_haplotypes": haps, "Mb": mb,
            "seconds": seconds, "cpu_seconds": cpu, "of which retrieval + copying model": retrieval,
            "s_per_1000_haps_x_1Mb": seconds * (1000 / haps) / mb}


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far: Beagle's JVM included."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def beagle(paths: dict, data: hp.ImputationData) -> dict:
    exe = shutil.which("beagle")
    if exe is None:
        return {"method": "Beagle 5.4", "seconds": float("nan"), "note": "beagle not installed: row skipped"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [exe, f"ref={paths['panel']}", f"gt={paths['targets']}", f"out={tmp}/b", "nthreads=1"]
        started, cpu_started = time.perf_counter(), _children_cpu()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu_started
        if proc.returncode != 0:
            raise RuntimeError(f"beagle failed: {proc.stderr[-2000:]}")
    mb = (data.panel.positions[-1] - data.panel.positions[0]) / 1e6
    haps = 2 * len(data.truth.samples)
    return {"method": "Beagle 5.4 (nthreads=1)", "target_haplotypes": haps, "Mb": mb, "seconds": seconds,
            "cpu_seconds": cpu, "s_per_1000_haps_x_1Mb": seconds * (1000 / haps) / mb}


def report_accuracy(rows: list[dict], bars: list[dict], preset: str, threads: int) -> None:
    print("1 · ALT-F1 on masked target sites (one seed; arm trained at the", preset, "preset)")
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    cols = ["panel", "typed", "best_arm", "vote_gain_common", "bar_vote_gain_common_met", "common_gap",
            "bar_beagle_common_met", "rare_gap", "bar_beagle_rare_met", "train_seconds", "epochs", "train_windows"]
    print("\nIssue 12's bars (gain over k-vote >= 0.03 common; Beagle gap <= 0.03 common, <= 0.05 rare);"
          f" training with {threads} torch thread(s) (bar: <= 300 s on 2 cores)")
    print(pd.DataFrame(bars).reindex(columns=cols).round(3).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--arm", default="C")
    parser.add_argument("--gamma", type=float, default=2.5)
    parser.add_argument("--train-threads", type=int, default=2, help="torch threads while training (bar: 2 cores)")
    parser.add_argument("--panels", default="standard,hard", help="which accuracy panels to run ('' = inference only)")
    parser.add_argument("--depth", type=int, default=None, help="transformer depth (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=1, help="imputer/Beagle inference pairs (median ratio printed)")
    args = parser.parse_args()
    pd.set_option("display.width", 220)
    preset = "quick" if args.quick else "standard"
    depth = {} if args.depth is None else {"depth": args.depth}
    base = recon.ReconParams.from_preset(preset, progress=False, cache=False, **depth)
    size = (40, 10, 100_000) if args.quick else (None, None, 1_000_000)
    panels = {"standard": (size[0] or base.n_panel, size[1] or base.n_target, size[2], None),
              "hard": (size[0] or 500, size[1] or 100, size[2], 0.025)}
    rows, bars = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(None, args.panels.split(",")):
            n_panel, n_target, length, typed = panels[name]
            paths = panel_files(n_panel, n_target, length, typed, Path(tmp) / name)
            params = recon.ReconParams.from_preset(preset, progress=False, cache=False, data=str(Path(tmp) / name),
                                                   output_dir=str(Path(tmp) / "out"), **depth)
            r, b, run, prep = accuracy(name, paths, params, args.arm, args.gamma, args.train_threads)
            rows += r
            bars.append({**b, "train_seconds": run.metrics["seconds_total"], "epochs": run.metrics["epochs_run"],
                         "train_windows": len(prep.train)})
        if rows:
            report_accuracy(rows, bars, preset, args.train_threads)
        params = base  # the panels' params differ from it only in data and output_dir
        n_target = 50 if args.quick else 500  # 1,000 target haplotypes
        paths = panel_files(params.n_panel if args.quick else 500, n_target, size[2], 0.025, Path(tmp) / "speed")
        data = hp.load_dataset(paths)
        model = recon.BertRagImputer(params.config()).eval()  # the cost does not depend on the weights' values
        print(f"\n3 · Inference, one thread, {2 * n_target} target haplotypes × {size[2] / 1e6:g} Mb "
              f"({params.n_panel if args.quick else 500}-individual panel)")
        ratios = []
        for rep in range(args.repeats):  # imputer and Beagle alternate, so both see the same load
            inf, bg = inference(params, model, data), beagle(paths, data)
            ratios.append((inf["seconds"] / bg["seconds"], inf["cpu_seconds"] / bg["cpu_seconds"]))
            print(pd.DataFrame([inf, bg]).round(2).to_string(index=False, header=rep == 0))
        wall, cpu = np.median(np.array(ratios), axis=0)
        pairs = f" (median of {len(ratios)} pairs)" if len(ratios) > 1 else ""
        print(f"ratio imputer / Beagle{pairs}: "
              f"{wall:.1f}× wall, {cpu:.1f}× CPU time (bar: <= 5×; on a loaded machine read the CPU "
              "ratio: wall time there measures the scheduler)")
    print(f"\ntorch {torch.__version__}; numpy {np.__version__}; timings are wall clock on this machine as it was")


if __name__ == "__main__":
    main()
