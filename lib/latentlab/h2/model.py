"""Autoencoders for expression, plain and with the heads that context-removal penalties need.

Plain ``nn.Module``s: encoder, decoder and each mitigation's extra head (the chip
discriminator, the context head). What they are trained on — reconstruction and
each mitigation's penalty, and which parameters each term must reach — lives in
``latentlab.h2.losses`` (``AutoEncoderObjective`` is what ``train.fit`` trains).
"""

from __future__ import annotations

import torch
from torch import nn


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
    mitigation = "none"

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


class AdversarialAE(AutoEncoder):
    """Domain-adversarial AE: a chip classifier on z trained through gradient reversal."""

    embedding_name = "AE + adversary"
    mitigation = "adversarial"

    def __init__(self, n_in: int, n_context: int, *, discriminator_hidden: int = 32, **kwargs) -> None:
        super().__init__(n_in, **kwargs)
        sizes = [self.latent, discriminator_hidden, n_context] if discriminator_hidden else [self.latent, n_context]
        self.discriminator = mlp(sizes)


class HSICAE(AutoEncoder):
    """AE whose z is pushed towards independence from the chip by an HSIC penalty."""

    embedding_name = "AE + HSIC"
    mitigation = "hsic"

    def __init__(self, n_in: int, n_context: int, **kwargs) -> None:
        super().__init__(n_in, **kwargs)
        self.n_context = n_context


class MMDAE(AutoEncoder):
    """AE with an MMD penalty between the z distributions of different chips."""

    embedding_name = "AE + MMD"
    mitigation = "mmd"

    def __init__(self, n_in: int, n_context: int, **kwargs) -> None:
        super().__init__(n_in, **kwargs)


class SubspaceAE(AutoEncoder):
    """z = [z_ctx, z_bio]: chip predictable from z_ctx, and adversarially removed from z_bio.

    The decoder sees all of z, so chip-driven variance has a place to go
    (z_ctx) instead of being forced into the biological part.
    """

    embedding_name = "AE subspace (z_bio)"
    mitigation = "subspace"

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


MITIGATIONS: dict[str, type[AutoEncoder]] = {
    "adversarial": AdversarialAE,
    "hsic": HSICAE,
    "mmd": MMDAE,
    "subspace": SubspaceAE,
}
