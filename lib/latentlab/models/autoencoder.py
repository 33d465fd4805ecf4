"""Autoencoders for expression, plain and with context-removal penalties.

Every variant speaks the ``train.fit`` protocol: ``loss_terms(batch)`` returns
named terms, ``term_targets`` says which parameters each term must reach (so
the contract check can prove, e.g., that the adversary's reversed gradient
arrives at the encoder). A batch is ``{"x": FloatTensor[B, G], "context":
LongTensor[B]}`` with context ``-1`` for cells whose label the model must not
see (the test cells of the split being evaluated).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


def mlp(sizes: list[int], *, final_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """``n_in → 512 → 64 → latent → 64 → 512 → n_in`` with MSE, as in the seed."""

    embedding_name = "AE"

    def __init__(self, n_in: int, *, hidden: tuple[int, ...] = (512, 64), latent: int = 16) -> None:
        super().__init__()
        self.latent = latent
        self.encoder = mlp([n_in, *hidden, latent])
        self.decoder = mlp([latent, *reversed(hidden), n_in])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation handed to probes (subclasses may return a sub-space)."""
        return self.encode(x)

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        z = self.encode(batch["x"])
        terms = {"recon": F.mse_loss(self.decoder(z), batch["x"])}
        terms.update(self.penalty_terms(z, batch["context"]))
        return terms

    def penalty_terms(self, z: torch.Tensor, context: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def term_targets(self, name: str) -> dict[str, list[nn.Parameter]]:
        if name == "recon":
            return {"encoder": list(self.encoder.parameters()), "decoder": list(self.decoder.parameters())}
        return {"encoder": list(self.encoder.parameters())}


def _labelled(z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keep = context >= 0
    return z[keep], context[keep]


class AdversarialAE(AutoEncoder):
    """Domain-adversarial AE: a chip classifier on z trained through gradient reversal."""

    embedding_name = "AE + adversary"

    def __init__(self, n_in: int, n_context: int, *, discriminator_hidden: int = 32, **kwargs) -> None:
        super().__init__(n_in, **kwargs)
        sizes = [self.latent, discriminator_hidden, n_context] if discriminator_hidden else [self.latent, n_context]
        self.discriminator = mlp(sizes)

    def penalty_terms(self, z, context):
        z_lab, c_lab = _labelled(z, context)
        if len(c_lab) == 0:
            return {"adversary": z.sum() * 0.0}
        logits = self.discriminator(reverse_gradient(z_lab))
        return {"adversary": F.cross_entropy(logits, c_lab)}

    def term_targets(self, name):
        if name == "adversary":
            return {"encoder": list(self.encoder.parameters()),
                    "discriminator": list(self.discriminator.parameters())}
        return super().term_targets(name)


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


class HSICAE(AutoEncoder):
    """AE whose z is pushed towards independence from the chip by an HSIC penalty."""

    embedding_name = "AE + HSIC"

    def __init__(self, n_in: int, n_context: int, **kwargs) -> None:
        super().__init__(n_in, **kwargs)
        self.n_context = n_context

    def penalty_terms(self, z, context):
        z_lab, c_lab = _labelled(z, context)
        if len(c_lab) < 4:
            return {"hsic": z.sum() * 0.0}
        return {"hsic": hsic(z_lab, c_lab, self.n_context)}


class MMDAE(AutoEncoder):
    """AE with an MMD penalty between the z distributions of different chips."""

    embedding_name = "AE + MMD"

    def __init__(self, n_in: int, n_context: int, **kwargs) -> None:
        super().__init__(n_in, **kwargs)

    def penalty_terms(self, z, context):
        z_lab, c_lab = _labelled(z, context)
        if len(torch.unique(c_lab)) < 2:
            return {"mmd": z.sum() * 0.0}
        return {"mmd": mmd(z_lab, c_lab)}


class SubspaceAE(AutoEncoder):
    """z = [z_ctx, z_bio]: chip predictable from z_ctx, and adversarially removed from z_bio.

    The decoder sees all of z, so chip-driven variance has a place to go
    (z_ctx) instead of being forced into the biological part.
    """

    embedding_name = "AE subspace (z_bio)"

    def __init__(self, n_in: int, n_context: int, *, context_dims: int = 2, discriminator_hidden: int = 32,
                 **kwargs) -> None:
        super().__init__(n_in, **kwargs)
        self.context_dims = context_dims
        self.context_head = nn.Linear(context_dims, n_context)
        n_bio = self.latent - context_dims
        sizes = [n_bio, discriminator_hidden, n_context] if discriminator_hidden else [n_bio, n_context]
        self.bio_adversary = mlp(sizes)

    def embed(self, x):
        return self.encode(x)[:, self.context_dims :]

    def penalty_terms(self, z, context):
        z_lab, c_lab = _labelled(z, context)
        if len(c_lab) == 0:
            zero = z.sum() * 0.0
            return {"context": zero, "adversary": zero}
        z_ctx, z_bio = z_lab[:, : self.context_dims], z_lab[:, self.context_dims :]
        return {
            "context": F.cross_entropy(self.context_head(z_ctx), c_lab),
            "adversary": F.cross_entropy(self.bio_adversary(reverse_gradient(z_bio)), c_lab),
        }

    def term_targets(self, name):
        encoder = list(self.encoder.parameters())
        if name == "context":
            return {"encoder": encoder, "context head": list(self.context_head.parameters())}
        if name == "adversary":
            return {"encoder": encoder, "adversary": list(self.bio_adversary.parameters())}
        return super().term_targets(name)


MITIGATIONS: dict[str, type[AutoEncoder]] = {
    "adversarial": AdversarialAE,
    "hsic": HSICAE,
    "mmd": MMDAE,
    "subspace": SubspaceAE,
}

PENALTY_TERMS: dict[str, tuple[str, ...]] = {
    "none": (),
    "adversarial": ("adversary",),
    "hsic": ("hsic",),
    "mmd": ("mmd",),
    "subspace": ("context", "adversary"),
}
