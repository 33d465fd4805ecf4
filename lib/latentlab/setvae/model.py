"""Hierarchical SetVAE over per-time-step observation sets + causal transformer over time.

Per step t the set {(variable, value)} is encoded with inducing-point attention (ISAB) into
hierarchical latents z_t = (z_t^1..z_t^L): level 1 has a standard-normal prior, level l > 1 a prior
p(z^l | z^{l-1}); every posterior is a residual on its prior (mu_q = mu_p + dmu, logvar_q =
logvar_p + dlogvar, clipped) as in the SetVAE paper. A causal transformer turns the projected
latents Z into history H. The decoder reconstructs the values at step t from z_t and the history
before t (h_{t-1}) — the setting in which a strong history path can make z unnecessary (collapse).
A head pools H (attention ``w = softmax(Σ h⊙z)`` or mean) over steps ≤ t and predicts the outcome.

``future_leak`` (default 0) is the seed's "looser causal mask": step i may attend to steps
≤ i + future_leak. It is a label leak for any prediction made before the end of the stay and
exists only so the study can show that.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class SetVAEConfig:
    n_variables: int = 37
    d_model: int = 32
    n_inducing: int = 8
    n_heads: int = 2
    latent_dims: tuple = (8, 8)  # one entry per level
    n_layers: int = 2
    max_steps: int = 48
    hours: float = 48.0
    time_encoding: str = "learned"  # "learned" (Embedding + time MLP) or "rope"
    norm_first: bool = True  # pre-norm (True) or post-norm
    pooling: str = "attention"  # "attention" or "mean"
    decoder_input: str = "z+h"  # "z+h", "z" or "h" ("h" ignores z: a collapse control)
    future_leak: int = 0
    logvar_min: float = -6.0
    logvar_max: float = 2.0
    input_dropout: float = 0.1
    dropout: float = 0.1
    train_noise: float = 0.0
    tanh_outputs: bool = True

    def __post_init__(self) -> None:
        if self.time_encoding not in ("learned", "rope"):
            raise ValueError(f"time_encoding must be 'learned' or 'rope', got {self.time_encoding!r}")
        if self.pooling not in ("attention", "mean"):
            raise ValueError(f"pooling must be 'attention' or 'mean', got {self.pooling!r}")
        if self.decoder_input not in ("z+h", "z", "h"):
            raise ValueError(f"decoder_input must be 'z+h', 'z' or 'h', got {self.decoder_input!r}")
        if self.future_leak < 0:
            raise ValueError(f"future_leak must be >= 0, got {self.future_leak}")
        if self.d_model % self.n_heads or (self.time_encoding == "rope" and (self.d_model // self.n_heads) % 2):
            raise ValueError("d_model must split into n_heads heads of even size")


_KEEP_ALL = -(2**31)


def dropout_mask(shape: torch.Size | tuple, p: float, device: torch.device | None = None) -> torch.Tensor:
    """A float dropout mask (0 or 1/(1-p)) drawn from torch's generator, ~2-3x cheaper than ``bernoulli_``
    on the CPU: one 64-bit draw gives two 32-bit uniforms, each kept when it is at or above the
    threshold, so an element is dropped with probability round(p·2³²)/2³² (exact to 2e-10)."""
    n = math.prod(shape)
    bits = torch.randint(-(2**63), 2**63 - 1, ((n + 1) // 2,), dtype=torch.int64, device=device)
    keep = bits.view(torch.int32)[:n].view(shape) >= _KEEP_ALL + round(p * 2**32)
    return keep * (1.0 / (1.0 - p))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with ``dropout_mask`` (the same rule as ``F.dropout``, another random stream)."""
    if not training or p <= 0:
        return x
    if p >= 1:
        return torch.zeros_like(x)
    return x * dropout_mask(x.shape, p, x.device).to(x.dtype)


class Dropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask with ``dropout_mask`` (no state: state dicts are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def _ff(d: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), Dropout(dropout), nn.Linear(2 * d, d))


class PackedRows:
    """The valid elements of padded (S, K) sets as N rows.

    Row-wise layers (embeddings, LayerNorm, linear maps, feed-forward, dropout) run on the N valid
    elements only; attention, which needs each set's elements side by side, gets them scattered back
    into the padded (S, K) layout with zeros at the (masked) padding. Simulated PhysioNet sets are
    ~35 % full, so this skips ~2/3 of the work the padded layout did on elements no one reads.
    """

    def __init__(self, keep: torch.Tensor) -> None:
        self.shape = keep.shape
        self.index = keep.reshape(-1).nonzero().squeeze(1)
        self.n_sets = keep.shape[0]
        self.set_of = self.index // keep.shape[1]  # (N,) the set each valid element belongs to

    def rows(self, padded: torch.Tensor) -> torch.Tensor:
        """(S, K, ...) → (N, ...): the valid elements."""
        return padded.reshape(-1, *padded.shape[2:]).index_select(0, self.index)

    def padded(self, rows: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """(N, c) → (S, K, c), ``fill`` (zeros) at the padding."""
        out = rows.new_full((self.shape.numel(), rows.shape[-1]), fill)
        return out.index_copy(0, self.index, rows).view(*self.shape, rows.shape[-1])


class MAB(nn.Module):
    """Pre-norm multihead attention block: X + Att(LN X, LN Y); X + FF(LN X).

    Hand-rolled on ``scaled_dot_product_attention`` (nn.MultiheadAttention's per-call overhead
    dominated on thousands of tiny sets). ``x_rows``/``y_rows`` say that X/Y are the packed valid
    elements of padded sets (``PackedRows``): row-wise maps then run on those rows only.
    """

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.p = heads, dropout
        self.ln_q, self.ln_kv, self.ln_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.kv, self.o = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        self.ff = _ff(d, dropout)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(*t.shape[:-1], self.heads, t.shape[-1] // self.heads)

    def _shared_query_scores(self, query: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of the packed elements y (N, d) against shared queries (m, d), and their values: (N, h·m)
        and (N, d), with scores[n, j·m + i] = k[n, head j] · q[i, head j] / sqrt(dh).

        The query projection runs once (not once per set), and its heads form one block-diagonal (d, h·m)
        matrix B. The keys are never built: k·B = LN(y)·(W_k^T B) + b_k B, so the key map is folded into B
        — one (N, d) → (N, h·m) map instead of the (N, d) → (N, d) key map and its product with B (the same
        function; round-off differs at ~1e-7)."""
        q = self.q(self.ln_q(query))  # (m, d)
        d = q.shape[-1]
        dh = d // self.heads
        blocks = torch.block_diag(*self._heads(q).transpose(0, 1).transpose(1, 2)) * dh**-0.5  # (d, h·m)
        w_k, w_v = self.kv.weight.chunk(2, 0)
        b_k, b_v = self.kv.bias.chunk(2)
        ln_y = self.ln_kv(y)
        return F.linear(ln_y, blocks.T @ w_k, b_k @ blocks), F.linear(ln_y, w_v, b_v)

    def induce(self, query: torch.Tensor, y: torch.Tensor, rows: PackedRows) -> torch.Tensor:
        """Shared queries (m, d) — the inducing points, the same for every set — attend to each set's
        packed elements y (N, d): (S, m, d)."""
        scores, v = self._shared_query_scores(query, y)  # (N, h·m), (N, d)
        m, d = query.shape
        h, dh = self.heads, d // self.heads
        n_sets = rows.n_sets
        # softmax over each set's elements: -inf at the padding (every set has an element); over dim 1, so
        # the kernel runs along the h·m contiguous columns
        att = dropout(rows.padded(scores, -math.inf).softmax(1), self.p, self.training)  # (S, K, h·m)
        # the weighted sum per set as one batched product on the padded layout (zeros at the padding)
        att = att.view(n_sets, -1, h, m).permute(0, 2, 3, 1)  # (S, h, m, K)
        out = att @ rows.padded(v).view(n_sets, -1, h, dh).transpose(1, 2)  # (S, h, m, dh)
        x = query + self.o(out.transpose(1, 2).reshape(n_sets, m, d))
        return x + self.ff(self.ln_ff(x))

    def pool(self, seed: torch.Tensor, y: torch.Tensor, rows: PackedRows) -> torch.Tensor:
        """``induce`` for one shared query (the PMA seed, (1, d)): (S, 1, d). With one query per head the
        weighted sum of a set's values is a segment sum of the packed rows (``index_add``), not a batched
        product on the padded layout: no padded copy of the values, no per-set matrices. The scores, their
        softmax and the attention dropout are ``induce``'s (the same mask draw)."""
        scores, v = self._shared_query_scores(seed, y)  # (N, h), (N, d)
        d = seed.shape[-1]
        h, dh = self.heads, d // self.heads
        att = dropout(rows.padded(scores, -math.inf).softmax(1), self.p, self.training)  # (S, K, h)
        weighted = (v.view(-1, h, dh) * rows.rows(att)[..., None]).view(-1, d)  # (N, d): each row by its weight
        pooled = weighted.new_zeros(rows.n_sets, d).index_add(0, rows.set_of, weighted)  # Σ over each set
        x = seed + self.o(pooled[:, None])
        return x + self.ff(self.ln_ff(x))

    def broadcast(self, x: torch.Tensor, y: torch.Tensor, rows: PackedRows) -> torch.Tensor:
        """Packed elements x (N, d) each attend to their own set's m vectors y (S, m, d): (N, d)."""
        n_sets, d = rows.n_sets, x.shape[-1]
        h, dh = self.heads, d // self.heads
        q = rows.padded(self.q(self.ln_q(x))).view(n_sets, -1, h, dh).transpose(1, 2)  # (S, h, K, dh)
        k, v = (self._heads(t).transpose(1, 2) for t in self.kv(self.ln_kv(y)).chunk(2, -1))  # (S, h, m, dh)
        # (S, h, m, K) so the softmax over the m keys (none masked) runs along the contiguous K
        att = dropout(((k @ q.transpose(-1, -2)) * dh**-0.5).softmax(2), self.p, self.training)
        out = rows.rows((att.transpose(-1, -2) @ v).transpose(1, 2).reshape(n_sets, -1, d))  # (N, d)
        x = x + self.o(out)
        return x + self.ff(self.ln_ff(x))

    def forward(self, x: torch.Tensor, y: torch.Tensor, y_pad: torch.Tensor | None = None, *,
                x_rows: PackedRows | None = None, y_rows: PackedRows | None = None) -> torch.Tensor:
        """The padded-layout reference (``SetEncoder(packed=False)``): SDPA with a padding mask."""
        q = self.q(self.ln_q(x))
        kv = self.kv(self.ln_kv(y))
        if x_rows is not None:
            q = x_rows.padded(q)
        if y_rows is not None:
            kv = y_rows.padded(kv)
        b, n, d = q.shape
        m, h = kv.shape[1], self.heads
        q = q.view(b, n, h, d // h).transpose(1, 2)
        k, v = kv.view(b, m, 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = None if y_pad is None else ~y_pad[:, None, None, :]
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        att = att.transpose(1, 2).reshape(b, n, d)
        if x_rows is not None:
            att = x_rows.rows(att)
        x = x + self.o(att)
        return x + self.ff(self.ln_ff(x))


class ISAB(nn.Module):
    """Induced set attention (Lee et al. 2019): O(K·m) instead of O(K²) per set.

    ``x`` is (S, K, d) padded sets, or with ``rows`` the packed (N, d) valid elements.
    """

    def __init__(self, d: int, heads: int, m: int, dropout: float) -> None:
        super().__init__()
        self.inducing = nn.Parameter(torch.randn(1, m, d) * d**-0.5)
        self.mab_in, self.mab_out = MAB(d, heads, dropout), MAB(d, heads, dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor, rows: PackedRows | None = None) -> torch.Tensor:
        if rows is not None:
            return self.mab_out.broadcast(x, self.mab_in.induce(self.inducing[0], x, rows), rows)
        h = self.mab_in(self.inducing.expand(pad.shape[0], -1, -1), x, pad)
        return self.mab_out(x, h)


class PMA(nn.Module):
    """Pooling by multihead attention with one learned seed → a set summary."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.seed = nn.Parameter(torch.randn(1, 1, d) * d**-0.5)
        self.mab = MAB(d, heads, dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor, rows: PackedRows | None = None) -> torch.Tensor:
        if rows is not None:
            return self.mab.pool(self.seed[0], x, rows)[:, 0]
        return self.mab(self.seed.expand(pad.shape[0], -1, -1), x, pad)[:, 0]


@dataclasses.dataclass
class LevelPosterior:
    mu_q: torch.Tensor
    logvar_q: torch.Tensor
    mu_p: torch.Tensor
    logvar_p: torch.Tensor
    z: torch.Tensor


def gaussian_kl(mu_q: torch.Tensor, lv_q: torch.Tensor, mu_p: torch.Tensor, lv_p: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mu_q, e^lv_q) || N(mu_p, e^lv_p)) in nats (per latent dimension)."""
    return 0.5 * (lv_p - lv_q + (lv_q.exp() + (mu_q - mu_p) ** 2) / lv_p.exp() - 1.0)


class SetEncoder(nn.Module):
    """The SetVAE part: element embedding → ISAB per level → residual posteriors on per-level priors."""

    def __init__(self, cfg: SetVAEConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.var_emb = nn.Embedding(cfg.n_variables, d)
        self.val_mlp = nn.Sequential(nn.Linear(1, d), nn.GELU(), nn.Linear(d, d))
        self.val_dir = nn.Embedding(cfg.n_variables, d)  # variable-specific value direction (value × e_v)
        self.elem_norm = nn.LayerNorm(d)
        self.input_dropout = Dropout(cfg.input_dropout)
        self.isabs = nn.ModuleList(ISAB(d, cfg.n_heads, cfg.n_inducing, cfg.dropout) for _ in cfg.latent_dims)
        self.pools = nn.ModuleList(PMA(d, cfg.n_heads, cfg.dropout) for _ in cfg.latent_dims)
        self.priors = nn.ModuleList(
            nn.Linear(prev, 2 * dz) for prev, dz in zip(cfg.latent_dims[:-1], cfg.latent_dims[1:], strict=True)
        )
        self.posteriors = nn.ModuleList(
            nn.Sequential(nn.Linear(d + (cfg.latent_dims[i - 1] if i else 0), d), nn.LayerNorm(d), nn.GELU(),
                          nn.Linear(d, 2 * dz))
            for i, dz in enumerate(cfg.latent_dims)
        )
        for head in self.posteriors:  # residual starts O(1) away from the prior: free bits start "open"
            nn.init.normal_(head[-1].weight, std=1.0 / math.sqrt(d))
            nn.init.zeros_(head[-1].bias)

    def embed(self, var: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        x = val.unsqueeze(-1)
        if self.training and self.cfg.train_noise > 0:
            x = x + self.cfg.train_noise * torch.randn_like(x)
        e = self.elem_norm(self.var_emb(var) + self.val_mlp(x) + x * self.val_dir(var))
        return self.input_dropout(e)

    def forward(self, var: torch.Tensor, val: torch.Tensor, pad: torch.Tensor, sample: bool, *,
                packed: bool = True) -> list[LevelPosterior]:
        """var/val/pad: (S, K) for S non-empty sets; returns one LevelPosterior per level.

        The elements travel as packed valid rows (``PackedRows``): padding never enters a layer.
        ``packed=False`` runs every layer on the padded (S, K) layout instead — the same numbers,
        kept as the reference ``benchmarks/setvae.py`` times against."""
        rows = PackedRows(~pad) if packed else None
        h = self.embed(rows.rows(var), rows.rows(val)) if rows is not None else self.embed(var, val)
        levels: list[LevelPosterior] = []
        z_prev = None
        for i, (isab, pool, post) in enumerate(zip(self.isabs, self.pools, self.posteriors, strict=True)):
            h = isab(h, pad, rows)
            summary = pool(h, pad, rows)
            if z_prev is None:
                mu_p = torch.zeros(summary.shape[0], self.cfg.latent_dims[0], device=summary.device)
                lv_p = torch.zeros_like(mu_p)
                delta = post(summary)
            else:
                mu_p, lv_p = self.priors[i - 1](z_prev).chunk(2, -1)
                lv_p = lv_p.clamp(self.cfg.logvar_min, self.cfg.logvar_max)
                delta = post(torch.cat([summary, z_prev], -1))
            d_mu, d_lv = delta.chunk(2, -1)
            mu_q = mu_p + d_mu
            lv_q = (lv_p + d_lv).clamp(self.cfg.logvar_min, self.cfg.logvar_max)
            z = mu_q + torch.randn_like(mu_q) * (0.5 * lv_q).exp() if sample else mu_q
            levels.append(LevelPosterior(mu_q, lv_q, mu_p, lv_p, z))
            z_prev = z
        return levels


def causal_mask(t: int, future_leak: int = 0, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (t, t) mask, True = blocked: step i sees steps j <= i + future_leak."""
    i = torch.arange(t, device=device)
    return i[None, :] > i[:, None] + future_leak


def rope(x: torch.Tensor, times: torch.Tensor, base: float = 48.0) -> torch.Tensor:
    """Rotary encoding of (B, H, T, Dh) by continuous time in hours (periods from ~1 h to ~base h)."""
    half = x.shape[-1] // 2
    freqs = 2 * math.pi / (base ** (torch.arange(half, device=x.device) / max(half - 1, 1)))
    ang = times[:, None, :, None] * freqs
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class TimeBlock(nn.Module):
    """One transformer layer over time: pre- or post-norm, GELU, explicit causal (or leaky) mask."""

    def __init__(self, cfg: SetVAEConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.cfg, self.heads = cfg, cfg.n_heads
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff, self.drop = _ff(d, cfg.dropout), Dropout(cfg.dropout)

    def attend(self, x: torch.Tensor, times: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.cfg.time_encoding == "rope":
            q, k = rope(q, times, self.cfg.hours), rope(k, times, self.cfg.hours)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(blocked[:, None], float("-inf"))
        att = torch.nan_to_num(scores.softmax(-1), nan=0.0)  # a padded row that sees nothing
        return self.out((self.drop(att) @ v).transpose(1, 2).reshape(b, t, d))

    def forward(self, x: torch.Tensor, times: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        if self.cfg.norm_first:
            x = x + self.drop(self.attend(self.ln1(x), times, blocked))
            return x + self.drop(self.ff(self.ln2(x)))
        x = self.ln1(x + self.drop(self.attend(x, times, blocked)))
        return self.ln2(x + self.drop(self.ff(x)))


class HierarchicalSetVAE(nn.Module):
    """SetVAE encoder per step + causal transformer + set decoder + outcome head.

    ``forward(batch)`` returns a dict with per-level posteriors (over valid steps), projected Z and
    history H (B, T, d), reconstructions and per-step logits. Losses live in ``latentlab.setvae.losses``.
    """

    def __init__(self, cfg: SetVAEConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.setvae = SetEncoder(cfg)
        self.z_proj = nn.Sequential(nn.Linear(sum(cfg.latent_dims), d), nn.LayerNorm(d))
        self.pos_emb = nn.Embedding(cfg.max_steps, d)
        self.time_encoder = nn.Sequential(nn.Linear(1, max(d // 4, 1)), nn.ReLU(), nn.Linear(max(d // 4, 1), d), nn.Tanh())
        self.transformer = nn.ModuleList(TimeBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.start = nn.Parameter(torch.zeros(d))
        dec_in = {"z+h": 2 * d, "z": d, "h": d}[cfg.decoder_input]
        self.decoder = nn.Sequential(nn.Linear(dec_in, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.dec_var = nn.Embedding(cfg.n_variables, d)
        self.dec_bias = nn.Embedding(cfg.n_variables, 1)
        nn.init.zeros_(self.dec_bias.weight)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), Dropout(cfg.dropout), nn.Linear(d, 1))

    # -- pieces -------------------------------------------------------------------------------

    def encode_sets(self, batch: dict, sample: bool) -> tuple[list[LevelPosterior], torch.Tensor]:
        """Posteriors for the valid steps only (empty padded steps never enter attention)."""
        valid = batch["step_mask"]
        var, val, elem = batch["var"][valid], batch["val"][valid], batch["elem_mask"][valid]
        levels = self.setvae(var, val, ~elem, sample)
        z_flat = torch.cat([lv.z for lv in levels], -1)
        zp = self.z_proj(z_flat)
        if self.cfg.tanh_outputs:
            zp = torch.tanh(zp)
        z_seq = torch.zeros(*valid.shape, zp.shape[-1], dtype=zp.dtype, device=zp.device)
        z_seq = z_seq.masked_scatter(valid.unsqueeze(-1), zp)
        return levels, z_seq

    def history(self, z_seq: torch.Tensor, times: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b, t, _ = z_seq.shape
        x = z_seq
        if self.cfg.time_encoding == "learned":
            steps = torch.arange(t, device=z_seq.device)
            x = x + self.pos_emb(steps)[None] + self.time_encoder((times / self.cfg.hours).unsqueeze(-1))
        blocked = causal_mask(t, self.cfg.future_leak, z_seq.device)[None] | ~valid[:, None, :]
        for block in self.transformer:
            x = block(x, times, blocked)
        return self.final_norm(x) * valid.unsqueeze(-1)

    def step_logits(self, h: torch.Tensor, z_seq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Logit at every step t from H pooled over steps <= t (attention or mean pooling)."""
        t = h.shape[1]
        allowed = ~causal_mask(t, 0, h.device)[None] & valid[:, None, :]
        if self.cfg.pooling == "attention":
            score = (h * z_seq).sum(-1)
            logits = score[:, None, :].expand(-1, t, -1).masked_fill(~allowed, float("-inf"))
            w = torch.nan_to_num(logits.softmax(-1), nan=0.0)
        else:
            w = allowed.float() / allowed.float().sum(-1, keepdim=True).clamp_min(1)
        rep = w @ h
        return self.head(rep).squeeze(-1)

    def reconstruct(self, z_seq: torch.Tensor, h: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """Value at each element of step t from z_t and/or h_{t-1} (strictly the past), per variable."""
        h_prev = torch.cat([self.start.expand(h.shape[0], 1, -1), h[:, :-1]], 1)
        ctx = {"z+h": torch.cat([z_seq, h_prev], -1), "z": z_seq, "h": h_prev}[self.cfg.decoder_input]
        code = self.decoder(ctx)  # (B, T, d): one code per step, read per variable bilinearly
        # code · e_var for every variable at once, then each element's own: no (B, T, K, d) product
        per_var = code @ self.dec_var.weight.T  # (B, T, n_variables)
        return per_var.gather(2, var) * self.cfg.d_model**-0.5 + self.dec_bias(var).squeeze(-1)

    def forward(self, batch: dict, sample: bool | None = None) -> dict:
        sample = self.training if sample is None else sample
        valid = batch["step_mask"]
        levels, z_seq = self.encode_sets(batch, sample)
        h = self.history(z_seq, batch["times"], valid)
        logits = self.step_logits(h, z_seq, valid)
        last = valid.long().sum(1).clamp_min(1) - 1
        return {
            "levels": levels, "z": z_seq, "h": h, "recon": self.reconstruct(z_seq, h, batch["var"]),
            "step_logits": logits, "logit": logits.gather(1, last[:, None]).squeeze(1),
        }

    # -- parameter groups (per-module learning rates, staged training) --------------------------

    def module_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {
            "setvae": list(self.setvae.parameters()) + list(self.z_proj.parameters()),
            "transformer": list(self.transformer.parameters()) + list(self.pos_emb.parameters())
            + list(self.time_encoder.parameters()) + list(self.final_norm.parameters()) + [self.start],
            "head": list(self.head.parameters()) + list(self.decoder.parameters()) + list(self.dec_var.parameters())
            + list(self.dec_bias.parameters()),
        }
        n_grouped = sum(p.numel() for ps in groups.values() for p in ps)
        assert n_grouped == sum(p.numel() for p in self.parameters()), "a parameter is in no module group"
        return groups
