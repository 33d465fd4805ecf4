"""Study 2 at scale: data preparation time, training throughput (pairs/s) and peak memory.

Sizes: the ``standard`` preset and the seed's ``full`` size (enhancer 3 kb, promoter 2 kb, six cell lines,
~50k pairs). For each model/encoder, ``train.fit`` runs one epoch over the first ``--steps`` batches
(K × M = 4 × 32 pairs) including the contract check, so throughput is what a real run sees.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/sfmn.py [--quick]``). Prints tables; nothing here is a
test. Figures go into the README by hand, with the date and the machine load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import torch
from memory import PeakSampler  # benchmarks/memory.py (this directory is on sys.path)
from sklearn.metrics import average_precision_score, roc_auc_score

from latentlab import train
from latentlab.sfmn import pipeline as S


def prepare(preset: str, overrides: dict, directory: str):
    params = S.SFMNParams.from_preset(preset, output_dir=directory, progress=False, **overrides)
    with PeakSampler() as mem:
        started = time.perf_counter()
        data = S.load(params)
        loaded = time.perf_counter()
        data.scans()
        scanned = time.perf_counter()
    return params, data, {"preset": preset, "pairs": len(data.pairs), "cell_lines": len(data.cell_lines),
                          "enhancer_bp": data.enh_onehot.shape[2], "promoter_bp": data.prom_onehot.shape[2],
                          "simulate+load+one-hot_s": loaded - started, "pwm_scan_s": scanned - loaded,
                          "onehot_mb": (data.enh_onehot.nbytes + data.prom_onehot.nbytes) / 2**20,
                          "peak_rss_mb": mem.peak_mb}


def throughput(kind: str, encoder: str, params, data, steps: int) -> dict:
    import dataclasses

    p = dataclasses.replace(params, encoder=encoder)
    split = S.loco_splits(data, p)[0]
    inputs = S.PairInputs(data, encoder)
    model = S.build_model(kind, data, inputs, split, p)
    order = S.Batches(inputs, split.train_rows, p.cells_per_batch, p.samples_per_cell, 0)

    def first_batches(epoch):
        for i, batch in enumerate(order(epoch)):
            if i >= steps:
                return
            yield batch

    weights = S.design_weights(kind, p)
    weights = {k: (v if not callable(v) else v(train.StepContext(epoch=p.epochs - 1, step=0, epochs=p.epochs)))
               for k, v in weights.items()}  # phase-3 weights: every term active
    with PeakSampler() as mem, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        train.fit(S.objective_for(model, p), first_batches, weights=weights, epochs=1, lr=p.lr, progress=False)
        seconds = time.perf_counter() - started
    n = steps * p.cells_per_batch * p.samples_per_cell
    return {"model": kind, "encoder": encoder, "steps": steps, "pairs_per_s": n / seconds,
            "epoch_s_est": len(split.train_rows) / (n / seconds), "peak_rss_mb": mem.peak_mb}


def _per_cell_sklearn(y: np.ndarray, p: np.ndarray, cell: np.ndarray) -> dict[str, float]:
    """The monitors' per-cell-line scoring as it was before issue 15 (sklearn per cell line)."""
    aupr, auroc = [], []
    for c in np.unique(cell):
        m = cell == c
        if 0 < y[m].sum() < m.sum():
            aupr.append(average_precision_score(y[m], p[m]))
            auroc.append(roc_auc_score(y[m], p[m]))
    return {"aupr": float(np.mean(aupr)), "auroc": float(np.mean(auroc))}


def scoring_before_after(params, data, repeats: int = 7) -> dict:
    """Old (sklearn) vs new (numpy) per-cell-line scoring on one fold's training rows with a trained-looking
    score, interleaved; the two must give the same numbers. It runs every epoch of every LOCO run."""
    split = S.loco_splits(data, params)[0]
    rows = split.train_rows
    y, cell = data.pairs.label.to_numpy()[rows], data.pairs.cell.to_numpy()[rows]
    p = (np.random.default_rng(0).random(len(rows)) + 0.5 * y).astype(np.float32)
    old_t, new_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        old = _per_cell_sklearn(y, p, cell)
        old_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        new = S.per_cell_scores(y, p, cell)
        new_t.append(time.perf_counter() - t0)
    diff = max(abs(old[k] - new[k]) for k in old)
    return {"stage": "per-cell AUROC+AUPR (monitor, one fold's training rows)", "rows": len(rows),
            "old ms": 1e3 * float(np.median(old_t)), "new ms": 1e3 * float(np.median(new_t)),
            "old/new": float(np.median(old_t) / np.median(new_t)), "max |diff|": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--steps", type=int, default=50, help="training steps timed per configuration")
    args = parser.parse_args()
    torch.set_num_threads(2)
    pd.set_option("display.width", 200)
    sizes = {"quick": {}} if args.quick else {"standard": {}, "full": {}}
    configs = [("sfmn", "pwm"), ("film", "pwm"), ("erm", "pwm"), ("energy", "pwm"), ("dann", "pwm"),
               ("sfmn", "cnn"), ("erm", "cnn")]
    steps = 5 if args.quick else args.steps
    prep_rows, rows, scoring = [], [], []
    for preset, overrides in sizes.items():
        with tempfile.TemporaryDirectory() as tmp:
            params, data, prep = prepare(preset, overrides, tmp)
            prep_rows.append(prep)
            scoring.append({"preset": preset, **scoring_before_after(params, data)})
            for kind, encoder in configs:
                rows.append({"preset": preset, **throughput(kind, encoder, params, data, steps)})
    print("\nData preparation (simulate → write real formats → validated load → one-hot once → PWM scan once)")
    print(pd.DataFrame(prep_rows).round(2).to_string(index=False))
    print("\nIssue 15 hot spot, old vs new on the same data (interleaved, median)")
    print(pd.DataFrame(scoring).round(3).to_string(index=False))
    print(f"\nTraining throughput (train.fit, {steps} steps of 4 cell lines × 32 pairs, phase-3 weights, "
          f"torch threads = 2)")
    print(pd.DataFrame(rows).round(1).to_string(index=False))


if __name__ == "__main__":
    main()
