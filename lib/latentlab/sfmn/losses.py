"""Loss terms of Study 2 (SFMN): task losses on logits and the gate regularisers.

Every function returns a scalar tensor that ``train.fit`` weights by name:
``task`` (AdaptiveIMMAX, BCE or focal), ``align`` (swap alignment, MSE or
contrastive), ``sparse``, ``entropy`` and ``smooth``. The seed's weights are
``DEFAULT_WEIGHTS``. The objectives at the end (``SFMNObjective``, ``AdversarialObjective``,
``EPIObjective``, chosen by ``objective_for``) wrap a model from ``latentlab.sfmn.model`` /
``baselines`` with its terms and the parameters each must reach: what ``train.fit`` trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from latentlab.sfmn.model import verify_design

DEFAULT_WEIGHTS = {"align": 0.5, "sparse": 0.1, "entropy": 0.05, "smooth": 0.1}
ENTROPY_SIGNS = ("spread", "seed")
EPS = 1e-6


class AdaptiveIMMAX(nn.Module):
    """Class-imbalanced margin loss (Cortes, Mao, Mohri, Zhong, ICML 2025) on logits.

    ``½[mean_pos log(1+e^{−z/α}) + mean_neg log(1+e^{+z/(1−α)})]`` with z the logit
    (``softplus`` keeps it stable; no sigmoid is ever inverted). α adapts by an
    EMA towards ``√S₊/(√S₊+√S₋)`` where S₊, S₋ are running class counts — but
    only in ``update()``, which the objective calls from ``after_step`` once per
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


# --------------------------------------------------------------------------- objectives: what train.fit trains

TASK_LOSSES = ("immax", "bce", "focal")
ALIGN_FORMS = ("mse", "contrastive")
GATE_AGREEMENT = 1e-3  # gates of a batch's cell lines closer than this count as identical (see gated_terms)


def make_task_loss(kind: str) -> nn.Module | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if kind == "immax":
        return AdaptiveIMMAX()
    if kind == "bce":
        return bce
    if kind == "focal":
        return focal
    raise ValueError(f"task loss must be one of {TASK_LOSSES}, got {kind!r}")


class GradReverse(torch.autograd.Function):
    """Identity forward, ``-scale ×`` gradient backward: the domain adversary's path to the encoder."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return GradReverse.apply(x, scale)


class EPIObjective(nn.Module):
    """A model from ``latentlab.sfmn`` plus its task loss (AdaptiveIMMAX updates once per step)."""

    def __init__(self, model: nn.Module, *, task: str = "immax") -> None:
        super().__init__()
        self.model = model
        self.task_loss = make_task_loss(task)

    def task(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.task_loss(logits, batch["y"])

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"task": self.task(self.model(batch), batch)}

    def after_step(self, ctx: Any) -> None:
        if isinstance(self.task_loss, AdaptiveIMMAX):
            self.task_loss.update()

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return self.model.parameter_groups()

    def term_targets(self, name: str) -> dict[str, list[nn.Parameter]]:
        groups = self.parameter_groups()
        return {"sequence encoder": groups["sequence encoder"], "head": groups["head"]}


class AdversarialObjective(EPIObjective):
    """Task plus ``domain``: a cell-line discriminator on z behind gradient reversal (DANN, energy model)."""

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        z = self.model.encoder(batch)
        domain = F.cross_entropy(self.model.disc(grad_reverse(z)), batch["cell"])
        return {"task": self.task(self.model.logits(batch, z), batch), "domain": domain}

    def term_targets(self, name: str) -> dict[str, list[nn.Parameter]]:
        if name == "domain":  # the adversary must train the discriminator and (reversed) the encoder
            return {"discriminator": list(self.model.disc.parameters()),
                    "sequence encoder (reversed)": list(self.model.encoder.parameters())}
        return super().term_targets(name)


class SFMNObjective(EPIObjective):
    """SFMN's five terms — task, swap alignment, sparsity, entropy, smoothness — on z ⊙ g_c."""

    def __init__(self, model: nn.Module, *, task: str = "immax", align_form: str = "mse",
                 entropy_sign: str = "spread", tau: float = 0.5) -> None:
        super().__init__(model, task=task)
        if align_form not in ALIGN_FORMS:
            raise ValueError(f"align_form must be one of {ALIGN_FORMS}, got {align_form!r}")
        if entropy_sign not in ENTROPY_SIGNS:
            raise ValueError(f"entropy_sign must be one of {ENTROPY_SIGNS}, got {entropy_sign!r}")
        self.align_form, self.entropy_sign, self.tau = align_form, entropy_sign, tau

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        p = self.model.parts(batch)
        g = p["gates"]
        self.last_gate_spread = float((g - g.mean(0)).abs().max().detach()) if len(g) > 1 else 0.0
        return {
            "task": self.task(p["logits"], batch),
            "align": swap_alignment(p["h"], batch["y"], batch["cell"], form=self.align_form, tau=self.tau),
            "sparse": sparsity(g),
            "entropy": entropy_term(g, self.entropy_sign),
            "smooth": smoothness(g, self.model.cell_v(p["cells"])),
        }

    def gated_terms(self) -> set[str]:
        """Smoothness penalises gate differences between similar cell lines, so its gradient is proportional
        to them: while the batch's gates agree (an untrained support-set encoder gives nearly the same gate to
        every cell line) it is legitimately ~0, like a hinge at its minimum. Only then is it exempt from the
        round-off test; it must still be connected to the gate generator."""
        return {"smooth"} if getattr(self, "last_gate_spread", 1.0) < GATE_AGREEMENT else set()

    def term_targets(self, name: str) -> dict[str, list[nn.Parameter]]:
        groups = self.parameter_groups()
        if name == "task":
            return groups
        if name == "align":
            return {k: groups[k] for k in ("sequence encoder", "gate generator")}
        return {"gate generator": groups["gate generator"]}  # sparse, entropy, smooth shape the gate

    def check_design(self, batch: dict[str, torch.Tensor]) -> None:
        verify_design(self.model, batch)


LOSS_OPTIONS = ("align_form", "entropy_sign", "tau")  # options of the objective, not of the model


def objective_for(model: nn.Module, *, task: str = "immax", **options: Any) -> EPIObjective:
    """The objective that trains ``model``: SFMN's terms for a gated model, task (+ domain) otherwise.

    Chosen by what the model *is* (a gate generator, a discriminator), never by its name, so an
    energy model run under SFMN's name gets the energy model's terms and fails SFMN's contract.
    """
    if hasattr(model, "gate") and hasattr(model, "parts"):
        return SFMNObjective(model, task=task, **options)
    if options:
        raise ValueError(f"{type(model).__name__} has no gate: options {sorted(options)} apply to SFMN only")
    if hasattr(model, "disc"):
        return AdversarialObjective(model, task=task)
    return EPIObjective(model, task=task)
