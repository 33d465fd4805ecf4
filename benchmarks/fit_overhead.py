"""What ``train.fit`` costs over a bare PyTorch loop: same model, data, batch size and optimiser.

``train.fit`` adds the loss-contract check, per-term logging, the NaN guard and early-stopping
bookkeeping, and (since ``device``) resolving the device and moving the model and each batch there;
this prints the wall time of both, interleaved in one process (so load drifts hit both alike), and
the median of the per-repeat ratios (each repeat's pair ran back to back, so a load spike between
repeats cancels). Goal: fit / bare <= 1.05. Both loops read CPU batches and move them to ``--device``.

    python benchmarks/fit_overhead.py [--cells 2418] [--genes 2000] [--epochs 5] [--repeats 5] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from latentlab import train
from latentlab.h2.losses import AutoEncoderObjective
from latentlab.h2.model import AutoEncoder


def make_batches(cells: int, genes: int, batch_size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Dense log-normalised-looking minibatches, built once so both loops time training only."""
    rng = np.random.default_rng(seed)
    x = np.log1p(rng.poisson(0.3, size=(cells, genes))).astype(np.float32)
    context = rng.integers(0, 4, cells)
    order = rng.permutation(cells)
    return [{"x": torch.from_numpy(x[idx]), "context": torch.as_tensor(context[idx])}
            for idx in np.array_split(order, max(1, cells // batch_size))]


def bare_loop(model: AutoEncoder, batches: list, epochs: int, lr: float, device: torch.device) -> None:
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)  # the optimiser train.fit builds: same work
    for _ in range(epochs):
        for cpu_batch in batches:
            batch = cpu_batch if device.type == "cpu" else train.to_device(cpu_batch, device)
            z = model.encode(batch["x"])
            loss = F.mse_loss(model.decoder(z), batch["x"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def fit_loop(model: AutoEncoder, batches: list, epochs: int, lr: float, device: torch.device) -> None:
    train.fit(AutoEncoderObjective(model), batches, weights={"recon": 1.0}, epochs=epochs, lr=lr, progress=False, device=device)


def timed(run, genes: int, batches: list, epochs: int, lr: float, seed: int, device: torch.device) -> float:
    torch.manual_seed(seed)
    model = AutoEncoder(genes)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    run(model, batches, epochs, lr, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2418)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda:1, mps")
    args = parser.parse_args()
    device = train.resolve_device(args.device, "--device")
    batches = make_batches(args.cells, args.genes, args.batch_size)
    timed(bare_loop, args.genes, batches, 1, 1e-3, 0, device)  # warm-up: first-call allocations are not the cost
    bare, fit = [], []
    for r in range(args.repeats):
        first, second = (bare_loop, fit_loop) if r % 2 == 0 else (fit_loop, bare_loop)  # neither always goes first
        times = {run: timed(run, args.genes, batches, args.epochs, 1e-3, r, device) for run in (first, second)}
        bare.append(times[bare_loop])
        fit.append(times[fit_loop])
    ratios = [f / b for f, b in zip(fit, bare, strict=True)]
    print(f"H2 autoencoder on {device}, {args.cells} cells × {args.genes} genes, batch {args.batch_size}, "
          f"{args.epochs} epochs, {torch.get_num_threads()} torch threads, {args.repeats} interleaved repeats")
    print("loop        median s   min s   max s")
    for name, times in (("bare torch", bare), ("train.fit", fit)):
        print(f"{name:<11} {statistics.median(times):8.2f} {min(times):7.2f} {max(times):7.2f}")
    print(f"per-repeat ratios: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"train.fit / bare = {statistics.median(ratios):.3f} (median of per-repeat ratios; ratio of medians "
          f"{statistics.median(fit) / statistics.median(bare):.3f})  (goal <= 1.05)")


if __name__ == "__main__":
    main()
