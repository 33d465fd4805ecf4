"""SFMN — sparse feature modulation network (seed 001), with its design verified in code.

``p(y=1 | x, c) = σ(MLP(φ(x) ⊙ g_c))``: a sequence encoder φ (fixed JASPAR PWM
scan or a small CNN) gives z ∈ R^d, a cell-line encoder ψ (explicit features
or attention pooling over a k=32 unlabelled support set) feeds a gate
generator g_c = f(ψ(c)) ∈ [0,1]^d, and the classifier only ever sees z ⊙ g_c
(or z ⊙ g_c + b_c for the FiLM variant).

``verify_design`` is the closed loop seed 000 asks for: it proves on a batch
that replacing the gate changes the logit, that g = 0 removes the sequence
from the prediction (so the modulation is multiplicative), that the
generated gate is not the identity, and that the gate generator's
parameters reach the logit. ``SFMNObjective.check_design`` (``latentlab.sfmn.losses``)
runs it at the start of every ``train.fit``; a model without a gate on its forward
path fails it.
"""

from __future__ import annotations

import math

import entmax
import torch
from torch import nn

from latentlab.train import ContractError

GATES = ("sigmoid", "sparsemax", "budget", "rescaled")
MODULATIONS = ("gate", "film")


# --------------------------------------------------------------------------- sequence encoders


class PWMEncoder(nn.Module):
    """z = softplus(a ⊙ s̃ + b): s̃ the standardised best JASPAR PWM match (both strands) per motif.

    The PWM bank is fixed, so the scan of each region is computed once by the
    data layer (``EpiData.scans``) and read from the batch; only the per-motif
    affine (a, b) is learned. z_i therefore literally is "strength of motif i"
    in the enhancer (first half) or promoter (second half).
    """

    kind = "pwm"

    def __init__(self, scan_mean: torch.Tensor, scan_sd: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", scan_mean.float())
        self.register_buffer("sd", scan_sd.float().clamp_min(1e-3))
        self.scale = nn.Parameter(torch.ones_like(self.mean))
        self.bias = nn.Parameter(torch.zeros_like(self.mean))
        self.dim = int(self.mean.numel())

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        s = torch.cat([inputs["scan_e"], inputs["scan_p"]], dim=-1)
        return nn.functional.softplus(self.scale * (s - self.mean) / self.sd + self.bias)


class CNNEncoder(nn.Module):
    """Learned convolutions (SPEID-style, small): one shared conv stack for enhancer and promoter."""

    kind = "cnn"

    def __init__(self, dim: int, filters: int = 32, kernel: int = 11) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"CNNEncoder: dim must be even (enhancer half + promoter half), got {dim}")
        self.net = nn.Sequential(
            nn.Conv1d(4, filters, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(filters, filters, 7, padding=3), nn.ReLU(), nn.AdaptiveMaxPool1d(1), nn.Flatten(),
        )
        self.head_e = nn.Linear(filters, dim // 2)
        self.head_p = nn.Linear(filters, dim // 2)
        self.dim = dim

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        e = self.head_e(self.net(inputs["seq_e"].float()))
        p = self.head_p(self.net(inputs["seq_p"].float()))
        return nn.functional.softplus(torch.cat([e, p], dim=-1))


# --------------------------------------------------------------------------- cell-line encoders


class FeatureCellEncoder(nn.Module):
    """ψ(c) = MLP(v_c) over an explicit cell line × feature table (continuous, so it extrapolates)."""

    mode = "features"

    def __init__(self, n_features: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.dim = hidden

    def forward(self, features: torch.Tensor, support_z: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(features)


class SupportCellEncoder(nn.Module):
    """ψ(c) = attention pooling over φ(x_i) of k cached support pairs of c (labels never used)."""

    mode = "support"

    def __init__(self, z_dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.key = nn.Linear(z_dim, hidden)
        self.value = nn.Linear(z_dim, hidden)
        self.query = nn.Parameter(torch.randn(hidden) / math.sqrt(hidden))
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden))
        self.dim = hidden

    def forward(self, features: torch.Tensor | None, support_z: torch.Tensor) -> torch.Tensor:
        # support_z: (K, k, d)
        scores = self.key(support_z) @ self.query / math.sqrt(self.dim)
        attn = torch.softmax(scores, dim=1)
        return self.out((attn.unsqueeze(-1) * self.value(support_z)).sum(dim=1))


# --------------------------------------------------------------------------- gate generator


class GateGenerator(nn.Module):
    """g_c = f(ψ(c)) ∈ [0,1]^d.

    - ``sigmoid``: σ(MLP) — in [0,1], dense unless pushed by the sparsity term.
    - ``sparsemax``: the seed's choice; lives on the simplex, Σg = 1, so z ⊙ g shrinks
      by ~1/d and the L1 penalty is constant (kept selectable to show it).
    - ``budget``: entmax's budget-sparsemax, 0 ≤ g ≤ 1 with Σg = ρ·d: sparse and not on the simplex,
      but Σg is fixed, so like sparsemax its L1 penalty is constant (the contract rejects β > 0).
    - ``rescaled``: min(1, d·ρ_c·sparsemax) with a per-cell-line ρ_c = σ(w·ψ(c)) — adaptive sparsity.
    """

    def __init__(self, in_dim: int, d: int, kind: str = "sigmoid", *, hidden: int = 64, budget: float = 0.3) -> None:
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {kind!r}")
        if not 0 < budget <= 1:
            raise ValueError(f"gate budget must be in (0, 1], got {budget}")
        self.kind, self.d, self.budget = kind, d, budget
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, d))
        if kind == "sigmoid":
            nn.init.constant_(self.mlp[-1].bias, 2.0)  # start near open (g ≈ 0.88): continuity with phase 1
        self.rho = nn.Linear(in_dim, 1) if kind == "rescaled" else None
        if self.rho is not None:
            nn.init.constant_(self.rho.bias, math.log(budget / (1 - budget + 1e-6) + 1e-6))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.mlp(h)
        if self.kind == "sigmoid":
            return torch.sigmoid(x)
        if self.kind == "sparsemax":
            return entmax.sparsemax(x, dim=-1)
        if self.kind == "budget":
            return entmax.budget_bisect(x, budget=max(self.budget * self.d, 1.01), dim=-1)
        rho = torch.sigmoid(self.rho(h))
        return torch.clamp(self.d * rho * entmax.sparsemax(x, dim=-1), max=1.0)


# --------------------------------------------------------------------------- shared pieces


def mlp_head(d: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class CellContext:
    """Per-cell-line inputs the model may use for any cell line, seen or unseen (never labels).

    ``features``: (C, m) explicit table; ``support``: encoder inputs of k pairs per
    cell line, each tensor shaped (C, k, ...).
    """

    def __init__(self, features: torch.Tensor | None = None, support: dict[str, torch.Tensor] | None = None) -> None:
        self.features = features
        self.support = support


# --------------------------------------------------------------------------- SFMN


class SFMN(nn.Module):
    """Sequence encoder → z; cell encoder → ψ(c); gate g_c; classifier on z ⊙ g_c (or z ⊙ g_c + b_c)."""

    name = "sfmn"

    def __init__(self, encoder: nn.Module, cell_encoder: nn.Module, *, gate: str = "sigmoid",
                 modulation: str = "gate", hidden: int = 64, budget: float = 0.3) -> None:
        super().__init__()
        if modulation not in MODULATIONS:
            raise ValueError(f"modulation must be one of {MODULATIONS}, got {modulation!r}")
        self.encoder, self.cell_encoder = encoder, cell_encoder
        d = encoder.dim
        self.gate = GateGenerator(cell_encoder.dim, d, gate, budget=budget)
        self.shift = nn.Linear(cell_encoder.dim, d) if modulation == "film" else None
        self.classifier = mlp_head(d, hidden)
        self.modulation = modulation
        self.gates_frozen = False
        self.context = CellContext()
        self.d = d

    # ----- context and gates
    def set_context(self, context: CellContext) -> None:
        if self.cell_encoder.mode == "features" and context.features is None:
            raise ValueError("SFMN with a feature cell encoder needs a cell line × feature table")
        if self.cell_encoder.mode == "support" and context.support is None:
            raise ValueError("SFMN with a support-set cell encoder needs support inputs for every cell line")
        self.context = context

    def freeze_gates(self, frozen: bool) -> None:
        """Curriculum phase 1: gates held at all-ones (the classifier learns on raw z first)."""
        self.gates_frozen = frozen

    def cell_embedding(self, cells: torch.Tensor) -> torch.Tensor:
        feats = self.context.features[cells] if self.context.features is not None else None
        support_z = None
        if self.cell_encoder.mode == "support":
            flat = {k: v[cells].flatten(0, 1) for k, v in self.context.support.items()}
            support_z = self.encoder(flat).view(len(cells), -1, self.d)
        return self.cell_encoder(feats, support_z)

    def gates(self, cells: torch.Tensor) -> torch.Tensor:
        """(K, d) gates of the given cell lines (ones while frozen)."""
        if self.gates_frozen:
            return torch.ones(len(cells), self.d, device=cells.device)
        return self.gate(self.cell_embedding(cells))

    def cell_v(self, cells: torch.Tensor) -> torch.Tensor:
        """v_c for the smoothness kernel: explicit features, else the (detached) support embedding."""
        if self.context.features is not None:
            return self.context.features[cells]
        return self.cell_embedding(cells).detach()

    # ----- forward
    def parts(self, batch: dict[str, torch.Tensor], gate_override: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z = self.encoder(batch)
        cells, inverse = torch.unique(batch["cell"], return_inverse=True)
        if gate_override is not None:
            g_cells = gate_override.expand(len(cells), self.d) if gate_override.dim() == 1 else gate_override
        else:
            g_cells = self.gates(cells)
        g = g_cells[inverse]
        h = z * g
        if self.shift is not None:
            h = h + self.shift(self.cell_embedding(cells))[inverse]
        return {"z": z, "cells": cells, "gates": g_cells, "h": h, "logits": self.classifier(h).squeeze(-1)}

    def forward(self, batch: dict[str, torch.Tensor], gate_override: torch.Tensor | None = None) -> torch.Tensor:
        return self.parts(batch, gate_override)["logits"]

    # ----- contract hooks
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {
            "sequence encoder": list(self.encoder.parameters()),
            "gate generator": list(self.gate.parameters()) + list(self.cell_encoder.parameters()),
            "classifier": list(self.classifier.parameters()),
        }
        if self.shift is not None:
            groups["film shift"] = list(self.shift.parameters())
        return groups


# --------------------------------------------------------------------------- the design check


def verify_design(model: nn.Module, batch: dict[str, torch.Tensor], *, atol: float = 1e-6) -> dict[str, float]:
    """Prove on ``batch`` that ``model`` is the designed SFMN: z ⊙ g_c is on the forward path.

    Raises ``ContractError`` naming what is missing. Returns the measured effects.
    """
    label = type(model).__name__
    if not hasattr(model, "gates") or not hasattr(model, "parameter_groups"):
        raise ContractError(f"{label} has no gate generator: the SFMN design needs g_c = f(ψ(c)) and z ⊙ g_c")
    frozen = getattr(model, "gates_frozen", False)
    model.gates_frozen = False
    try:
        with torch.no_grad():
            base = model(batch)
            d = model.d
            gen = torch.Generator().manual_seed(0)
            try:
                random_gate = model(batch, gate_override=torch.rand(d, generator=gen))
            except TypeError as exc:
                raise ContractError(f"{label}.forward takes no gate: no z ⊙ g on the forward path ({exc})") from exc
            ones = model(batch, gate_override=torch.ones(d))
            zero = model(batch, gate_override=torch.zeros(d))
        effects = {"replace_gate": float((random_gate - base).abs().max()),
                   "force_ones": float((ones - base).abs().max())}
        if effects["replace_gate"] <= atol:
            raise ContractError(
                f"{label}: replacing the gate changes no logit — there is no gate on the forward path "
                "(the model trained would not be the SFMN designed)")
        if effects["force_ones"] <= atol:
            raise ContractError(
                f"{label}: the generated gate acts as all ones — modulation z ⊙ g is the identity")
        cells = torch.unique(batch["cell"])
        seq_spread = _within_cell_spread(zero, batch["cell"], cells)
        effects["sequence_through_zero_gate"] = seq_spread
        if seq_spread > atol:
            raise ContractError(
                f"{label}: with g = 0 the logit still depends on the sequence (spread {seq_spread:.3g}) — "
                "the sequence reaches the classifier around the gate, so the modulation is not z ⊙ g")
        params = [p for p in model.parameter_groups()["gate generator"] if p.requires_grad]
        logits = model(batch)
        grads = torch.autograd.grad(logits.sum(), params, allow_unused=True)
        norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
        effects["gate_generator_grad"] = norm
        if not norm > 0:
            raise ContractError(f"{label}: the gate generator's parameters do not reach the logit")
        return effects
    finally:
        model.gates_frozen = frozen


def _within_cell_spread(logits: torch.Tensor, cell: torch.Tensor, cells: torch.Tensor) -> float:
    spread = 0.0
    for c in cells:
        vals = logits[cell == c]
        spread = max(spread, float(vals.max() - vals.min()))
    return spread
