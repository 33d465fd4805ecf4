"""Loss terms and the five ablation arms of the reconstruction study (seed 002).

Every arm is a set of named terms plus weights for ``train.fit``:

* A (as found): if recon1 > MIN_RECON_LOSS and recon2 > MIN_RECON_LOSS
  ``0.2·h1 + 0.2·h2 + 0.3·gt + 0.15·r1 + 0.15·r2`` else ``3·h1 + 3·h2 + 4·gt``.
  The switch is a set of weight callables reading this step's term values
  (``ctx.terms``), so fit's contract and history see the weights actually used;
  ``ReconObjective.after_step`` records every switch.
* B: ``0.25·h1 + 0.25·h2 + 0.4·gt + 0.05·r1 + 0.05·r2``.
* C: ``0.3·h1 + 0.3·h2 + 0.4·gt`` (recon logged at weight 0).
* D: B's weights, recon target = embedding of the TRUE alleles.
* E: ``0.3·h1 + 0.3·h2 + 0.3·gt + 0.1·InfoNCE(hap_1_after, hap_2_after)``, τ = 0.1.

recon_k = MSE(hap_k_before[mask], hap_k_after[mask]) as in the seed's
``pretrain_with_val.py`` (neither side detached).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from latentlab.train import StepContext

MIN_RECON_LOSS = 0.01
ARMS = ("A", "B", "C", "D", "E")
TASK_TERMS = ("hap1", "hap2", "gt")

FIXED_WEIGHTS: dict[str, dict[str, float]] = {
    "B": {"hap1": 0.25, "hap2": 0.25, "gt": 0.4, "recon1": 0.05, "recon2": 0.05},
    "C": {"hap1": 0.3, "hap2": 0.3, "gt": 0.4, "recon1": 0.0, "recon2": 0.0},
    "D": {"hap1": 0.25, "hap2": 0.25, "gt": 0.4, "recon1": 0.05, "recon2": 0.05},
    "E": {"hap1": 0.3, "hap2": 0.3, "gt": 0.3, "recon1": 0.0, "recon2": 0.0, "contrastive": 0.1},
}
ARM_A_ON = {"hap1": 0.2, "hap2": 0.2, "gt": 0.3, "recon1": 0.15, "recon2": 0.15}
ARM_A_OFF = {"hap1": 3.0, "hap2": 3.0, "gt": 4.0, "recon1": 0.0, "recon2": 0.0}


# --------------------------------------------------------------------------- terms


def focal_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean over masked positions of ``-(1 - p_t)^γ · log p_t`` (γ = 0 is cross-entropy)."""
    logp = F.log_softmax(logits[mask], dim=-1)
    logp_t = logp.gather(-1, target[mask].long().unsqueeze(-1)).squeeze(-1)
    weight = (1 - logp_t.exp()).clamp_min(0).pow(gamma)
    return -(weight * logp_t).mean()


def focal_weights(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """The focal factor ``(1 - p_t)^γ`` of every labelled position (data utilisation)."""
    p_t = F.softmax(logits[mask], dim=-1).gather(-1, target[mask].long().unsqueeze(-1)).squeeze(-1)
    return (1 - p_t).pow(gamma)


def recon_mse(before: torch.Tensor, after: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``nn.MSELoss()(before[mask], after[mask])``: mean over masked positions and features."""
    return F.mse_loss(after[mask], before[mask])


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, mask: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """InfoNCE: individual i's hap_1 (mean over masked sites) vs its own hap_2 among the batch's hap_2s."""
    w = mask.float().unsqueeze(-1)
    denom = w.sum(dim=1).clamp_min(1.0)
    a = F.normalize((anchor * w).sum(dim=1) / denom, dim=-1)
    p = F.normalize((positive * w).sum(dim=1) / denom, dim=-1)
    logits = a @ p.T / tau
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


def genotype_class(y1: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
    """Phased genotype as a 4-class label: 2·h1 + h2 (0|0, 0|1, 1|0, 1|1)."""
    return 2 * y1.long() + y2.long()


# --------------------------------------------------------------------------- arms


def recon_on(terms: Mapping[str, float], threshold: float = MIN_RECON_LOSS) -> bool:
    """Arm A's condition, exactly as the seed writes it (both recon terms above the threshold)."""
    return terms.get("recon1", math.inf) > threshold and terms.get("recon2", math.inf) > threshold


def arm_weights(arm: str, threshold: float = MIN_RECON_LOSS) -> dict[str, float | Callable[[StepContext], float]]:
    """The weights ``train.fit`` gets for an arm; arm A's are functions of this step's term values."""
    if arm == "A":
        def weight(name: str) -> Callable[[StepContext], float]:
            return lambda ctx: ARM_A_ON[name] if recon_on(ctx.terms, threshold) else ARM_A_OFF[name]
        return {name: weight(name) for name in ARM_A_ON}
    if arm not in FIXED_WEIGHTS:
        raise ValueError(f"unknown arm {arm!r}; choose one of {ARMS}")
    return dict(FIXED_WEIGHTS[arm])


def total_loss(arm: str, terms: Mapping[str, float], threshold: float = MIN_RECON_LOSS) -> float:
    """The arm's formula evaluated by hand on term values (used by tests and the share monitor)."""
    w = (ARM_A_ON if recon_on(terms, threshold) else ARM_A_OFF) if arm == "A" else FIXED_WEIGHTS[arm]
    return sum(w[k] * terms[k] for k in w if w[k] != 0)


class ReconObjective(nn.Module):
    """The imputer plus one arm's loss terms: what ``train.fit`` trains.

    Keeps arm A's switch log (``switches``) and, per step, the seed's recon/hap
    ratio monitor (``ratios``), both recorded in ``after_step`` from the values
    fit actually used.
    """

    def __init__(self, model: nn.Module, arm: str, gamma: float, *, threshold: float = MIN_RECON_LOSS,
                 tau: float = 0.1):
        super().__init__()
        if arm not in ARMS:
            raise ValueError(f"unknown arm {arm!r}; choose one of {ARMS}")
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        self.model, self.arm, self.gamma, self.threshold, self.tau = model, arm, gamma, threshold, tau
        self.switches: list[dict] = []
        self.ratios: list[float] = []
        self._mode: bool | None = None
        self.steps_on = 0
        self.steps_total = 0

    def weights(self) -> dict:
        return arm_weights(self.arm, self.threshold)

    def recon_target(self, batch: dict, k: int, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Arm D reconstructs the embedding of the true alleles; every other arm the masked input's."""
        if self.arm == "D":
            return self.model.embed_alleles(batch[f"y{k}"].long())
        return outputs[2 + k]  # hap_k_before

    def terms_and_outputs(self, batch: dict) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        out = self.model(batch)
        mask, y1, y2 = batch["mask"], batch["y1"], batch["y2"]
        terms = {
            "hap1": focal_loss(out[0], y1, mask, self.gamma),
            "hap2": focal_loss(out[1], y2, mask, self.gamma),
            "gt": focal_loss(out[2], genotype_class(y1, y2), mask, self.gamma),
            "recon1": recon_mse(self.recon_target(batch, 1, out), out[5], mask),
            "recon2": recon_mse(self.recon_target(batch, 2, out), out[6], mask),
        }
        if self.arm == "E":
            terms["contrastive"] = info_nce(out[5], out[6], mask, self.tau)
        return terms, out

    def loss_terms(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.terms_and_outputs(batch)[0]

    def term_targets(self, name: str) -> dict[str, list[nn.Parameter]]:
        """Every active term must reach the transformer and the RAG path (the designed forward path); the
        allele terms also the copying model's residual on their logits, when the imputer reads it."""
        groups = self.model.parameter_groups()
        if name in ("hap1", "hap2") and getattr(self.model.cfg, "use_copying", False):
            groups["copying residual"] = [self.model.copying_skip]
        return groups

    def gated_terms(self) -> set[str]:
        """With the copying model's P(ALT) on its allele logits the imputer starts confident and mostly right, so
        under focal loss (γ > 0, weight (1 − p_t)^γ) the allele terms begin in their flat region: on the hold-out
        CHB panel at γ 2.5 their gradient to the match readers was 6.6e-6 of recon's, which the contract's
        round-off rule would call an exact zero. For them the contract checks that the graph reaches every
        target group, as for other legitimately flat terms."""
        if self.gamma > 0 and getattr(self.model.cfg, "use_copying", False):
            return {"hap1", "hap2"}
        return set()

    def check_design(self, batch: dict) -> None:
        from latentlab.train import ContractError

        out = self.model(batch)
        b, length = batch["hap_1"].shape
        d = self.model.cfg.d_model
        shapes = [(b, length, 2), (b, length, 2), (b, length, 4)] + [(b, length, d)] * 4
        got = [tuple(o.shape) for o in out]
        if got != shapes:
            raise ContractError(f"imputer outputs have shapes {got}; the seed's order needs {shapes}")
        for k in (1, 2):
            leaked = batch[f"hap_{k}"][batch["mask"]] != MASK_TOKEN
            if bool(leaked.any()):
                raise ContractError(f"hap_{k} input shows a true allele at {int(leaked.sum())} masked site(s)")
        if not bool(batch["mask"].any()):
            raise ContractError("batch has no masked site: every term would be empty")

    def after_step(self, ctx: StepContext) -> None:
        mode = recon_on(ctx.terms, self.threshold)
        if self.arm == "A":
            if self._mode is not None and mode != self._mode:
                self.switches.append({"step": ctx.step, "epoch": ctx.epoch, "to": "recon" if mode else "no-recon",
                                      "recon1": ctx.terms["recon1"], "recon2": ctx.terms["recon2"]})
            self._mode = mode
            self.steps_on += int(mode)
        self.steps_total += 1
        hap = ctx.terms.get("hap1", math.nan)
        self.ratios.append(ctx.terms.get("recon1", math.nan) / hap if hap > 0 else math.nan)


MASK_TOKEN = 2


def ratio_verdict(ratio: float) -> str:
    """The seed's decision rule on recon/hap: > 1 recon dominates, < 0.1 negligible."""
    if not math.isfinite(ratio):
        return "n/a"
    if ratio > 1:
        return "recon dominates (lower its weight)"
    if ratio < 0.1:
        return "recon negligible (can be removed)"
    return "reasonable range"


def gradient_conflict(objective: ReconObjective, batch: dict) -> dict[str, float]:
    """Cosine between the task gradient and the auxiliary-term gradient, measured, not argued.

    Task = the arm's weighted hap/gt terms (arm A: its recon-on weights); aux = the
    arm's recon terms (E: the contrastive term; C: the seed's recon it no longer
    trains). Cosines on ``hap_after`` (both haplotypes) and on the shared weights
    (embedding, fusion, transformer), and the aux share of the combined update norm
    on the shared weights at the arm's actual weights.
    """
    weights = ARM_A_ON if objective.arm == "A" else FIXED_WEIGHTS[objective.arm]
    with torch.enable_grad():
        terms, out = objective.terms_and_outputs(batch)
        task = sum(weights[k] * terms[k] for k in TASK_TERMS)
        aux_names = ["contrastive"] if objective.arm == "E" else ["recon1", "recon2"]
        aux_w = {k: weights[k] for k in aux_names}
        aux_unit = sum(terms[k] for k in aux_names)
        aux = sum(aux_w[k] * terms[k] for k in aux_names)
        shared = objective.model.shared_parameters()
        hidden = [out[5], out[6]]
        gt_h = torch.autograd.grad(task, hidden, retain_graph=True)
        ga_h = torch.autograd.grad(aux_unit, hidden, retain_graph=True)
        gt_s = torch.autograd.grad(task, shared, retain_graph=True, allow_unused=True)
        ga_s = torch.autograd.grad(aux_unit, shared, retain_graph=isinstance(aux, torch.Tensor), allow_unused=True)
    flat = _flatten
    t_h, a_h, t_s, a_s = flat(gt_h, hidden), flat(ga_h, hidden), flat(gt_s, shared), flat(ga_s, shared)
    w_aux = sum(aux_w.values()) / max(len(aux_w), 1)
    task_norm, aux_norm = float(t_s.norm()), float(a_s.norm()) * w_aux
    return {
        "cos_hap_after": _cos(t_h, a_h),
        "cos_shared": _cos(t_s, a_s),
        "aux_share": aux_norm / (task_norm + aux_norm) if task_norm + aux_norm > 0 else math.nan,
    }


def _flatten(grads, like) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, like, strict=True)])


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    denom = float(a.norm() * b.norm())
    return float(a @ b) / denom if denom > 0 else math.nan
