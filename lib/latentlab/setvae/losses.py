"""SetVAE objective: named loss terms for ``train.fit`` and the seed's weight schedules.

Terms (each read by exactly one configured weight):
- ``recon``: masked MSE of the z-scored values of the observed elements (mean over elements);
- ``kl``: Σ_levels level_weight_l · free-bits KL of level l — KL in nats per time step, free bits on
  the batch mean per latent *group* (Kingma et al. 2016): ``free_bits_group="dim"`` clamps every
  dimension, Σ_d max(λ, KL_{l,d}); ``"level"`` clamps the level as one group, max(λ, Σ_d KL_{l,d}).
  The seed does not say which; "dim" leaves D times more nats free, so it resists collapse harder;
- ``cls``: BCE of the stay-level logit with label smoothing;
- ``var_reg``: mean softplus(log σ_floor² − logvar_q) — a smooth hinge pushing posterior σ above a floor
  (variance collapse); smooth so it never has a dead zero-gradient region;
- ``mean_reg``: mean mu_q² — the seed's "mean regulariser" (keeps means small; note it pulls toward
  the prior, i.e. in the collapse direction — the ablation measures it).
Schedules are plain ``ctx -> float`` callables (β warm-up, linear/cyclical annealing, dynamic
task weights) so ``train.fit`` logs the weight actually used at every step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from latentlab.setvae.model import HierarchicalSetVAE, gaussian_kl
from latentlab.train import StepContext

TERMS = ("recon", "kl", "cls", "var_reg", "mean_reg")
FREE_BITS_GROUPS = ("dim", "level")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    free_bits: float = 0.0
    free_bits_group: str = "dim"  # "dim" (λ per latent dimension) or "level" (λ per level)
    level_weights: tuple = (1.0, 1.0)
    sigma_floor: float = 0.1
    label_smoothing: float = 0.0
    pos_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.free_bits_group not in FREE_BITS_GROUPS:
            raise ValueError(f"free_bits_group must be one of {FREE_BITS_GROUPS}, got {self.free_bits_group!r}")


def free_bits_kl(kl_dims: torch.Tensor, free_bits: float, group: str = "dim") -> torch.Tensor:
    """Free-bits KL of one level from per-point, per-dimension KL (N × D).

    ``group="dim"``: Σ_d max(λ, mean_n KL_{n,d}) — below λ nats a dimension costs a constant (no
    gradient). ``group="level"``: max(λ, Σ_d mean_n KL_{n,d}) — the level as one group, so only λ
    nats in total are free and single dimensions can still be pushed onto the prior.
    """
    mean_kl = kl_dims.mean(0)
    if free_bits <= 0:
        return mean_kl.sum()
    if group == "level":
        return torch.clamp(mean_kl.sum(), min=free_bits)
    if group != "dim":
        raise ValueError(f"free_bits group must be one of {FREE_BITS_GROUPS}, got {group!r}")
    return torch.clamp(mean_kl, min=free_bits).sum()


def level_weight_vector(n_levels: int, ratio: float) -> tuple:
    """Linearly increasing level weights (deepest = ratio × shallowest), normalised to mean 1."""
    if n_levels == 1:
        return (1.0,)
    raw = [1.0 + (ratio - 1.0) * i / (n_levels - 1) for i in range(n_levels)]
    mean = sum(raw) / n_levels
    return tuple(r / mean for r in raw)


def smoothed_bce(logit: torch.Tensor, y: torch.Tensor, smoothing: float, pos_weight: float = 1.0) -> torch.Tensor:
    """BCE against y·(1−ε) + ε/2 (label smoothing)."""
    target = y * (1 - smoothing) + 0.5 * smoothing
    pw = torch.tensor(pos_weight, device=logit.device)
    return F.binary_cross_entropy_with_logits(logit, target, pos_weight=pw)


class SetVAEObjective(nn.Module):
    """Wraps the model so ``train.fit`` sees ``loss_terms``, ``term_targets`` and ``check_design``."""

    def __init__(self, model: HierarchicalSetVAE, cfg: LossConfig) -> None:
        super().__init__()
        if len(cfg.level_weights) != len(model.cfg.latent_dims):
            raise ValueError(
                f"level_weights has {len(cfg.level_weights)} entries for {len(model.cfg.latent_dims)} latent levels"
            )
        self.model, self.cfg = model, cfg

    def loss_terms(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self.model(batch)
        elem = batch["elem_mask"]
        recon = ((out["recon"] - batch["val"]) ** 2 * elem).sum() / elem.sum().clamp_min(1)
        kl = sum(w * free_bits_kl(gaussian_kl(lv.mu_q, lv.logvar_q, lv.mu_p, lv.logvar_p), self.cfg.free_bits,
                                    self.cfg.free_bits_group)
                 for w, lv in zip(self.cfg.level_weights, out["levels"], strict=True))
        cls = smoothed_bce(out["logit"], batch["label"].float(), self.cfg.label_smoothing, self.cfg.pos_weight)
        floor = 2 * math.log(self.cfg.sigma_floor)
        var_reg = torch.stack([F.softplus(floor - lv.logvar_q).mean() for lv in out["levels"]]).mean()
        mean_reg = torch.stack([(lv.mu_q**2).mean() for lv in out["levels"]]).mean()
        return {"recon": recon, "kl": kl, "cls": cls, "var_reg": var_reg, "mean_reg": mean_reg}

    def gated_terms(self) -> set[str]:
        """Terms that are (nearly) flat by design in part of their range, not dead: a KL below the free
        bits λ, and the variance hinge while σ is well above its floor (softplus tail, ~1e-3 of the
        other terms' gradients at initialisation)."""
        return {"var_reg"} | ({"kl"} if self.cfg.free_bits > 0 else set())

    def term_targets(self, name: str) -> dict[str, list[nn.Parameter]]:
        """Which modules each term must reach (checked by train.fit before the first step)."""
        groups = self.model.module_groups()
        if name == "kl" or name in ("var_reg", "mean_reg"):
            return {"setvae": groups["setvae"]}
        if name == "cls":
            return {"head": list(self.model.head.parameters()), "transformer": groups["transformer"]}
        if name == "recon":
            return {"decoder": list(self.model.decoder.parameters())}
        return {}

    def check_design(self, batch: dict) -> None:
        """The designed operations are on the forward path: the decoder reads z_t directly.

        The first step's reconstruction sees history only through the start token, so any gradient
        from it to the posterior means must come through the direct z path.
        """
        from latentlab.train import ContractError

        if self.model.cfg.decoder_input == "h":
            return
        out = self.model(batch, sample=False)
        probe = out["levels"][0].mu_q
        first = out["recon"][:, 0] * batch["elem_mask"][:, 0]
        grad = torch.autograd.grad(first.sum(), probe, allow_unused=True, retain_graph=False)[0]
        if grad is None or not float(grad.abs().sum()) > 0:
            raise ContractError("decoder_input includes z, but the reconstruction does not depend on z")


# --------------------------------------------------------------------------- schedules


Schedule = Callable[[StepContext], float]


def beta_schedule(kind: str, max_beta: float, warmup_steps: int = 0, cycle_steps: int = 0, ratio: float = 0.5) -> Schedule:
    """β per step: ``constant``; ``linear`` (0 → max over warmup_steps, then max);
    ``cyclical`` (Fu et al. 2019: each cycle rises linearly over ``ratio`` of it, then holds)."""
    if kind not in ("constant", "linear", "cyclical"):
        raise ValueError(f"kl schedule must be constant, linear or cyclical, got {kind!r}")

    def beta(ctx: StepContext) -> float:
        if kind == "constant":
            return max_beta
        if kind == "linear":
            return max_beta * min(1.0, ctx.step / warmup_steps) if warmup_steps > 0 else max_beta
        pos = (ctx.step % cycle_steps) / cycle_steps if cycle_steps > 0 else 1.0
        return max_beta * min(1.0, pos / ratio)

    return beta


def task_weight(base: float, dynamic: bool, *, start: float, end: float) -> Schedule | float:
    """Dynamic task weight: base × (start → end) linearly over the epochs; constant base otherwise."""
    if not dynamic:
        return base

    def weight(ctx: StepContext) -> float:
        frac = ctx.epoch / max(ctx.epochs - 1, 1)
        return base * (start + (end - start) * frac)

    return weight
