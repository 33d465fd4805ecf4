"""Study 4 at scale: SetVAE training / inference throughput (stays/s) and peak memory.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/setvae.py [--quick]``). Prints tables; nothing
here is a test. Sizes: ``standard`` (the preset) and ``full`` (≈ 4,000 stays × 36 variables × 48 h,
48 steps kept). Training is timed over ``--steps`` optimiser steps of the "after" configuration (the step
``train.fit`` takes; its one-off contract check runs before the clock starts); inference over every
stay in eval mode.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
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
from latentlab.setvae.model import MAB, PackedRows, dropout


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


def _induce_previous(self: MAB, query: torch.Tensor, y: torch.Tensor, rows: PackedRows) -> torch.Tensor:
    """``MAB.induce`` as it was before the third pass (2026-12-03), which the PMA called too: the keys are
    built by the key map, then multiplied by the block-diagonal query matrix; the weighted sum is a
    batched product on the padded layout."""
    q = self.q(self.ln_q(query))
    k, v = self.kv(self.ln_kv(y)).chunk(2, -1)
    m, d = q.shape
    h, dh = self.heads, d // self.heads
    blocks = torch.block_diag(*self._heads(q).transpose(0, 1).transpose(1, 2)) * dh**-0.5
    n_sets = rows.n_sets
    att = dropout(rows.padded(k @ blocks, -math.inf).softmax(1), self.p, self.training)
    att = att.view(n_sets, -1, h, m).permute(0, 2, 3, 1)
    out = att @ rows.padded(v).view(n_sets, -1, h, dh).transpose(1, 2)
    x = query + self.o(out.transpose(1, 2).reshape(n_sets, m, d))
    return x + self.ff(self.ln_ff(x))


@contextlib.contextmanager
def previous_attention():
    """Run the set encoder with the previous pass's shared-query attention (``_induce_previous`` for the
    inducing points and the PMA seed), so old and new train side by side in one process."""
    saved = MAB.induce, MAB.pool
    MAB.induce = MAB.pool = _induce_previous
    try:
        yield
    finally:
        MAB.induce, MAB.pool = saved


def _training_step(objective, opt, weights: dict, cfg: S.RunConfig):
    """The step ``train.fit`` takes (loss terms, weighted sum, backward, clipping, optimiser)."""
    def step(batch: dict, i: int) -> None:
        terms = objective.loss_terms(batch)
        ctx = train.StepContext(epoch=0, step=i, epochs=1, terms={k: float(v.detach()) for k, v in terms.items()})
        total = train.weighted_sum(terms, {k: train.resolve_weight(weights[k], ctx) for k in terms})
        opt.zero_grad(set_to_none=True)
        total.backward()
        params = [p for p in objective.parameters() if p.grad is not None]
        if cfg.clip_mode == "norm":
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        else:
            torch.nn.utils.clip_grad_value_(params, cfg.grad_clip)
        opt.step()
    return step


def steps_old_new(preset: str, repeats: int) -> pd.DataFrame:
    """CPU ms per training step, previous pass vs this one, for "before" and "after": two copies of the same
    model (same weights, own optimisers) take one epoch's batches in turn; median over ``repeats`` epochs
    of CPU time (``time.process_time``: the other processes' load counts less than in wall time). The eval
    outputs of the two must agree to round-off."""
    params = S.SetVAEParams.from_preset(preset, progress=False)
    data = clinical.simulate_stays(clinical.StaySimulation(n_stays=params.n_stays, seed=0))
    splits = S.make_splits(data, params)
    prep = S.prepare(data, splits, params)
    chosen = S.batches(prep.tensors, splits.train, params.batch_size, 0)(0)
    rows = []
    for name, cfg in S.REFERENCE.items():
        torch.manual_seed(0)
        new = S.build_model(cfg, params, len(prep.scaler), prep.hours)
        old = copy.deepcopy(new)
        for obj in (old, new):
            obj.eval()
        with torch.no_grad():
            out_new = new.model(chosen[0])
            with previous_attention():
                out_old = old.model(chosen[0])
        diff = max(float((out_old["logit"] - out_new["logit"]).abs().max()),
                   *(float((a.mu_q - b.mu_q).abs().max()) for a, b in zip(out_old["levels"], out_new["levels"], strict=True)))
        weights = S.loss_weights(cfg, params.min_updates)
        steps = {"old": _training_step(old, S.make_optimizer(cfg, params.lr)(old), weights, cfg),
                 "new": _training_step(new, S.make_optimizer(cfg, params.lr)(new), weights, cfg)}
        times: dict[str, list[float]] = {"old": [], "new": []}
        with train.denormals_flushed(torch.device("cpu")):
            for _ in range(repeats):
                for side, step in steps.items():
                    (old if side == "old" else new).train()
                    with previous_attention() if side == "old" else contextlib.nullcontext():
                        t0 = time.process_time()
                        for i, batch in enumerate(chosen):
                            step(batch, i)
                        times[side].append((time.process_time() - t0) / len(chosen))
        o, n = float(np.median(times["old"])), float(np.median(times["new"]))
        rows.append({"stage": f"training step, {name}", "old ms": 1e3 * o, "new ms": 1e3 * n, "old/new": o / n,
                     "note": f"CPU, {len(chosen)} batches × {repeats} epochs; eval max |Δ| {diff:.1e}"})
    return pd.DataFrame(rows)


def compile_cost(preset: str, steps: int) -> pd.DataFrame:
    """torch.compile (inductor, dynamic shapes) of the "after" loss vs eager: CPU seconds of the first call
    (compiling; warm if the on-disk inductor cache already holds this graph), of the next batches (each new
    shape pattern may recompile), and the steady-state CPU ms per step afterwards, eager and compiled
    alternated epoch by epoch. Not used by the study: it did not pay (README, Study 4 · Speed, third pass)."""
    params = S.SetVAEParams.from_preset(preset, progress=False)
    data = clinical.simulate_stays(clinical.StaySimulation(n_stays=params.n_stays, seed=0))
    splits = S.make_splits(data, params)
    prep = S.prepare(data, splits, params)
    chosen = S.batches(prep.tensors, splits.train, params.batch_size, 0)(0)[:steps]
    torch.manual_seed(0)
    eager = S.build_model(S.AFTER, params, len(prep.scaler), prep.hours)
    compiled = copy.deepcopy(eager)
    compiled.loss_terms = torch.compile(compiled.loss_terms, dynamic=True)
    weights = S.loss_weights(S.AFTER, params.min_updates)
    steps_of = {"eager": _training_step(eager, S.make_optimizer(S.AFTER, params.lr)(eager), weights, S.AFTER),
                "compiled": _training_step(compiled, S.make_optimizer(S.AFTER, params.lr)(compiled), weights, S.AFTER)}
    eager.train()
    compiled.train()
    t0 = time.process_time()
    steps_of["compiled"](chosen[0], 0)
    first = time.process_time() - t0
    t0 = time.process_time()
    for i, batch in enumerate(chosen[1:]):
        steps_of["compiled"](batch, i)
    rest = time.process_time() - t0
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(3):
        for side, step in steps_of.items():
            t0 = time.process_time()
            for i, batch in enumerate(chosen):
                step(batch, i)
            times[side].append((time.process_time() - t0) / len(chosen))
    e, c = float(np.median(times["eager"])), float(np.median(times["compiled"]))
    return pd.DataFrame([{"first call CPU s": first, f"next {len(chosen) - 1} steps CPU s": rest,
                          "eager ms/step": 1e3 * e, "compiled ms/step": 1e3 * c, "eager/compiled": e / c}])


def measure_fresh(label: str, preset: str, overrides: dict, steps: int) -> dict:
    """``measure`` in a fresh process: in one process the allocator keeps the first size's freed heap,
    which hides the next size's peak (RSS never rises above what is already reserved)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (label, preset, overrides, steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps timed per size")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of the loss against eager (minutes: it compiles)")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    print(f"torch threads: {torch.get_num_threads()}")
    sizes = [("quick", "quick", {})] if args.quick else [("standard", "standard", {}), ("full", "full", {})]
    steps = 3 if args.quick else args.steps
    print("\nIssue 15 hot spots, old vs new implementation on the same data (interleaved, median)")
    print(before_after("quick" if args.quick else "standard", 3 if args.quick else 7).round(2).to_string(index=False))
    print("\nTraining step, previous pass vs this one (same weights, alternated epochs, median CPU ms)")
    print(steps_old_new("quick" if args.quick else "standard", 2 if args.quick else 4).round(3).to_string(index=False))
    if args.compile:
        print("\ntorch.compile(dynamic=True) of the 'after' loss vs eager (CPU)")
        print(compile_cost("quick" if args.quick else "standard", 4 if args.quick else 12).round(2).to_string(index=False))
    table = pd.DataFrame([measure_fresh(label, preset, ov, steps) for label, preset, ov in sizes])
    print("\nSetVAE ('after' configuration) throughput and peak process memory (RSS), one fresh process per size")
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
