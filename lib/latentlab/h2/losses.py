"""Study 1's named loss terms: reconstruction, each mitigation's penalty, and what each must reach.

``AutoEncoderObjective`` wraps an autoencoder from ``latentlab.h2.model`` and is what
``train.fit`` trains: ``loss_terms(batch)`` returns the named terms and
``term_targets`` the parameters each must reach, so the contract check can prove,
e.g., that the adversary's reversed gradient arrives at the encoder. A batch is
``{"x": FloatTensor[B, G], "context": LongTensor[B]}`` with context ``-1`` for cells
whose label the model must not see (the test cells of the split being evaluated):
they enter the reconstruction, never a penalty.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from latentlab.h2.model import AutoEncoder

# The penalty terms each mitigation adds to the reconstruction (their weights are the study's parameters).
PENALTY_TERMS: dict[str, tuple[str, ...]] = {
    "none": (),
    "adversarial": ("adversary",),
    "hsic": ("hsic",),
    "mmd": ("mmd",),
    "subspace": ("context", "adversary"),
}


class GradientReversal(torch.autograd.Function):
    """Identity forward, ``-scale ×`` gradient backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return GradientReversal.apply(x, scale)


def rbf_kernel(x: torch.Tensor, bandwidths: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of RBF kernels at multiples of the median pairwise distance (robust to scale)."""
    d2 = torch.cdist(x, x).pow(2)
    if bandwidths is None:
        median = d2.detach()[d2.detach() > 0].median() if (d2 > 0).any() else torch.tensor(1.0, device=x.device)
        bandwidths = median * torch.tensor([0.25, 1.0, 4.0], device=x.device)
    return sum(torch.exp(-d2 / b.clamp_min(1e-8)) for b in bandwidths)


def hsic(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Biased HSIC (Gretton et al. 2005) between z (RBF) and one-hot labels (linear kernel)."""
    n = z.shape[0]
    k = rbf_kernel(z)
    y = F.one_hot(labels, n_classes).float()
    ell = y @ y.T
    h = torch.eye(n, device=z.device) - 1.0 / n
    return torch.trace(k @ h @ ell @ h) / (n - 1) ** 2


def mmd(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over context pairs of the squared MMD between their z distributions (RBF)."""
    k = rbf_kernel(z)
    groups = [labels == c for c in torch.unique(labels)]
    total = z.sum() * 0.0
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            a, b = groups[i], groups[j]
            total = total + k[a][:, a].mean() + k[b][:, b].mean() - 2 * k[a][:, b].mean()
    return total


def _labelled(z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keep = context >= 0
    return z[keep], context[keep]


def adversarial_terms(model: nn.Module, z: torch.Tensor, context: torch.Tensor) -> dict[str, torch.Tensor]:
    """The chip discriminator's cross-entropy, reaching the encoder through gradient reversal."""
    z_lab, c_lab = _labelled(z, context)
    if len(c_lab) == 0:
        return {"adversary": z.sum() * 0.0}
    return {"adversary": F.cross_entropy(model.discriminator(reverse_gradient(z_lab)), c_lab)}


def hsic_terms(model: nn.Module, z: torch.Tensor, context: torch.Tensor) -> dict[str, torch.Tensor]:
    z_lab, c_lab = _labelled(z, context)
    if len(c_lab) < 4:
        return {"hsic": z.sum() * 0.0}
    return {"hsic": hsic(z_lab, c_lab, model.n_context)}


def mmd_terms(model: nn.Module, z: torch.Tensor, context: torch.Tensor) -> dict[str, torch.Tensor]:
    z_lab, c_lab = _labelled(z, context)
    if len(torch.unique(c_lab)) < 2:
        return {"mmd": z.sum() * 0.0}
    return {"mmd": mmd(z_lab, c_lab)}


def subspace_terms(model: nn.Module, z: torch.Tensor, context: torch.Tensor) -> dict[str, torch.Tensor]:
    """Chip predictable from z_ctx (``context``) and adversarially removed from z_bio (``adversary``)."""
    z_lab, c_lab = _labelled(z, context)
    if len(c_lab) == 0:
        zero = z.sum() * 0.0
        return {"context": zero, "adversary": zero}
    z_ctx, z_bio = z_lab[:, : model.context_dims], z_lab[:, model.context_dims :]
    return {
        "context": F.cross_entropy(model.context_head(z_ctx), c_lab),
        "adversary": F.cross_entropy(model.bio_adversary(reverse_gradient(z_bio)), c_lab),
    }


Penalty = Callable[[nn.Module, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
PENALTIES: dict[str, Penalty] = {
    "none": lambda model, z, context: {},
    "adversarial": adversarial_terms,
    "hsic": hsic_terms,
    "mmd": mmd_terms,
    "subspace": subspace_terms,
}


def _params(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters())


class AutoEncoderObjective(nn.Module):
    """An autoencoder plus its mitigation's penalty terms: what ``train.fit`` trains."""

    def __init__(self, model: AutoEncoder) -> None:
        super().__init__()
        if model.mitigation not in PENALTIES:
            raise ValueError(f"no loss terms for mitigation {model.mitigation!r}; known: {sorted(PENALTIES)}")
        self.model = model
        self.penalty = PENALTIES[model.mitigation]

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        z = self.model.encode(batch["x"])
        terms = {"recon": F.mse_loss(self.model.decoder(z), batch["x"])}
        terms.update(self.penalty(self.model, z, batch["context"]))
        return terms

    def term_targets(self, name: str) -> dict[str, list[nn.Parameter]]:
        """Reconstruction reaches encoder and decoder; every penalty the encoder and its own head."""
        model, encoder = self.model, _params(self.model.encoder)
        if name == "recon":
            return {"encoder": encoder, "decoder": _params(model.decoder)}
        heads = {("adversarial", "adversary"): ("discriminator", "discriminator"),
                 ("subspace", "adversary"): ("adversary", "bio_adversary"),
                 ("subspace", "context"): ("context head", "context_head")}
        head = heads.get((model.mitigation, name))
        if head is None:
            return {"encoder": encoder}
        return {"encoder": encoder, head[0]: _params(getattr(model, head[1]))}
