"""Posterior-collapse diagnostics for (hierarchical) Gaussian VAEs, and an automatic diagnosis.

All functions take per-point posterior parameters (N points × D dims); for the SetVAE a point is
one observed time step. Definitions:
- active unit (Burda et al. 2015): Cov_x(E_q[z_u]) = Var over points of mu_u > 0.01;
- KL is reported per level (sum over dims, mean over points, nats per step) and per dimension
  (mean over points) — both *without* free bits, i.e. the information actually used;
- I(x; z) is estimated as E_x[KL(q(z|x) || p(z))] − KL(q(z) || p(z)) with the aggregate posterior
  q(z) approximated on a subsample (Hoffman & Johnson 2016; estimator of He et al. 2019),
  computed per level against that level's posterior only (a lower-variance per-level proxy).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

ACTIVE_THRESHOLD = 0.01


def active_units(mu: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(active mask, per-unit variance of the posterior mean across points)."""
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or len(mu) < 2:
        raise ValueError(f"active_units: need mu of shape (N >= 2, D), got {mu.shape}")
    var = mu.var(axis=0, ddof=1)
    return var > threshold, var


def kl_per_dim(mu_q: np.ndarray, lv_q: np.ndarray, mu_p: np.ndarray | None = None, lv_p: np.ndarray | None = None) -> np.ndarray:
    """Mean over points of KL(q || p) per dimension (nats); p defaults to N(0, 1)."""
    mu_p = np.zeros_like(mu_q) if mu_p is None else mu_p
    lv_p = np.zeros_like(lv_q) if lv_p is None else lv_p
    kl = 0.5 * (lv_p - lv_q + (np.exp(lv_q) + (mu_q - mu_p) ** 2) / np.exp(lv_p) - 1.0)
    return kl.mean(axis=0)


def mutual_information(mu: np.ndarray, logvar: np.ndarray, *, max_points: int = 1000, seed: int = 0) -> float:
    """I(x; z) ≈ E[log q(z|x)] − E[log q(z)], z ~ q(z|x), q(z) the mixture over the points (nats).

    Bounded above by log N (N points in the mixture).
    """
    rng = np.random.default_rng(seed)
    if len(mu) > max_points:
        idx = rng.choice(len(mu), max_points, replace=False)
        mu, logvar = mu[idx], logvar[idx]
    mu_t, lv_t = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(logvar, dtype=torch.float64)
    n, d = mu_t.shape
    gen = torch.Generator().manual_seed(seed)
    z = mu_t + torch.randn(n, d, generator=gen, dtype=torch.float64) * (0.5 * lv_t).exp()
    log2pi = math.log(2 * math.pi)
    neg_entropy = (-0.5 * d * log2pi - 0.5 * (1 + lv_t).sum(-1)).mean()
    # Σ_d (z_i − mu_j)² / σ_j² expanded into three matrix products: O(N²) memory instead of the
    # (N, N, D) difference tensor (64 MB per level at N = 1000, D = 8), same value in float64
    inv_var = (-lv_t).exp()
    sq = (z**2) @ inv_var.T - 2 * z @ (mu_t * inv_var).T + (mu_t**2 * inv_var).sum(-1)[None]
    log_density = -0.5 * sq - 0.5 * (d * log2pi + lv_t.sum(-1))[None]
    log_qz = torch.logsumexp(log_density, dim=1) - math.log(n)
    return float(neg_entropy - log_qz.mean())


@dataclasses.dataclass
class LevelStats:
    level: int
    dims: int
    active: int
    active_ratio: float
    mean_sigma: float
    kl: float
    mi: float
    kl_per_dim: list
    var_mu: list


def level_stats(level: int, mu_q, lv_q, mu_p, lv_p, *, seed: int = 0, mi: bool = True) -> LevelStats:
    """All of a level's diagnostics; ``mi=False`` skips the O(N²) mutual information (NaN), for
    per-epoch monitors that do not report it."""
    mask, var = active_units(mu_q)
    kl_d = kl_per_dim(mu_q, lv_q, mu_p, lv_p)
    return LevelStats(
        level=level, dims=mu_q.shape[1], active=int(mask.sum()), active_ratio=float(mask.mean()),
        mean_sigma=float(np.exp(0.5 * lv_q).mean()), kl=float(kl_d.sum()),
        mi=mutual_information(mu_q, lv_q, seed=seed) if mi else math.nan, kl_per_dim=kl_d.tolist(), var_mu=var.tolist(),
    )


@dataclasses.dataclass
class Diagnosis:
    """``status`` is about the latents ("collapsed"/"healthy"); ``problem`` names what to fix first."""

    status: str  # "collapsed" or "healthy"
    evidence: list
    next_step: str
    problem: str = "none"  # collapse | underfitting | overfitting | variance | weak task | none

    def __str__(self) -> str:
        head = self.status.upper() + ("" if self.problem in ("none", "collapse") else f", {self.problem.upper()}")
        return f"{head}: " + "; ".join(self.evidence) + f" → next: {self.next_step}"


SEED_ADVICE = {
    "collapsed": "lower β (e.g. 0.5 → 0.1) or raise free bits; keep β warm-up on",
    "variance": "posterior σ below 0.1: enable the variance regulariser / widen logvar clipping",
    "weak_task": "raise the classification weight w (e.g. 0.5 → 1.0)",
    "overfit": "more dropout or weight decay",
    "underfit": ("the model did not learn the task (training AUROC at chance): train longer "
                 "(min_updates / epochs), raise lr or the SetVAE's lr scale, and check how much the step cap "
                 "dropped — not more regularisation"),
    "ok": "keep the configuration; compare AUROC/AUPRC against the baselines",
}


def chance_auroc_sd(n_pos: int, n_neg: int) -> float:
    """Standard deviation of AUROC for a scorer with no signal (Mann–Whitney null): a yardstick for
    "≈ chance" and for a train–test gap that sampling alone explains."""
    if n_pos < 1 or n_neg < 1:
        return math.inf
    return math.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))


def task_fit(train_auroc: float, test_auroc: float, *, train_counts: tuple[int, int] | None = None,
             test_counts: tuple[int, int] | None = None, min_margin: float = 0.1) -> tuple[str, str]:
    """("underfitting" | "overfitting" | "weak task" | "ok", evidence) from train and held-out AUROC.

    Underfitting: the training AUROC is within max(``min_margin``, 2 null-sd) of 0.5 — the model did
    not even fit its own training stays, so regularising more cannot help. Overfitting: training well
    above chance and the held-out AUROC lower by more than that margin (2 null-sd of the held-out set).
    """
    sd_train = chance_auroc_sd(*train_counts) if train_counts else 0.0
    sd_test = chance_auroc_sd(*test_counts) if test_counts else 0.0
    chance_band = max(min_margin, 2 * sd_train)
    gap_band = max(min_margin, 2 * sd_test)
    text = (f"AUROC train {train_auroc:.3f} vs held-out {test_auroc:.3f} (chance band ±{chance_band:.3f}, "
            f"gap band {gap_band:.3f})")
    if not math.isfinite(train_auroc) or not math.isfinite(test_auroc):
        return "ok", text + ": not tested (one class only)"
    if train_auroc < 0.5 + chance_band:
        return "underfitting", text + ": training AUROC at chance — the model did not learn"
    if train_auroc - test_auroc > gap_band:
        return "overfitting", text + ": training far above held-out"
    if test_auroc < 0.7:
        return "weak task", text
    return "ok", text


def diagnose(levels: list[LevelStats], *, min_active_ratio: float = 0.5, min_kl: float = 0.5,
             min_level_kl: float = 0.1, train_auroc: float | None = None, val_auroc: float | None = None,
             train_counts: tuple[int, int] | None = None, val_counts: tuple[int, int] | None = None) -> Diagnosis:
    """Read the diagnostics and say "collapsed" or "healthy", with the evidence and the seed's next step.

    Collapsed if the overall active-unit ratio is below ``min_active_ratio`` or the total KL per step
    is below ``min_kl`` nats (the latents carry almost nothing); the evidence lists every level.
    A level whose KL is below ``min_level_kl`` is named as near its prior even when its posterior
    means vary: with a prior p(z^l | z^{l-1}) they vary because the prior does, which active units
    count but which is no information of the level's own.
    With training and held-out AUROC, the task side is read too (``task_fit``): a model whose training
    AUROC is at chance is *underfitting* (never advised more dropout), one far above its held-out
    AUROC is *overfitting*. ``problem`` names what to fix first: collapse, then underfitting, then the rest.
    """
    total_dims = sum(s.dims for s in levels)
    ratio = sum(s.active for s in levels) / total_dims
    kl = sum(s.kl for s in levels)
    evidence = [f"active units {sum(s.active for s in levels)}/{total_dims} ({ratio:.2f}; healthy > {min_active_ratio})",
                f"KL {kl:.3f} nats/step (healthy > {min_kl})"]
    evidence += [f"level {s.level}: AU {s.active}/{s.dims}, KL {s.kl:.3f}, MI {s.mi:.3f}, mean σ {s.mean_sigma:.3f}"
                 for s in levels]
    near_prior = [s.level for s in levels if s.kl < min_level_kl]
    if near_prior:
        evidence.append(f"level(s) {near_prior} within {min_level_kl} nats/step of their prior")
    fit = "ok"
    if train_auroc is not None and val_auroc is not None:
        fit, text = task_fit(train_auroc, val_auroc, train_counts=train_counts, test_counts=val_counts)
        evidence.append(text)
    collapsed = ratio < min_active_ratio or kl < min_kl
    if collapsed:
        dead = [s.level for s in levels if s.active_ratio < min_active_ratio]
        if dead:
            evidence.append(f"collapsed level(s): {dead}")
        advice = SEED_ADVICE["collapsed"] + ("; and " + SEED_ADVICE["underfit"] if fit == "underfitting" else "")
        return Diagnosis("collapsed", evidence, advice, "collapse")
    if fit == "underfitting":
        return Diagnosis("healthy", evidence, SEED_ADVICE["underfit"], "underfitting")
    if min(s.mean_sigma for s in levels) < 0.1:
        return Diagnosis("healthy", evidence + ["but posterior σ < 0.1 on some level"], SEED_ADVICE["variance"], "variance")
    if fit == "overfitting":
        return Diagnosis("healthy", evidence, SEED_ADVICE["overfit"], "overfitting")
    if fit == "weak task":
        return Diagnosis("healthy", evidence, SEED_ADVICE["weak_task"], "weak task")
    return Diagnosis("healthy", evidence, SEED_ADVICE["ok"], "none")


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Project onto the first two principal axes (deterministic sign)."""
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:2] * np.sign(vt[:2, :1] + 1e-12)
    return x @ vt.T


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA between two representations of the same points (1 = same geometry up to rotation)."""
    a, b = a - a.mean(0), b - b.mean(0)
    num = np.linalg.norm(a.T @ b) ** 2
    den = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return float(num / den) if den > 0 else 0.0
