"""What ``train.fit`` costs over a bare PyTorch loop: same model, data, batch size and optimiser.

``train.fit`` adds the loss-contract check, per-term logging, the NaN guard and early-stopping
bookkeeping; this prints the wall time of both, interleaved in one process (so load drifts hit
both alike), and their ratio. Goal: fit / bare <= 1.05.

    python benchmarks/fit_overhead.py [--cells 2418] [--genes 2000] [--epochs 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from latentlab import train
from latentlab.models.autoencoder import AutoEncoder


def make_batches(cells: int, genes: int, batch_size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Dense log-normalised-looking minibatches, built once so both loops time training only."""
    rng = np.random.default_rng(seed)
    x = np.log1p(rng.poisson(0.3, size=(cells, genes))).astype(np.float32)
    context = rng.integers(0, 4, cells)
    order = rng.permutation(cells)
    return [{"x": torch.from_numpy(x[idx]), "context": torch.as_tensor(context[idx])}
            for idx in np.array_split(order, max(1, cells // batch_size))]


def bare_loop(model: AutoEncoder, batches: list, epochs: int, lr: float) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)  # the optimiser train.fit builds: same work
    for _ in range(epochs):
        for batch in batches:
            z = model.encode(batch["x"])
            loss = F.mse_loss(model.decoder(z), batch["x"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def fit_loop(model: AutoEncoder, batches: list, epochs: int, lr: float) -> None:
    train.fit(model, batches, weights={"recon": 1.0}, epochs=epochs, lr=lr, progress=False)


def timed(run, genes: int, batches: list, epochs: int, lr: float, seed: int) -> float:
    torch.manual_seed(seed)
    model = AutoEncoder(genes)
    t0 = time.perf_counter()
    run(model, batches, epochs, lr)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2418)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    batches = make_batches(args.cells, args.genes, args.batch_size)
    timed(bare_loop, args.genes, batches, 1, 1e-3, 0)  # warm-up: first-call allocations are not the loop's cost
    bare, fit = [], []
    for r in range(args.repeats):
        bare.append(timed(bare_loop, args.genes, batches, args.epochs, 1e-3, r))
        fit.append(timed(fit_loop, args.genes, batches, args.epochs, 1e-3, r))
    b, f = statistics.median(bare), statistics.median(fit)
    print(f"H2 autoencoder, {args.cells} cells × {args.genes} genes, batch {args.batch_size}, {args.epochs} epochs, "
          f"{torch.get_num_threads()} torch threads, {args.repeats} interleaved repeats")
    print("loop        median s   min s   max s")
    for name, times in (("bare torch", bare), ("train.fit", fit)):
        print(f"{name:<11} {statistics.median(times):8.2f} {min(times):7.2f} {max(times):7.2f}")
    print(f"train.fit / bare = {f / b:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
