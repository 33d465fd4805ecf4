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
import math
import multiprocessing
import time

import numpy as np
import pandas as pd
import torch
from memory import PeakSampler  # benchmarks/memory.py (this directory is on sys.path)

from latentlab import train
from latentlab.setvae import data as clinical
from latentlab.setvae import diagnostics as dg
from latentlab.setvae import pipeline as S


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


def _mi_direct(mu: np.ndarray, logvar: np.ndarray, seed: int = 0) -> float:
    """The mutual-information estimate as it was before issue 15: an (N, N, D) difference tensor."""
    mu_t, lv_t = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(logvar, dtype=torch.float64)
    n, d = mu_t.shape
    gen = torch.Generator().manual_seed(seed)
    z = mu_t + torch.randn(n, d, generator=gen, dtype=torch.float64) * (0.5 * lv_t).exp()
    log2pi = math.log(2 * math.pi)
    neg_entropy = (-0.5 * d * log2pi - 0.5 * (1 + lv_t).sum(-1)).mean()
    dev = z[:, None, :] - mu_t[None]
    log_density = -0.5 * ((dev**2) / lv_t.exp()[None]).sum(-1) - 0.5 * (d * log2pi + lv_t.sum(-1))[None]
    return float(neg_entropy - (torch.logsumexp(log_density, dim=1) - math.log(n)).mean())


def _interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved (load drifts hit all alike)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def before_after(preset: str, repeats: int) -> pd.DataFrame:
    """Old vs new of each Study 4 hot spot, on the same data, in this process: the set encoder on
    padded vs packed elements (one training step's forward + backward, and an eval pass; the eval
    outputs must agree), and the mutual information by (N, N, D) tensor vs matrix products."""
    params = S.SetVAEParams.from_preset(preset, progress=False)
    data = clinical.simulate_stays(clinical.StaySimulation(n_stays=params.n_stays, seed=0))
    splits = S.make_splits(data, params)
    prep = S.prepare(data, splits, params)
    torch.manual_seed(0)
    enc = S.build_model(S.AFTER, params, len(prep.scaler)).model.setvae
    batch = S.batch_of(prep.tensors, splits.train[: params.batch_size])
    valid = batch["step_mask"]
    var, val, pad = batch["var"][valid], batch["val"][valid], ~batch["elem_mask"][valid]

    def train_step(packed: bool):
        enc.train()
        levels = enc(var, val, pad, True, packed=packed)
        sum(lv.z.sum() for lv in levels).backward()

    def eval_pass(packed: bool):
        enc.eval()
        with torch.inference_mode():
            return enc(var, val, pad, False, packed=packed)

    same = max(float((a.mu_q - b.mu_q).abs().max()) for a, b in zip(eval_pass(False), eval_pass(True), strict=True))
    rows = []
    for what, fn in (("set encoder train step", train_step), ("set encoder eval pass", eval_pass)):
        t = _interleaved({"old": lambda f=fn: f(False), "new": lambda f=fn: f(True)}, repeats)
        rows.append({"stage": what, "old ms": 1e3 * t["old"], "new ms": 1e3 * t["new"], "old/new": t["old"] / t["new"],
                     "note": f"{int((~pad).sum())} of {pad.numel()} padded slots hold an element; eval max |Δμ| {same:.1e}"})
    rng = np.random.default_rng(0)
    mu, lv = rng.normal(0, 1, (1000, params.latent_dims[0])), rng.uniform(-4, 1, (1000, params.latent_dims[0]))
    t = _interleaved({"old": lambda: _mi_direct(mu, lv), "new": lambda: dg.mutual_information(mu, lv)}, repeats)
    rows.append({"stage": "mutual information, 1000 points", "old ms": 1e3 * t["old"], "new ms": 1e3 * t["new"],
                 "old/new": t["old"] / t["new"],
                 "note": f"|Δ| {abs(_mi_direct(mu, lv) - dg.mutual_information(mu, lv)):.1e}; per-epoch monitor now skips it"})
    return pd.DataFrame(rows)


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
    print("\nIssue 15 hot spots, old vs new implementation on the same data (interleaved, median)")
    print(before_after("quick" if args.quick else "standard", 3 if args.quick else 7).round(2).to_string(index=False))
    table = pd.DataFrame([measure_fresh(label, preset, ov, steps) for label, preset, ov in sizes])
    print("\nSetVAE ('after' configuration) throughput and peak process memory (RSS), one fresh process per size")
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
