"""Baselines for SFMN behind one interface (DomainBed-style): ERM, DANN and the energy model.

All share SFMN's interface — ``forward(batch, gate_override=None) -> logits``,
``gates(cells)`` (``None``: no gate), ``set_context``, ``parameter_groups`` —
so the study trains and evaluates them with the same code on identical splits
(their loss terms are ``latentlab.sfmn.losses``'). None of them has a gate:
``gate_override`` is accepted and ignored, which is exactly what
``latentlab.sfmn.model.verify_design`` detects when one of them is trained
under SFMN's name.

- ``ERM``: classifier on z, no cell-line information.
- ``DANN``: ERM + a cell-line discriminator on z through gradient reversal.
- ``EnergyModel``: what seed 000 says the last attempt actually trained,
  σ((U_I(z) − R_E(c))/T) with a discrete cell-line embedding R_E and a
  gradient-reversal domain discriminator. R_E of an unseen cell line is the
  mean of the trained rows (an ID embedding has nothing else to offer).
"""

from __future__ import annotations

import torch
from torch import nn

from latentlab.sfmn.model import CellContext, mlp_head


class Baseline(nn.Module):
    """Shared plumbing: sequence encoder, no gate (the task loss is the objective's)."""

    name = "baseline"

    def __init__(self, encoder: nn.Module, *, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = encoder
        self.d = encoder.dim
        self.context = CellContext()
        self.gates_frozen = False

    def set_context(self, context: CellContext) -> None:
        self.context = context

    def freeze_gates(self, frozen: bool) -> None:
        """No gate to freeze; kept so the curriculum code is shared."""

    def gates(self, cells: torch.Tensor) -> None:
        return None

    def logits(self, batch: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor], gate_override: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits(batch, self.encoder(batch))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"sequence encoder": list(self.encoder.parameters()),
                "gate generator": [],
                "head": [p for n, p in self.named_parameters() if not n.startswith(("encoder.", "disc."))]}


class ERM(Baseline):
    """Empirical risk minimisation on z: no gate, no cell line."""

    name = "erm"

    def __init__(self, encoder: nn.Module, *, hidden: int = 64) -> None:
        super().__init__(encoder, hidden=hidden)
        self.classifier = mlp_head(self.d, hidden)

    def logits(self, batch, z):
        return self.classifier(z).squeeze(-1)


class _Adversarial(Baseline):
    """Adds a cell-line discriminator on z (trained through gradient reversal: the ``domain`` term)."""

    def __init__(self, encoder: nn.Module, n_cells: int, *, hidden: int = 64) -> None:
        super().__init__(encoder, hidden=hidden)
        self.disc = nn.Sequential(nn.Linear(self.d, hidden), nn.ReLU(), nn.Linear(hidden, n_cells))


class DANN(_Adversarial):
    name = "dann"

    def __init__(self, encoder: nn.Module, n_cells: int, *, hidden: int = 64) -> None:
        super().__init__(encoder, n_cells, hidden=hidden)
        self.classifier = mlp_head(self.d, hidden)

    def logits(self, batch, z):
        return self.classifier(z).squeeze(-1)


class EnergyModel(_Adversarial):
    """σ((U_I(z) − R_E(c))/T): a scalar per-cell-line energy subtracted from a sequence score."""

    name = "energy"

    def __init__(self, encoder: nn.Module, n_cells: int, *, hidden: int = 64,
                 temperature: float = 1.0) -> None:
        super().__init__(encoder, n_cells, hidden=hidden)
        self.u_i = mlp_head(self.d, hidden)
        self.r_e = nn.Embedding(n_cells, 1)
        nn.init.zeros_(self.r_e.weight)
        self.log_t = nn.Parameter(torch.tensor(float(temperature)).log())
        self.register_buffer("known", torch.ones(n_cells, dtype=torch.bool))

    def set_training_cells(self, cells: list[int]) -> None:
        """Cell lines whose ID embedding is trained; the others get the mean of these."""
        self.known.zero_()
        self.known[torch.as_tensor(cells, dtype=torch.long)] = True

    def logits(self, batch, z):
        table = self.r_e.weight.squeeze(-1)
        mean = table[self.known].mean()
        r = torch.where(self.known[batch["cell"]], table[batch["cell"]], mean)
        return ((self.u_i(z).squeeze(-1) - r) / self.log_t.exp())
