"""Loss terms of Study 2 (SFMN): task losses on logits and the gate regularisers.

Every function returns a scalar tensor that ``train.fit`` weights by name:
``task`` (AdaptiveIMMAX, BCE or focal), ``align`` (swap alignment, MSE or
contrastive), ``sparse``, ``entropy`` and ``smooth``. The seed's weights are
``DEFAULT_WEIGHTS``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WEIGHTS = {"align": 0.5, "sparse": 0.1, "entropy": 0.05, "smooth": 0.1}
ENTROPY_SIGNS = ("spread", "seed")
EPS = 1e-6


class AdaptiveIMMAX(nn.Module):
    """Class-imbalanced margin loss (Cortes, Mao, Mohri, Zhong, ICML 2025) on logits.

    ``½[mean_pos log(1+e^{−z/α}) + mean_neg log(1+e^{+z/(1−α)})]`` with z the logit
    (``softplus`` keeps it stable; no sigmoid is ever inverted). α adapts by an
    EMA towards ``√S₊/(√S₊+√S₋)`` where S₊, S₋ are running class counts — but
    only in ``update()``, which the model calls from ``after_step`` once per
    optimiser step, never as a side effect of computing the loss. A batch with
    one class uses that class's term alone (no NaN from an empty mean) and
    does not move α.
    """

    def __init__(self, alpha: float = 0.5, momentum: float = 0.05, alpha_min: float = 0.05) -> None:
        super().__init__()
        if not 0 < alpha < 1:
            raise ValueError(f"AdaptiveIMMAX: alpha must be in (0, 1), got {alpha}")
        self.momentum, self.alpha_min = momentum, alpha_min
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self.register_buffer("counts", torch.zeros(2))  # running S₋, S₊
        self._pending = torch.zeros(2)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = y.float()
        pos, neg = y > 0.5, y <= 0.5
        a = self.alpha.clamp(self.alpha_min, 1 - self.alpha_min)
        parts = []
        if pos.any():
            parts.append(F.softplus(-logits[pos] / a).mean())
        if neg.any():
            parts.append(F.softplus(logits[neg] / (1 - a)).mean())
        self._pending = torch.stack([neg.sum(), pos.sum()]).float().detach()
        return torch.stack(parts).mean()

    @torch.no_grad()
    def update(self) -> float:
        """Move α one EMA step towards the imbalance target; returns the new α."""
        counts = self._pending
        self._pending = torch.zeros(2)
        if (counts == 0).any():
            return float(self.alpha)  # one-class batch: no evidence about the imbalance
        self.counts.mul_(1 - self.momentum).add_(self.momentum * counts)
        s_neg, s_pos = self.counts.clamp_min(EPS).sqrt()
        target = s_pos / (s_pos + s_neg)
        self.alpha.mul_(1 - self.momentum).add_(self.momentum * target)
        return float(self.alpha)


def bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, y.float())


def focal(logits: torch.Tensor, y: torch.Tensor, gamma: float = 2.0, alpha: float = 0.75) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) on logits; α weights the positive class."""
    y = y.float()
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p = torch.sigmoid(logits)
    pt = p * y + (1 - p) * (1 - y)
    w = alpha * y + (1 - alpha) * (1 - y)
    return (w * (1 - pt).pow(gamma) * ce).mean()


def _pair_sq_dist(h: torch.Tensor) -> torch.Tensor:
    """Mean (over dimensions) squared distance between every pair of rows."""
    return (h[:, None, :] - h[None, :, :]).pow(2).mean(dim=-1)


def swap_alignment(h: torch.Tensor, y: torch.Tensor, cell: torch.Tensor, *, form: str = "mse",
                   tau: float = 0.5) -> torch.Tensor:
    """Alignment of modulated features ``h = z ⊙ g_c`` across cell lines at equal label.

    ``mse``: mean over pairs (i, j) with y_i = y_j and c_i ≠ c_j of ||h_i − h_j||²/d.
    ``contrastive``: InfoNCE with d(u, v) = ||u − v||²/d and temperature τ; positives
    are same-label pairs from another cell line, the denominator all k ≠ i.
    Returns 0 (connected to h) when the batch has no such pair.
    """
    same_y = y[:, None] == y[None, :]
    other_c = cell[:, None] != cell[None, :]
    positive = same_y & other_c
    dist = _pair_sq_dist(h)
    if not positive.any():
        return h.sum() * 0.0
    if form == "mse":
        return dist[positive].mean()
    if form != "contrastive":
        raise ValueError(f"swap_alignment: form must be 'mse' or 'contrastive', got {form!r}")
    logits = -dist / tau
    eye = torch.eye(len(h), dtype=torch.bool, device=h.device)
    denom = torch.logsumexp(logits.masked_fill(eye, -math.inf), dim=1)
    numer = torch.logsumexp(logits.masked_fill(~positive, -math.inf), dim=1)
    has = positive.any(dim=1)
    return (denom[has] - numer[has]).mean()


def sparsity(gates: torch.Tensor) -> torch.Tensor:
    """mean_c ||g_c||₁ / d (per dimension, so the weight does not depend on d).

    With a sparsemax gate ||g_c||₁ = 1 for every c: this term is constant and its
    gradient is exactly zero — the seed's simplex bug, which the contract reports.
    """
    return gates.abs().mean()


def gate_entropy(gates: torch.Tensor) -> torch.Tensor:
    """H(g_c) = −Σ_i g_i log(g_i + ε), averaged over cell lines and divided by d."""
    return -(gates * torch.log(gates + EPS)).mean()


def entropy_term(gates: torch.Tensor, sign: str = "spread") -> torch.Tensor:
    """The entropy loss term, with its sign made explicit.

    ``spread`` (default, the seed's stated purpose): the term is −H(g), so
    minimising the total loss *raises* entropy and resists collapse of a gate
    onto a few (one-hot) entries. ``seed``: +H(g) exactly as the seed's total
    loss writes it, which pushes gates towards one-hot / binary — kept for the
    ablation that shows the sign matters.
    """
    if sign not in ENTROPY_SIGNS:
        raise ValueError(f"entropy sign must be one of {ENTROPY_SIGNS}, got {sign!r}")
    h = gate_entropy(gates)
    return -h if sign == "spread" else h


def smoothness(gates: torch.Tensor, v: torch.Tensor, sigma2: float | None = None) -> torch.Tensor:
    """E_{c≠c'} exp(−||v_c − v_c'||²/σ²) ||g_c − g_c'||²/d over the cell lines in the batch.

    σ² defaults to the median squared distance between the batch's v_c. Needs ≥ 2
    cell lines; with one it returns 0 connected to the gates.
    """
    k = len(gates)
    if k < 2:
        return gates.sum() * 0.0
    dv = (v[:, None, :] - v[None, :, :]).pow(2).sum(-1)
    off = ~torch.eye(k, dtype=torch.bool, device=gates.device)
    if sigma2 is None:
        sigma2 = float(dv[off].median().clamp_min(EPS))
    kernel = torch.exp(-dv / sigma2)
    dg = (gates[:, None, :] - gates[None, :, :]).pow(2).mean(-1)
    return (kernel * dg)[off].mean()
