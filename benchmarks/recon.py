"""Study 3 at scale: imputer training throughput, inference vs Beagle 5.4 on the same files, peak memory.

Run: ``.venv/bin/python benchmarks/recon.py [--quick] [--threads N]``. Prints tables; nothing here
is a test. Inference is reported per 1,000 target haplotypes × 1 Mb (retrieval included), next to
Beagle's wall time on the same panel.vcf / targets.vcf. Figures go into the README by hand.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch
from memory import PeakSampler  # benchmarks/memory.py (this directory is on sys.path)

from latentlab import train
from latentlab.data import haplotypes as hp
from latentlab.losses import recon as rl
from latentlab.models.imputer import BertRagImputer
from latentlab.studies import recon


def dataset(n_panel: int, n_target: int, length_bp: int, out: Path, seed: int = 0):
    sim = hp.simulate(n_panel, n_target, length_bp, seed=seed + 1)
    data = hp.split_panel_targets(sim, n_target, array_fraction=0.3, min_array_maf=0.05, seed=seed)
    paths = hp.write_dataset(data, out)
    return hp.load_dataset(paths), paths


def training_throughput(params: recon.ReconParams, prep: recon.Prepared, arm: str) -> dict:
    """One epoch of train.fit (contract check, focal + recon terms, no validation): windows per second."""
    model = BertRagImputer(params.config())
    obj = rl.ReconObjective(model, arm, 5.0)
    batches = train.minibatches(len(prep.train), params.batch_size, 0)
    warm = recon.to_batch(prep.train, np.arange(min(params.batch_size, len(prep.train))), prep.af)
    sum(obj.loss_terms(warm).values()).backward()  # first-call overheads are not throughput
    model.zero_grad(set_to_none=True)
    with PeakSampler() as mem:
        started = time.perf_counter()
        train.fit(obj, lambda e: (recon.to_batch(prep.train, i, prep.af) for i in batches(e)),
                  weights=obj.weights(), epochs=1, lr=params.lr, progress=False)
        seconds = time.perf_counter() - started
    return {"arm": arm, "depth": params.depth, "d_model": params.d_model, "windows": len(prep.train),
            "seconds": seconds, "windows_per_s": len(prep.train) / seconds, "peak_rss_mb": mem.peak_mb}


def inference(params: recon.ReconParams, data: hp.ImputationData) -> dict:
    """Retrieval + windowing + forward over every target, scaled to 1,000 haplotypes × 1 Mb."""
    model = BertRagImputer(params.config()).eval()
    with PeakSampler() as mem:
        started = time.perf_counter()
        ws = recon.build_windows(data.truth.haps, data.panel.flat(), data.array, data.panel.positions,
                                 params.window, params.k)
        recon.predict_windows(model, ws, data.af)
        seconds = time.perf_counter() - started
    mb = (data.panel.positions[-1] - data.panel.positions[0]) / 1e6
    haps = 2 * len(data.truth.samples)
    return {"target_haplotypes": haps, "Mb": mb, "seconds": seconds,
            "s_per_1000_haps_x_1Mb": seconds * (1000 / haps) / mb, "peak_rss_mb": mem.peak_mb}


def beagle(paths: dict, data: hp.ImputationData, threads: int) -> dict:
    import shutil
    import subprocess

    exe = shutil.which("beagle")
    if exe is None:
        return {"threads": threads, "seconds": float("nan"), "note": "beagle not installed: row skipped"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [exe, f"ref={paths['panel']}", f"gt={paths['targets']}", f"out={tmp}/b", f"nthreads={threads}"]
        started = time.perf_counter()
        proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak = 0
        while proc.poll() is None:  # poll the JVM's RSS (ru_maxrss of children counts the pre-exec fork)
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"beagle failed: {proc.stderr.read().decode()[-2000:]}")
    mb = (data.panel.positions[-1] - data.panel.positions[0]) / 1e6
    haps = 2 * len(data.truth.samples)
    return {"threads": threads, "target_haplotypes": haps, "Mb": mb, "seconds": seconds,
            "s_per_1000_haps_x_1Mb": seconds * (1000 / haps) / mb,
            "peak_rss_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--threads", type=int, default=1, help="torch and Beagle threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 200)
    if args.quick:
        n_panel, n_target, length, preset = 40, 20, 100_000, "quick"
    else:  # 1,000 target haplotypes × 1 Mb against a 500-individual panel
        n_panel, n_target, length, preset = 500, 500, 1_000_000, "standard"
    params = recon.ReconParams.from_preset(preset, n_panel=n_panel, n_target=n_target, length_bp=length,
                                           progress=False, max_train_windows=0 if args.quick else 2000)
    with tempfile.TemporaryDirectory() as tmp:
        data, paths = dataset(n_panel, n_target, length, Path(tmp))
        print(f"data: {n_panel} panel individuals, {n_target} targets, {data.panel.n_sites} sites, "
              f"{int(data.array.sum())} array sites, {length / 1e6:g} Mb")
        prep = recon.prepare(data, params)
        rows = [training_throughput(params, prep, arm) for arm in ("A", "C")]
        print("\nTraining throughput (one train.fit epoch, batch", params.batch_size, ")")
        print(pd.DataFrame(rows).round(2).to_string(index=False))
        inf = inference(params, data)
        bg = beagle(paths, data, args.threads)
        print("\nInference on all targets (imputer untrained weights: timing only) vs Beagle 5.4, same files")
        print(pd.DataFrame([{"method": f"BERT+RAG imputer (depth {params.depth})", **inf},
                            {"method": "Beagle 5.4", **bg}]).round(3).to_string(index=False))
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"threads: {args.threads}; {np.__name__} {np.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
