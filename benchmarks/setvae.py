"""Study 4 at scale: SetVAE training / inference throughput (stays/s) and peak memory.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/setvae.py [--quick]``). Prints tables; nothing
here is a test. Sizes: ``standard`` (the preset) and ``full`` (≈ 4,000 stays × 36 variables × 48 h,
48 steps kept). Training is timed over ``--steps`` optimiser steps of the "after" configuration (the step
``train.fit`` takes; its one-off contract check runs before the clock starts); inference over every
stay in eval mode.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import time

import numpy as np
import pandas as pd
import torch
from memory import PeakSampler  # benchmarks/memory.py (this directory is on sys.path)

from latentlab import train
from latentlab.data import clinical
from latentlab.studies import setvae as S


def measure(label: str, preset: str, overrides: dict, steps: int) -> dict:
    params = S.SetVAEParams.from_preset(preset, progress=False, **overrides)
    started = time.perf_counter()
    data = clinical.simulate_stays(clinical.StaySimulation(n_stays=params.n_stays, seed=0))
    splits = S.make_splits(data, params)
    prep = S.prepare(data, splits, params)
    data_s = time.perf_counter() - started
    objective = S.build_model(S.AFTER, params, len(prep.scaler))
    batches = S.batches(prep.tensors, splits.train, params.batch_size, 0)
    epochs = itertools.count()  # as many epochs as the steps need, built lazily (not every epoch's batches)
    chosen = list(itertools.islice((b for epoch in epochs for b in batches(epoch)), steps))
    weights = S.loss_weights(S.AFTER, steps)
    train.check_contract(objective, chosen[0], weights)
    opt = S.make_optimizer(S.AFTER, params.lr)(objective)
    objective.train()
    with PeakSampler() as train_mem:
        t0 = time.perf_counter()
        for i, batch in enumerate(chosen):  # the same step train.fit takes, without its bookkeeping
            terms = objective.loss_terms(batch)
            ctx = train.StepContext(epoch=0, step=i, epochs=1)
            loss = sum(train.resolve_weight(weights[k], ctx) * v for k, v in terms.items())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(objective.parameters(), 0.5)
            opt.step()
        train_s = time.perf_counter() - t0
    rows = np.arange(len(prep.arrays))
    with PeakSampler() as infer_mem:
        t0 = time.perf_counter()
        S.collect(objective, prep.tensors, rows)
        infer_s = time.perf_counter() - t0
    trained = sum(len(b["label"]) for b in chosen)
    return {
        "size": label, "stays": params.n_stays, "steps kept": params.max_steps,
        "max set": int(prep.tensors["elem_mask"].shape[-1]), "d_model": params.d_model,
        "simulate+arrays s": data_s, "train stays/s": trained / train_s, "infer stays/s": len(rows) / infer_s,
        # absolute process RSS: "above the loaded data" reads ~0 at full size, where the freed heap of
        # simulating 4,000 stays is reused by training (RSS does not grow), so it would understate
        "RSS with data MB": train_mem.base / 2**20,
        "train peak RSS MB": train_mem.peak_mb, "infer peak RSS MB": infer_mem.peak_mb,
        "params": sum(p.numel() for p in objective.parameters()),
    }


def measure_fresh(label: str, preset: str, overrides: dict, steps: int) -> dict:
    """``measure`` in a fresh process: in one process the allocator keeps the first size's freed heap,
    which hides the next size's peak (RSS never rises above what is already reserved)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (label, preset, overrides, steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps timed per size")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    print(f"torch threads: {torch.get_num_threads()}")
    sizes = [("quick", "quick", {})] if args.quick else [("standard", "standard", {}), ("full", "full", {})]
    steps = 3 if args.quick else args.steps
    table = pd.DataFrame([measure_fresh(label, preset, ov, steps) for label, preset, ov in sizes])
    print("\nSetVAE ('after' configuration) throughput and peak process memory (RSS), one fresh process per size")
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
