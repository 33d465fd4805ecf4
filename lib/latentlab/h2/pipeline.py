"""Study 1 — H2 context leakage: do unsupervised embeddings encode the chip?

Step functions, in the order the notebook calls them:
``load`` → ``preprocess`` → ``make_splits`` → ``pca_embedding`` /
``ae_embedding`` → ``leakage_table`` → ``mitigation_sweep`` →
``batch_metric_table`` → ``write_outputs``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
import torch

from latentlab import io, train
from latentlab.h2 import data as scrna
from latentlab.h2.losses import PENALTY_TERMS, AutoEncoderObjective
from latentlab.h2.metrics import batch_metrics, clustering_ari, neighbourhood_agreement
from latentlab.h2.model import MITIGATIONS, AutoEncoder
from latentlab.h2.probes import Split, SplitError, each_holdout, holdout_split, random_split, run_probe
from latentlab.params import StudyParams, project_root
from latentlab.sweep import results as sweeps

DEFAULT_WEIGHTS = {
    "adversarial": [0.03, 0.1, 0.3],
    "hsic": [0.3, 1.0, 3.0],
    "mmd": [0.1, 0.3, 1.0],
    "subspace": [0.03, 0.1, 0.3],
}


@dataclasses.dataclass(frozen=True)
class H2Params(StudyParams):
    output_dir: str = "runs/h2"
    data: str = "simulated"
    metadata: str = ""  # cell metadata CSV of a Matrix Market directory; "" = the one CSV in that directory
    context_key: str = "Group"
    condition_key: str = "Sample"  # "" = no condition column: random split only
    biology_key: str = "cell_type"  # "" = no cell-type column: biology measured by kNN agreement only
    holdout: str = "36"
    n_cells: int = 2418
    n_genes: int = 2000
    chip_effect: float = 0.3
    library_shift: float = 0.3
    sample_effect: float = 0.3
    preprocessing: str = "log1p"
    n_top_genes: int = 0
    latent_dim: int = 16
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    probes: list = dataclasses.field(default_factory=lambda: ["linear", "knn"])
    n_boot: int = 500
    n_perm: int = 50
    mitigations: list = dataclasses.field(default_factory=lambda: list(DEFAULT_WEIGHTS))
    penalty_weights: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    baselines: list = dataclasses.field(default_factory=lambda: ["combat", "harmony"])
    harmony_theta: float = 2.0  # harmonypy's diversity penalty (its default)
    harmony_max_iter: int = 50
    scib: bool = True
    device: str = "auto"  # where the autoencoders train: "auto" (CUDA when available, else CPU), "cpu", "cuda:1", "mps"
    progress: bool = True
    sweep_results: str = ""  # a sweep directory or its results.csv: the notebook's last section reads it

    PRESETS = {
        "quick": dict(output_dir="runs/quick/h2", n_cells=1200, n_genes=1000, epochs=30, n_boot=100, n_perm=20,
                      penalty_weights={"adversarial": [0.03], "hsic": [1.0], "mmd": [0.3], "subspace": [0.1]}),
        "standard": dict(n_cells=2418, n_genes=2000, epochs=30),
        "full": dict(output_dir="runs/full/h2", n_cells=2418, n_genes=18683, n_top_genes=2000, epochs=30),
    }

    def check(self) -> None:
        super().check()
        self.require(self.preprocessing in ("log1p", "raw"), "preprocessing", "must be 'log1p' or 'raw'")
        self.require(self.n_cells >= 50, "n_cells", "must be >= 50")
        self.require(self.n_genes >= 20, "n_genes", "must be >= 20")
        self.require(self.latent_dim >= 2, "latent_dim", "must be >= 2")
        self.require(self.epochs >= 1, "epochs", "must be >= 1")
        self.require(self.batch_size >= 2, "batch_size", "must be >= 2")
        self.require(self.lr > 0, "lr", "must be > 0")
        self.require(self.chip_effect >= 0, "chip_effect", "must be >= 0")
        self.require(self.n_top_genes >= 0, "n_top_genes", "must be >= 0 (0 = keep all genes)")
        self.require(set(self.probes) <= {"linear", "knn", "mlp"}, "probes", "choose from linear, knn, mlp")
        self.require(set(self.mitigations) <= set(MITIGATIONS), "mitigations", f"choose from {sorted(MITIGATIONS)}")
        self.require(set(self.baselines) <= {"combat", "harmony"}, "baselines", "choose from combat, harmony")
        self.require(self.n_boot >= 0 and self.n_perm >= 0, "n_boot", "n_boot and n_perm must be >= 0")
        self.require(self.harmony_theta >= 0, "harmony_theta", "must be >= 0")
        self.require(self.harmony_max_iter >= 1, "harmony_max_iter", "must be >= 1")
        self.require(bool(self.context_key), "context_key", "must name the cell metadata column holding the chip")
        problem = train.device_problem(self.device)
        self.require(problem is None, "device", problem or "")
        missing = [m for m in self.mitigations if not self.penalty_weights.get(m)]
        self.require(not missing, "penalty_weights", f"no weights given for mitigations {missing}")


# --------------------------------------------------------------------------- data


def load(params: H2Params) -> ad.AnnData:
    """Simulated (written to and read back from the 3-file format), pbmc68k, or a user path.

    Every column the run needs (context, condition, biology) and the held-out value are
    checked here, before anything trains; an empty ``condition_key`` / ``biology_key`` means
    the data has no such column.
    """
    keys = dict(context_key=params.context_key, condition_key=params.condition_key or None,
                biology_key=params.biology_key or None)
    if params.data == "simulated":
        sim = scrna.ScrnaSimulation(
            n_cells=params.n_cells, n_genes=params.n_genes, chip_effect=params.chip_effect,
            library_shift=params.library_shift, sample_effect=params.sample_effect, seed=params.seed,
        )
        simulated = scrna.simulate_counts(sim)
        directory = scrna.write_three_file(simulated, params.output_path / "data")
        adata = scrna.load_three_file(directory, **keys)
        adata.uns["simulation"] = simulated.uns["simulation"]  # the truth, which the files do not carry
    elif params.data == "pbmc68k":
        adata = scrna.load_pbmc68k(context_key=params.context_key, biology_key=keys["biology_key"])
    else:
        path = Path(params.data)
        if not path.is_absolute() and not path.exists() and (project_root() / path).exists():
            path = project_root() / path  # papermill --cwd notebooks: paths are also taken from the checkout
        if not path.exists():
            raise scrna.DataError(f"{path}: not found (data is 'simulated', 'pbmc68k', a Matrix Market directory "
                                  "or a .h5ad file)")
        if path.suffix == ".h5ad":
            adata = scrna.load_h5ad(path, **keys)
        else:
            adata = scrna.load_three_file(path, meta=params.metadata or None, **keys)
    _check_holdout(adata, params)
    return adata


def _check_holdout(adata: ad.AnnData, params: H2Params) -> None:
    """The held-out value must exist, so a wrong ``holdout`` fails before any training."""
    if not params.condition_key or params.holdout == "each":
        return
    present = sorted(set(adata.obs[params.condition_key].astype(str)))
    if params.holdout not in present:
        raise SplitError(f"holdout {params.condition_key}={params.holdout!r}: no such value; set -p holdout to "
                         f"one of {present} or 'each' (condition_key={params.condition_key!r})")


def skipped_measures(params: H2Params) -> list[str]:
    """What this run cannot measure because a column was left out (said in the notebook and metrics.json)."""
    skipped = []
    if not params.condition_key:
        skipped.append("held-out-condition split (condition_key is empty): leakage is probed on the random "
                       "split only, where a condition confounded with the chip can also carry it")
    if not params.biology_key:
        skipped.append("cell-type probe accuracy and k-means ARI (biology_key is empty): biology retained is "
                       "measured only as kNN agreement with the unintegrated expression PCA; scib batch metrics "
                       "are computed over all cells, not within cell types")
    return skipped


def describe_design(adata: ad.AnnData, params: H2Params) -> pd.DataFrame:
    """Cells per condition × context (or per context alone when there is no condition column)."""
    context = adata.obs[params.context_key]
    if params.condition_key:
        return pd.crosstab(adata.obs[params.condition_key], context, margins=True)
    return context.value_counts().sort_index().rename("cells").to_frame()


def preprocess(adata: ad.AnnData, params: H2Params) -> ad.AnnData:
    """Library-size normalise + log1p (unless raw or already normalised); optional HVG subset."""
    sc.pp.filter_genes(adata, min_cells=3)  # all-zero genes carry nothing and break ComBat's variance step
    adata.layers["counts"] = adata.X.copy()
    already_normalised = adata.X.dtype.kind == "f" and not np.all(adata.X.data == np.round(adata.X.data))
    if params.preprocessing == "log1p" and not already_normalised:
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
    if params.n_top_genes and params.n_top_genes < adata.n_vars:
        sc.pp.highly_variable_genes(adata, n_top_genes=params.n_top_genes, subset=True)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.uns["preprocessing"] = {"method": params.preprocessing, "n_top_genes": params.n_top_genes}
    return adata


def make_splits(adata: ad.AnnData, params: H2Params) -> list[Split]:
    """The random 80/20 split and the held-out condition split(s)."""
    labels = adata.obs[params.context_key]
    splits = [random_split(labels, seed=params.seed)]
    if params.condition_key and params.condition_key in adata.obs:
        condition = adata.obs[params.condition_key]
        if params.holdout == "each":
            splits.extend(each_holdout(labels, condition))
        else:
            splits.append(holdout_split(labels, condition, params.holdout))
    return splits


# --------------------------------------------------------------------------- embeddings


def pca_embedding(adata: ad.AnnData, params: H2Params) -> np.ndarray:
    """PCA on the sparse matrix (implicit centring, nothing densified)."""
    sc.pp.pca(adata, n_comps=params.latent_dim, random_state=params.seed)
    return adata.obsm["X_pca"].copy()


class SparseRowBatches:
    """Minibatches densified one batch at a time: memory is bounded by the batch, not the data."""

    def __init__(self, x: sp.csr_matrix, context: np.ndarray, batch_size: int, seed: int) -> None:
        self.x, self.context = x, torch.as_tensor(context, dtype=torch.long)
        self.order = train.minibatches(x.shape[0], batch_size, seed)

    def __call__(self, epoch: int):
        for idx in self.order(epoch):
            yield {"x": torch.from_numpy(self.x[idx].toarray()), "context": self.context[idx]}


def context_codes(adata: ad.AnnData, params: H2Params, hidden: np.ndarray | None = None) -> np.ndarray:
    """Integer chip labels, with -1 for cells whose label the model must not see."""
    codes = adata.obs[params.context_key].cat.codes.to_numpy().astype(np.int64)
    if hidden is not None:
        codes = codes.copy()
        codes[hidden] = -1
    return codes


def ae_embedding(
    adata: ad.AnnData,
    params: H2Params,
    *,
    method: str = "none",
    weight: float = 0.0,
    hidden_labels: np.ndarray | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Train an AE (plain or with a mitigation) on all cells; returns (z, history).

    The plain AE never sees any label. Mitigations see chip labels except for
    ``hidden_labels`` (the evaluation split's test cells), so the held-out
    sample is never told to the model.
    """
    with one_torch_thread(params.device):
        return _fit_ae(params, *_build_ae(adata, params, method, weight, hidden_labels))


@contextlib.contextmanager
def one_torch_thread(device: str) -> Iterator[None]:
    """Train (and embed) on one torch thread when training on the CPU; the kernel's count is restored after.

    Whenever anything else runs on the machine, two OpenMP threads wait for each other at every
    barrier of a batch-64 step: measured 2026-12-03 (load 1.5-2.6 on the 2 cores), one step of the
    2,000-gene AE took 9.5-9.7 ms on one thread and 173-183 ms on two. On an idle machine the plain AE
    loses the second thread's share (measured idle: its fit ~1.6x slower wall, ~3-4 s of a `full` run);
    the mitigations still use every thread, one model each.
    It also makes the plain AE's numbers independent of the kernel's thread count, as the mitigations'
    already are (``make run``'s kernels have one thread, so there nothing changes).
    """
    if train.resolve_device(device).type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _build_ae(adata: ad.AnnData, params: H2Params, method: str, weight: float, hidden_labels: np.ndarray | None):
    """The seeded model, its batches and loss weights: everything that draws from the global RNGs."""
    train.seed_everything(params.seed)
    x = sp.csr_matrix(adata.X, dtype=np.float32)
    n_context = adata.obs[params.context_key].nunique()
    if method == "none":
        model = AutoEncoder(x.shape[1], latent=params.latent_dim)
    else:
        model = MITIGATIONS[method](x.shape[1], n_context, latent=params.latent_dim)
    weights = {"recon": 1.0, **{term: weight for term in PENALTY_TERMS[method]}}
    if method == "subspace":
        weights["context"] = 1.0
    batches = SparseRowBatches(x, context_codes(adata, params, hidden_labels), params.batch_size, params.seed)
    return model, x, batches, weights, method, weight


def _fit_ae(params: H2Params, model: AutoEncoder, x: sp.csr_matrix, batches: SparseRowBatches,
            weights: dict[str, float], method: str, weight: float) -> tuple[np.ndarray, pd.DataFrame]:
    """Train a built AE and embed every cell; draws nothing from the global RNGs (fit reseeds them)."""
    result = train.fit(AutoEncoderObjective(model), batches, weights=weights, epochs=params.epochs, lr=params.lr,
                       seed=params.seed, progress=params.progress, desc=f"AE {method} w={weight:g}",
                       device=params.device)
    return embed(model, x), result.history.assign(method=method, weight=weight)


@torch.no_grad()
def embed(model: AutoEncoder, x: sp.csr_matrix, batch_size: int = 1024) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    parts = [model.embed(torch.from_numpy(x[i : i + batch_size].toarray()).to(device)).cpu().numpy()
             for i in range(0, x.shape[0], batch_size)]
    return np.concatenate(parts)


def baseline_embedding(adata: ad.AnnData, params: H2Params, method: str) -> np.ndarray:
    """ComBat (then PCA) or Harmony (on PCA): ecosystem integrations; both see every chip label."""
    if method == "combat":
        corrected = adata.copy()
        corrected.X = corrected.X.toarray()
        with warnings.catch_warnings():  # its convergence check divides by exactly-zero batch effects
            warnings.simplefilter("ignore", RuntimeWarning)
            sc.pp.combat(corrected, key=params.context_key)
        sc.pp.pca(corrected, n_comps=params.latent_dim, random_state=params.seed)
        return corrected.obsm["X_pca"].copy()
    if method == "harmony":
        return harmony_embedding(adata, params)
    raise ValueError(f"unknown baseline {method!r}; choose combat or harmony")


def harmony_embedding(adata: ad.AnnData, params: H2Params) -> np.ndarray:
    """Harmony (harmonypy) on the study's PCA, cells × dims in and out; its run is recorded in ``.uns``.

    ``epsilon_harmony=1e-4`` rather than harmonypy's 1e-2: with a strong chip effect the
    chips sit in separate clusters, the first iteration lowers the objective by < 1 %, and the
    default tolerance stops there — returning PCA almost unchanged (held-out AUC stayed 1.0).
    """
    import harmonypy

    pca = adata.obsm["X_pca"] if "X_pca" in adata.obsm else pca_embedding(adata, params)
    result = harmonypy.run_harmony(
        np.asarray(pca, dtype=np.float64), adata.obs, [params.context_key], theta=params.harmony_theta,
        max_iter_harmony=params.harmony_max_iter, epsilon_harmony=1e-4, random_state=params.seed,
        verbose=False, ncores=1,
    )
    z = np.asarray(result.Z_corr)
    if z.shape != pca.shape:  # older harmonypy returned dims × cells
        z = z.T
    if z.shape != pca.shape:
        raise RuntimeError(f"harmonypy returned shape {np.asarray(result.Z_corr).shape} for input {pca.shape}")
    iterations = len(result.objective_harmony) - 1
    adata.uns["harmony"] = {"theta": params.harmony_theta, "max_iter": params.harmony_max_iter,
                            "iterations": iterations, "converged": iterations < params.harmony_max_iter,
                            "mean_shift": float(np.abs(z - pca).mean())}
    return z


# --------------------------------------------------------------------------- probes and tables


def leakage_table(
    adata: ad.AnnData, embeddings: dict[str, np.ndarray], splits: list[Split], params: H2Params
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Embedding × split × probe × metric, with CIs and the permutation null; plus ROC curves."""
    labels = adata.obs[params.context_key]
    tables, rocs = [], []
    for name, z in embeddings.items():
        for split in splits:
            for kind in params.probes:
                result = run_probe(z, labels, split, kind=kind, n_boot=params.n_boot,
                                   n_perm=params.n_perm, seed=params.seed)
                tables.append(result.table().assign(embedding=name))
                rocs.append(result.roc.assign(embedding=name))
    table = pd.concat(tables, ignore_index=True)
    cols = ["embedding", "split", "probe", "metric", "value", "ci_low", "ci_high", "null_mean", "null_sd", "p_value",
            "p_floor", "n_perm"]
    return table[cols], pd.concat(rocs, ignore_index=True)


def seed_style_table(table: pd.DataFrame) -> pd.DataFrame:
    """The seed's table: linear probe, accuracy and ROC-AUC per embedding × split."""
    linear = table[(table.probe == "linear") & table.metric.isin(["accuracy", "roc_auc"])]
    return linear.pivot_table(index=["embedding", "split"], columns="metric", values="value", sort=False).round(4)


def biology_scores(adata: ad.AnnData, z: np.ndarray, split: Split, params: H2Params) -> dict[str, float]:
    """Biology retained on the same embedding: cell-type probe accuracy (and ARI / kNN agreement)."""
    out: dict[str, float] = {}
    if params.biology_key and params.biology_key in adata.obs:
        bio = adata.obs[params.biology_key].astype(str)
        probe = run_probe(z, bio, split, kind="linear", n_boot=0, n_perm=0, seed=params.seed)
        out["biology_accuracy"] = probe.metrics["accuracy"]
        out["biology_ari"] = clustering_ari(z, bio, seed=params.seed)
    if "X_pca_reference" in adata.obsm:
        out["knn_agreement"] = neighbourhood_agreement(z, adata.obsm["X_pca_reference"])
    return out


def leakage_scores(adata: ad.AnnData, z: np.ndarray, split: Split, params: H2Params) -> dict[str, float]:
    """Linear-probe AUC with its CI, and a k-NN probe's AUC (a low linear score proves nothing alone).

    ``leakage_excess = |AUC - 0.5|``: an AUC far *below* 0.5 also means the chip is
    still readable, just in a direction that flips between samples.
    """
    labels = adata.obs[params.context_key]
    probe = run_probe(z, labels, split, kind="linear", n_boot=params.n_boot, n_perm=0, seed=params.seed)
    knn = run_probe(z, labels, split, kind="knn", n_boot=0, n_perm=0, seed=params.seed)
    auc = probe.metrics["roc_auc"]
    return {"leakage_auc": auc, "leakage_auc_low": probe.ci["roc_auc"][0],
            "leakage_auc_high": probe.ci["roc_auc"][1], "leakage_excess": abs(auc - 0.5),
            "leakage_accuracy": probe.metrics["accuracy"], "leakage_knn_auc": knn.metrics["roc_auc"]}


def mitigation_sweep(
    adata: ad.AnnData, params: H2Params, split: Split, reference: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, dict[str, np.ndarray], pd.DataFrame]:
    """Every mitigation × penalty weight (labels of ``split.test`` hidden), plus references.

    Returns the trade-off table (one row per method and weight), the
    embeddings by label, and the concatenated training histories.
    """
    rows, embeddings, histories = [], {}, []

    def add(method: str, weight: float, z: np.ndarray, seconds: float) -> None:
        label = method if method in reference else f"{method} w={weight:g}"
        embeddings[label] = z
        rows.append({"method": method, "weight": weight, "label": label, "seconds": seconds,
                     **leakage_scores(adata, z, split, params), **biology_scores(adata, z, split, params)})

    for name, z in reference.items():
        add(name, 0.0, z, float("nan"))
    jobs = [(method, weight) for method in params.mitigations for weight in params.penalty_weights[method]]
    for (method, weight), (z, history, seconds) in zip(jobs, _train_mitigations(adata, params, split, jobs),
                                                       strict=True):
        add(method, weight, z, seconds)
        histories.append(history)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    return pd.DataFrame(rows), embeddings, history


def mitigation_workers(params: H2Params, n_jobs: int) -> int:
    """How many mitigation AEs train at once: one per torch thread this kernel has, each on one thread,
    when they train on the CPU; 1 otherwise.

    At batch 64 the AE's GEMMs scale poorly over threads, and two OpenMP threads on a busy
    machine spin against each other, so T single-thread models side by side beat one T-thread
    model at a time. ``make run`` gives each kernel one thread, so there it stays serial.
    """
    if n_jobs < 2 or train.resolve_device(params.device).type != "cpu":
        return 1
    return max(1, min(n_jobs, torch.get_num_threads(), os.cpu_count() or 1))


def _train_mitigations(adata: ad.AnnData, params: H2Params, split: Split, jobs: list[tuple[str, float]]):
    """``(z, history, seconds)`` per ``(method, weight)`` in ``jobs``, in order, yielded as each is ready.

    With several workers, every model is built (seeded) here one after another, exactly as in a
    serial run, then trained in a thread pool with torch limited to one thread: torch releases the
    GIL inside its kernels, and training draws nothing from the global RNGs, so each model's
    numbers equal a one-thread serial run bit for bit (``tests/test_h2_study.py`` checks it). A
    torch run with T threads differs from a one-thread run by float round-off, which training amplifies.
    """
    workers = mitigation_workers(params, len(jobs))
    if workers == 1:
        for method, weight in jobs:
            started = time.perf_counter()
            z, history = ae_embedding(adata, params, method=method, weight=weight, hidden_labels=split.test)
            yield z, history, time.perf_counter() - started
        return
    quiet = dataclasses.replace(params, progress=False)  # one bar per thread would interleave
    built = [_build_ae(adata, params, method, weight, split.test) for method, weight in jobs]

    def job(parts):
        started = time.perf_counter()
        z, history = _fit_ae(quiet, *parts)
        return z, history, time.perf_counter() - started

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(job, parts) for parts in built]
            del built  # each model is freed once trained and embedded (~8 MB each at 2,000 genes)
            try:
                for future in futures:
                    yield future.result()
            finally:
                for future in futures:
                    future.cancel()
    finally:
        torch.set_num_threads(threads)


def add_expression_reference(adata: ad.AnnData, params: H2Params, n_comps: int = 50) -> None:
    """PCA-50 of the unintegrated expression: the neighbourhoods biology should keep."""
    n = min(n_comps, adata.n_vars - 1, adata.n_obs - 1)
    reference = sc.pp.pca(adata.X, n_comps=n, random_state=params.seed)
    adata.obsm["X_pca_reference"] = np.asarray(reference)


def batch_metric_table(adata: ad.AnnData, embeddings: dict[str, np.ndarray], params: H2Params) -> pd.DataFrame:
    """scib-metrics (batch ASW, iLISI, graph connectivity) per embedding, within biology labels."""
    if params.biology_key and params.biology_key in adata.obs:
        labels = adata.obs[params.biology_key]
    else:  # no cell types: one label, so the metrics are computed over all cells
        labels = pd.Series("all cells", index=adata.obs_names)
    rows = [{"embedding": name, **batch_metrics(z, adata.obs[params.context_key], labels)}
            for name, z in embeddings.items()]
    return pd.DataFrame(rows)


def biology_measure(tradeoff: pd.DataFrame) -> str:
    """The biology-retained column this run has: cell-type probe accuracy, else kNN agreement."""
    for column in ("biology_accuracy", "knn_agreement"):
        if column in tradeoff and tradeoff[column].notna().any():
            return column
    raise ValueError("the trade-off table has neither biology_accuracy nor knn_agreement")


def mitigation_verdict(tradeoff: pd.DataFrame, *, min_drop: float = 0.2, max_bio_loss: float = 0.05) -> pd.DataFrame:
    """Which mitigations cut held-out leakage by ``min_drop`` while keeping biology within ``max_bio_loss``.

    The drop is measured on ``|AUC - 0.5|`` so that over-correction (AUC well below
    0.5, chip still readable) does not count as removal. Biology is the run's
    ``biology_measure`` (cell-type accuracy, or kNN agreement without cell types).
    """
    biology = biology_measure(tradeoff)
    ae = tradeoff[tradeoff.method == "AE"].iloc[0]
    rows = tradeoff[~tradeoff.method.isin(["AE", "PCA", "combat", "harmony"])].copy()
    rows["auc_drop_vs_ae"] = ae.leakage_auc - rows.leakage_auc
    rows["excess_drop_vs_ae"] = ae.leakage_excess - rows.leakage_excess
    rows["biology_measure"] = biology
    rows["biology"] = rows[biology]
    rows["biology_change_vs_ae"] = rows[biology] - ae[biology]
    rows["meets_goal"] = (rows.excess_drop_vs_ae >= min_drop) & (rows.biology_change_vs_ae >= -max_bio_loss)
    return rows[["label", "leakage_auc", "leakage_knn_auc", "auc_drop_vs_ae", "excess_drop_vs_ae",
                 "biology_measure", "biology", "biology_change_vs_ae", "meets_goal"]].reset_index(drop=True)


# --------------------------------------------------------------------------- verdicts and conclusions

MAIN_EMBEDDINGS = ("PCA", "AE")


def leakage_verdicts(leakage: pd.DataFrame, *, metric: str = "roc_auc") -> pd.DataFrame:
    """Per embedding × split × probe: the estimate and its CI first, then the null and the p-value.

    The verdict rests on the bootstrap CI and the permutation-null band, never on the
    p-value alone: with 20–50 permutations p cannot go below 1/(n+1) (``p_at_floor``).
    """
    rows = leakage[leakage.metric == metric].copy()
    rows["p_at_floor"] = np.isclose(rows.p_value, rows.p_floor) & rows.p_floor.notna()
    rows["verdict"] = [_verdict(r.value, r.ci_low, r.ci_high, r.null_mean, r.null_sd) for r in rows.itertuples()]
    rows["evidence"] = [_evidence(r) for r in rows.itertuples()]
    return rows[["embedding", "split", "probe", "value", "ci_low", "ci_high", "null_mean", "null_sd", "p_value",
                 "p_floor", "p_at_floor", "verdict", "evidence"]].reset_index(drop=True)


def _verdict(value: float, low: float, high: float, null_mean: float, null_sd: float) -> str:
    """'leakage' (CI above 0.5 and above the null band), 'chance' (CI holds 0.5), else unresolved."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not resolved"  # no bootstrap CI: one number is not evidence
    if low > 0.5:
        above_null = not np.isfinite(null_sd) or value > null_mean + 2 * null_sd
        return "leakage" if above_null else "not resolved"
    if high < 0.5:
        return "below chance"
    return "chance"


def _evidence(r) -> str:
    text = f"AUC {r.value:.3f} (95% CI {r.ci_low:.3f}–{r.ci_high:.3f})"
    if np.isfinite(r.null_mean):
        text += f"; null {r.null_mean:.3f} ± {r.null_sd:.3f}"
        text += (f"; p ≤ {r.p_floor:.3f} (its floor with {int(round(1 / r.p_floor)) - 1} permutations)"
                 if r.p_at_floor else f"; p = {r.p_value:.3f}")
    return text


def main_splits(verdicts: pd.DataFrame) -> list[str]:
    """The splits a verdict is drawn from: the held-out ones, or the random split when there are none."""
    held_out = [s for s in verdicts.split.unique() if s != "random"]
    return held_out or ["random"]


def overall_verdict(verdicts: pd.DataFrame, *, probe: str = "linear") -> dict[str, Any]:
    """One word per main embedding (PCA, AE) over the main splits, and the study's overall word.

    Per embedding: 'leakage' when every main split shows it, 'chance' (no leakage detected)
    when none does, 'mixed' otherwise. Overall: the shared word, else 'mixed' — one split or
    one embedding alone is not enough for a verdict.
    """
    splits = main_splits(verdicts)
    rows = verdicts[(verdicts.probe == probe) & verdicts.split.isin(splits)]
    present = [e for e in MAIN_EMBEDDINGS if e in set(rows.embedding)] or sorted(set(rows.embedding))
    per_embedding = {name: _combine(set(rows[rows.embedding == name].verdict)) for name in present}
    words = set(per_embedding.values())
    overall = words.pop() if len(words) == 1 else "mixed"
    return {"overall": overall, "per_embedding": per_embedding, "splits": splits, "probe": probe}


def _combine(words: set[str]) -> str:
    if words == {"leakage"}:
        return "leakage"
    if "leakage" in words:
        return "mixed"
    if "chance" in words:
        return "chance"
    return words.pop() if len(words) == 1 else "not resolved"


def conclusions(verdicts: pd.DataFrame, tradeoff: pd.DataFrame | None, mitigation: pd.DataFrame | None,
                params: H2Params, *, truth: dict[str, Any] | None = None,
                harmony: dict[str, Any] | None = None) -> list[str]:
    """The notebook's conclusions, each sentence computed from this run's numbers."""
    summary = overall_verdict(verdicts)
    lines = [_headline(verdicts, summary)]
    lines += _probe_notes(verdicts, summary)
    if truth is not None:
        lines.append(_truth_note(summary["overall"], truth))
    if tradeoff is not None and mitigation is not None:
        lines += _mitigation_notes(tradeoff, mitigation, harmony)
    lines += [f"Not measured in this run: {item}." for item in skipped_measures(params)]
    return lines


def _headline(verdicts: pd.DataFrame, summary: dict[str, Any]) -> str:
    rows = verdicts[(verdicts.probe == "linear") & verdicts.split.isin(summary["splits"])]
    where = ", ".join(summary["splits"])
    details = "; ".join(f"{r.embedding} on {r.split}: {r.evidence} → {r.verdict}" for r in rows.itertuples()
                        if r.embedding in summary["per_embedding"])
    meaning = {
        "leakage": "the chip is encoded in the unsupervised embeddings and a linear probe reads it back",
        "chance": "no leakage detected: no chip signal a linear probe can read on data it never saw",
        "mixed": "the embeddings or splits disagree, so no single verdict is drawn",
        "not resolved": "the intervals cannot separate leakage from chance at this size",
        "below chance": "the probe scores below chance — the chip direction flips between conditions, or noise",
    }[summary["overall"]]
    return f"Verdict ({where}, linear probe): **{summary['overall']}** — {meaning}. {details}."


def _probe_notes(verdicts: pd.DataFrame, summary: dict[str, Any]) -> list[str]:
    notes = []
    main = verdicts[verdicts.split.isin(summary["splits"])]
    floor = verdicts[verdicts.p_at_floor]
    if len(floor):
        notes.append(f"{len(floor)} of {verdicts.p_value.notna().sum()} permutation p-values sit at their floor "
                     f"{floor.p_floor.iloc[0]:.3f} (no permuted probe reached the observed score): they say only "
                     f"p ≤ {floor.p_floor.iloc[0]:.3f}, so the verdicts rest on the CIs and the null band.")
    linear = main[main.probe == "linear"].set_index(["embedding", "split"]).verdict
    for probe in sorted(set(main.probe) - {"linear"}):
        other = main[main.probe == probe].set_index(["embedding", "split"]).verdict
        hidden = [f"{e} ({s})" for (e, s), v in other.items() if v == "leakage" and linear.get((e, s)) == "chance"]
        if hidden:
            notes.append(f"The {probe} probe reads the chip where the linear one does not — {', '.join(hidden)}: "
                         "the context is there, only not linearly.")
    if "random" not in summary["splits"]:
        random_rows = verdicts[(verdicts.split == "random") & (verdicts.probe == "linear")]
        disagree = [r.embedding for r in random_rows.itertuples()
                    if r.verdict == "leakage" and summary["per_embedding"].get(r.embedding) == "chance"]
        if disagree:
            notes.append(f"The random split reports leakage for {', '.join(disagree)} where the held-out split "
                         "does not: there the probe reads the chip through the condition (conditions have "
                         "unequal chip shares), which is why the held-out split is the verdict.")
    return notes


def _truth_note(overall: str, truth: dict[str, Any]) -> str:
    has_effect = truth.get("chip_effect", 0) > 0 or truth.get("library_shift", 0) > 0
    expected = "leakage" if has_effect else "chance"
    agrees = "agrees with" if overall == expected else "does NOT agree with"
    return (f"Truth check (simulated: chip_effect {truth.get('chip_effect')}, library_shift "
            f"{truth.get('library_shift')}): the simulator put {'a' if has_effect else 'no'} chip signal in, so the "
            f"correct answer is '{expected}'; the verdict '{overall}' {agrees} it.")


def _mitigation_notes(tradeoff: pd.DataFrame, mitigation: pd.DataFrame, harmony: dict[str, Any] | None) -> list[str]:
    notes = []
    biology = biology_measure(tradeoff)
    by_label = tradeoff.set_index("label")
    ae_excess = float(by_label.loc["AE"].leakage_excess) if "AE" in by_label.index else float("nan")
    if len(mitigation) and ae_excess < 0.2:
        notes.append(f"The plain AE leaks too little (|AUC − 0.5| = {ae_excess:.3f}) for a mitigation to cut it by "
                     "0.2: the mitigation bar does not apply to this run.")
    elif len(mitigation):
        met = mitigation[mitigation.meets_goal]
        if len(met):
            notes.append(f"Mitigations that cut leakage |AUC − 0.5| by ≥ 0.2 versus the plain AE and keep "
                         f"{biology} within 0.05: " + ", ".join(
                             f"{r.label} (AUC {r.leakage_auc:.3f}, {biology} {r.biology:.3f})"
                             for r in met.itertuples()) + ".")
        else:
            ae = by_label.loc["AE"]
            notes.append(f"No mitigation met the bar (plain AE: leakage AUC {ae.leakage_auc:.3f}); the largest "
                         "cuts in |AUC − 0.5|: " + ", ".join(
                             f"{r.label} AUC {r.leakage_auc:.3f} ({biology} {r.biology:.3f})"
                             for r in mitigation.nlargest(2, "excess_drop_vs_ae").itertuples()) + ".")
    else:
        notes.append("No mitigation was trained in this run (mitigations is empty).")
    for name in ("combat", "harmony"):
        if name in by_label.index and "PCA" in by_label.index:
            row, pca = by_label.loc[name], by_label.loc["PCA"]
            text = (f"{name}: leakage AUC {row.leakage_auc:.3f} (CI {row.leakage_auc_low:.3f}–"
                    f"{row.leakage_auc_high:.3f}) against PCA's {pca.leakage_auc:.3f}, {biology} "
                    f"{row[biology]:.3f} against {pca[biology]:.3f}; it saw every cell's chip label")
            if name == "harmony" and harmony:
                text += (f"; harmonypy ran {harmony['iterations']} of at most {harmony['max_iter']} iterations "
                         f"(theta {harmony['theta']:g}" + ("" if harmony["converged"] else ", not converged") + ")")
            notes.append(text + ".")
    return notes


def write_outputs(params: H2Params, *, metrics: dict[str, Any], tables: dict[str, pd.DataFrame],
                  charts: dict[str, Any], history: pd.DataFrame) -> Path:
    """metrics.json, history.csv, one CSV per table, PNG + HTML per chart — all atomic."""
    return io.write_study_outputs(params.output_path, params=params.to_dict(), metrics=metrics, tables=tables,
                                  charts=charts, history=history)


def summary_metrics(leakage: pd.DataFrame, tradeoff: pd.DataFrame, verdict: pd.DataFrame,
                    scib_table: pd.DataFrame, *, seconds: float, extra: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The headline numbers for metrics.json: linear-probe leakage, trade-off points, the verdict."""
    linear = leakage[leakage.probe == "linear"]
    headline = {
        f"{r.embedding} | {r.split} | {r.metric}": {"value": r.value, "ci": [r.ci_low, r.ci_high],
                                                    "null_mean": r.null_mean, "p_value": r.p_value}
        for r in linear.itertuples()
    }
    best = verdict[verdict.meets_goal].sort_values("excess_drop_vs_ae", ascending=False).head(1)
    by_label = tradeoff.set_index("label")
    return {
        "linear_probe": headline,
        "tradeoff": tradeoff.to_dict(orient="records"),
        # one scalar per method (held-out split), so a sweep's table has leakage_auc.<method> columns
        "leakage_auc": by_label["leakage_auc"].to_dict(),
        **{column: by_label[column].to_dict() for column in ("biology_accuracy", "knn_agreement")
           if column in by_label},
        "mitigation_goal_met": bool(verdict.meets_goal.any()),
        "best_mitigation": best.to_dict(orient="records")[0] if len(best) else None,
        "scib": scib_table.to_dict(orient="records"),
        "seconds": seconds,
        **(extra or {}),
    }


# --------------------------------------------------------------------------- reading a sweep

SWEEP_METRICS = {"leakage_auc": "leakage_auc.*", "biology_accuracy": "biology_accuracy.*"}


def sweep_leakage(results: pd.DataFrame, methods: list[str] | None = None) -> pd.DataFrame:
    """A Study 1 sweep's table → held-out leakage AUC and biology kept per method, mean ± sd over seeds,
    per value of the varying grid axes (``chip_effect`` in ``params/h2.yaml``).

    Reads the ``leakage_auc.<method>`` / ``biology_accuracy.<method>`` columns each point writes;
    ``methods`` keeps a subset (labels as in the trade-off table, e.g. ``["PCA", "AE", "mmd w=0.3"]``).
    """
    missing = [p for p in SWEEP_METRICS.values() if not any(str(c).startswith(p[:-1]) for c in results.columns)]
    if missing:
        raise sweeps.ResultsError(f"the sweep's table has no {missing} columns: it was not written by this version "
                                 f"of notebooks/01_h2.ipynb (metrics.json gains leakage_auc per method)")
    long = sweeps.unstack_metrics(results, SWEEP_METRICS, key="method")
    if methods is not None:
        unknown = sorted(set(methods) - set(long["method"]))
        if unknown:
            raise sweeps.ResultsError(f"method(s) {unknown} not in the sweep; it has {sorted(long['method'].unique())}")
        long = long[long["method"].isin(methods)]
    return sweeps.summarise(long, list(SWEEP_METRICS), by=[*sweeps.grid_axes(results), "method"])


def sweep_table(summary: pd.DataFrame, metric: str = "leakage_auc") -> pd.DataFrame:
    """One metric of ``sweep_leakage`` as method × grid-axis values, ``mean ± sd`` strings."""
    part = summary[summary["metric"] == metric]
    if part.empty:
        raise sweeps.ResultsError(f"no {metric!r} rows in the sweep summary; it has {sorted(summary['metric'].unique())}")
    wide = sweeps.format_summary(part)
    axes = [a for a in sweeps.summary_axes(part) if a != "method"]
    if not axes:
        return wide.set_index("method")[[metric, "n"]]
    return wide.pivot_table(index="method", columns=axes, values=metric, aggfunc="first")
