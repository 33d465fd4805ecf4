"""BERT + RAG genotype imputer, laid out as the seed traces it (seed 002, ``foundation_model.py``).

Per window of L sites and per haplotype: allele tokens (0, 1, MASK) are embedded
(``hap_k_before``), ``emb_fusion`` adds position and panel allele frequency, a
transformer encodes the sequence; the k reference haplotypes retrieved for that
haplotype are embedded by ``encode_rag_segments`` and ``rag_fusion`` cross-attends to
them at each site (``hap_k_after``). Heads give per-haplotype allele logits and a
4-class phased-genotype logit (class = 2·h1 + h2).

Retrieval hands the model, per retrieved haplotype and site, how far its exact match
with the query on typed markers reaches to the left and to the right (``rag_match``,
log-scaled to [0, 1]). With ``use_match`` the model reads them three ways: in each
segment's embedding, as an additive bias on the cross-attention logits (per head), and
as a learned match-weighted ALT share fed into the fused representation (the seed's
``af_p`` argument). Without it the model is the seed's, reading only one distance per
segment.

``forward`` returns the seed's seven outputs, in the seed's order.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

MASK = 2


@dataclasses.dataclass(frozen=True)
class ImputerConfig:
    window: int = 64
    k: int = 8
    d_model: int = 32
    depth: int = 8  # the seed's 8 layers; a parameter for CPU budgets
    heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.0
    use_match: bool = True  # read the per-site match extents (False: the seed's per-segment distance only)
    use_copying: bool = False  # read the Li–Stephens copying posterior P(ALT) per site (``recon.copying``)


@dataclasses.dataclass(frozen=True)
class WindowGroups:
    """Which rows of a batch are haplotypes of the same window (identical ``pos`` and ``af`` rows).

    ``first`` [U] one row per distinct window, ``inverse`` [B] each row's entry in ``first``.
    What depends only on position and AF is then computed U times instead of B (at prediction
    a 64-window batch holds one or two windows: U ≈ 1–2 against B = 128 haplotypes).
    """

    first: torch.Tensor
    inverse: torch.Tensor

    @classmethod
    def of(cls, window_id: torch.Tensor) -> WindowGroups:
        """Groups from each row's window id [B]."""
        return cls._from_unique(*torch.unique(window_id, return_inverse=True), len(window_id))

    @classmethod
    def of_rows(cls, key: torch.Tensor) -> WindowGroups:
        """Groups of identical rows of ``key`` [B, C]."""
        return cls._from_unique(*torch.unique(key, dim=0, return_inverse=True), len(key))

    @classmethod
    def _from_unique(cls, ids: torch.Tensor, inverse: torch.Tensor, n_rows: int) -> WindowGroups:
        first = torch.full((len(ids),), n_rows, dtype=torch.long, device=inverse.device)
        first.scatter_reduce_(0, inverse, torch.arange(n_rows, device=inverse.device), "amin")
        return cls(first, inverse)

    def twice(self) -> WindowGroups:
        """The groups of the batch stacked on itself (hap_1 rows, then hap_2 rows)."""
        return WindowGroups(self.first, torch.cat([self.inverse, self.inverse]))

    def pick(self, *rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(r[self.first] for r in rows)

    def spread(self, per_window: torch.Tensor) -> torch.Tensor:
        return per_window[self.inverse]


class EmbFusion(nn.Module):
    """Token embedding + position (site index and relative bp) + AF, as ``emb_fusion(h, pos, af)``."""

    def __init__(self, cfg: ImputerConfig):
        super().__init__()
        self.site = nn.Embedding(cfg.window, cfg.d_model)
        self.pos = nn.Linear(1, cfg.d_model)
        self.af = nn.Sequential(nn.Linear(2, cfg.d_model), nn.GELU(), nn.Linear(cfg.d_model, cfg.d_model))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, h: torch.Tensor, pos: torch.Tensor, af: torch.Tensor,
                groups: WindowGroups | None = None) -> torch.Tensor:
        """``norm(h + site + pos + AF)``; with ``groups`` the last three once per distinct window (same values)."""
        if groups is None:
            return self.norm(h + self.extra(pos, af))
        return self.norm(h + groups.spread(self.extra(*groups.pick(pos, af))))

    def extra(self, pos: torch.Tensor, af: torch.Tensor) -> torch.Tensor:
        """What position and allele frequency add to a token [B, L, D]: the same for every haplotype of a window."""
        index = torch.arange(pos.shape[-1], device=pos.device)
        maf = torch.minimum(af, 1 - af)
        return self.site(index) + self.pos(pos.unsqueeze(-1)) + self.af(torch.stack([af, maf], dim=-1))


def match_features(match: torch.Tensor) -> torch.Tensor:
    """[..., 2] left/right extents → [..., 3]: left, right and the shorter side (what limits the match)."""
    return torch.cat([match, match.min(dim=-1, keepdim=True).values], dim=-1)


def copying_logit(p: torch.Tensor) -> torch.Tensor:
    """log(p / (1 − p)) of the copying posterior, bounded at ±9.2 (p within 1e-4 of 0 or 1)."""
    return torch.logit(p.float(), eps=1e-4)


def copying_features(p: torch.Tensor) -> torch.Tensor:
    """[..., L] copying P(ALT) → [..., L, 2]: the probability and its logit scaled to about ±1."""
    return torch.stack([p.float(), copying_logit(p) / 9.2], dim=-1)


class MatchVote(nn.Module):
    """P(ALT) at each site as a softmax-over-k vote whose weights are a learned function of match extents."""

    def __init__(self, cfg: ImputerConfig):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(3, 16), nn.GELU(), nn.Linear(16, 1))

    def forward(self, rag: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
        w = self.score(match_features(match)).squeeze(-1).softmax(dim=1)  # [B, k, L]
        return (w * rag.float()).sum(dim=1)


class RagFusion(nn.Module):
    """Per-site cross-attention from a haplotype to its k retrieved segments, plus the local ALT share.

    Multi-head attention written as elementwise products over [B, k, L, heads] (the k segments
    at the same site are the only keys), several times faster on CPU than running
    ``nn.MultiheadAttention`` on B·L sequences of one query each. ``bias`` [B, k, L, heads]
    (optional) is added to the logits: how long a segment matches the query around a site
    decides how much the site listens to it.
    """

    def __init__(self, cfg: ImputerConfig):
        super().__init__()
        self.heads = cfg.heads
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.af_p = nn.Linear(2, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.ff_mult * cfg.d_model), nn.GELU(),
                                nn.Linear(cfg.ff_mult * cfg.d_model, cfg.d_model))
        self.norm2 = nn.LayerNorm(cfg.d_model)

    def forward(self, h: torch.Tensor, rag_h: torch.Tensor, af: torch.Tensor, af_p: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        b, length, d = h.shape
        k, heads = rag_h.shape[1], self.heads
        q = self.q(h).view(b, length, heads, d // heads)
        key, value = self.kv(rag_h).view(b, k, length, 2, heads, d // heads).unbind(dim=3)
        logits = (q.unsqueeze(1) * key).sum(dim=-1) / math.sqrt(d // heads)  # [B, k, L, H]
        if bias is not None:
            logits = logits + bias
        att = (logits.softmax(dim=1).unsqueeze(-1) * value).sum(dim=1).reshape(b, length, d)
        return self.finish(h, att, af, af_p)

    def finish(self, h: torch.Tensor, att: torch.Tensor, af: torch.Tensor, af_p: torch.Tensor) -> torch.Tensor:
        """Everything after the attention: output projection, ALT share, norms and feed-forward."""
        fused = self.norm(h + self.out(att) + self.af_p(torch.stack([af, af_p], dim=-1)))
        return self.norm2(fused + self.ff(fused))

    def attend_factored(self, h: torch.Tensor, seg: SegmentEncoder, rag: torch.Tensor, pos: torch.Tensor,
                        af: torch.Tensor, dist: torch.Tensor, match: torch.Tensor | None,
                        match_bias: nn.Linear | None, af_p: torch.Tensor,
                        groups: WindowGroups | None = None) -> torch.Tensor:
        """``forward(h, seg(rag, pos, af, dist, match), af, af_p, match_bias(...))`` without the [B, k, L, D] tensors.

        A segment's embedding is linear in a handful of scalars per (segment, site): its allele,
        its retrieval distance and its three match features — ``rag_h = c[b, l] + Σ_j f_j · u_j``
        with ``c`` the same for all k segments. So a key is ``Wk·c + Σ_j f_j · Wk·u_j``: the query
        meets each direction once per site (``G = q · Wk u_j``), the part common to the k segments
        cancels in the softmax over k, and the logits are ``f · G`` (J = 2 or 5 numbers per
        segment instead of D). The attention-weighted value is ``Wv·c + bv + Σ_j f̄_j · Wv u_j``
        with ``f̄`` the attention-weighted mean of the scalars. Same function and parameters as
        the plain path (``tests/test_recon_fastpaths.py``); the per-(segment, site) work drops
        from ~10 passes over D = 32 floats to a few over J·heads. The common part ``Wv·c`` depends
        only on position and AF: with ``groups`` it is computed once per distinct window.
        """
        b, length, d = h.shape
        k, heads = rag.shape[1], self.heads
        dh = d // heads
        a0, a1 = seg.allele.weight
        feats = [rag.to(h.dtype), dist.unsqueeze(-1).expand(b, k, length)]  # rag may arrive as int8
        dirs = [a1 - a0, seg.dist.weight[:, 0]]
        base = a0 + seg.dist.bias
        if seg.match is not None and match is not None:
            feats += list(match_features(match).unbind(dim=-1))
            dirs += list(seg.match.weight.unbind(dim=1))
            base = base + seg.match.bias
        f = torch.stack(feats, dim=-1).transpose(1, 2)  # [B, L, k, J]
        u = torch.stack(dirs, dim=-1)  # [D, J]
        w_pos, w_af = (pos, af) if groups is None else groups.pick(pos, af)
        shared = seg.fusion(torch.zeros(*w_pos.shape, d, device=h.device, dtype=h.dtype), w_pos, w_af)  # [B or U, L, D]
        wk, wv = self.kv.weight[:d], self.kv.weight[d:]
        wku, wvu = (wk @ u).view(heads, dh, -1), (wv @ u).view(heads, dh, -1)  # [H, dh, J]
        q = self.q(h).view(b, length, heads, dh)
        g = torch.einsum("blhe,hej->bljh", q, wku) / math.sqrt(dh)  # [B, L, J, H]
        if match_bias is not None and match is not None:
            g = g + torch.cat([torch.zeros(2, heads, device=h.device, dtype=h.dtype), match_bias.weight.T], dim=0)
        p = (f @ g).softmax(dim=2)  # [B, L, k, H]: one small matmul per site (measured faster than k last)
        fbar = p.transpose(-1, -2) @ f  # [B, L, H, J]
        value = nn.functional.linear(shared + base, wv, self.kv.bias[d:])
        value = (value if groups is None else groups.spread(value)).view(b, length, heads, dh)
        att = (value + torch.einsum("blhj,hej->blhe", fbar, wvu)).reshape(b, length, d)
        return self.finish(h, att, af, af_p)


class SegmentEncoder(nn.Module):
    """Embeds retrieved panel segments: allele, site position and AF, retrieval distance, per-site match extents.

    Everything that is the same for the k segments (site, position, AF) is computed once per
    window and broadcast; the sum feeds the cross-attention's key/value projection directly
    (no normalisation over the [B, k, L, D] tensor — on CPU each such pass costs as much as
    the transformer).
    """

    def __init__(self, cfg: ImputerConfig):
        super().__init__()
        self.allele = nn.Embedding(2, cfg.d_model)
        self.fusion = EmbFusion(cfg)
        self.dist = nn.Linear(1, cfg.d_model)
        self.match = nn.Linear(3, cfg.d_model) if cfg.use_match else None

    def forward(self, seg: torch.Tensor, pos: torch.Tensor, af: torch.Tensor, dist: torch.Tensor,
                match: torch.Tensor | None = None) -> torch.Tensor:
        shared = self.fusion(torch.zeros(*seg.shape[::2], self.allele.embedding_dim, device=seg.device), pos, af)
        out = self.allele(seg.long()) + (shared.unsqueeze(1) + self.dist(dist.unsqueeze(-1)).unsqueeze(2))  # [B, k, L, D]
        if self.match is not None and match is not None:
            out = out + self.match(match_features(match))
        return out


class BertRagImputer(nn.Module):
    """The seed's FoundationModel: BERT over each haplotype, RAG fusion, three heads."""

    def __init__(self, cfg: ImputerConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(3, cfg.d_model)  # 0, 1, MASK
        self.emb_fusion = EmbFusion(cfg)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.ff_mult * cfg.d_model, cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.transformer_blocks = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.segment_encoder = SegmentEncoder(cfg)
        self.rag_fusion = RagFusion(cfg)
        self.match_bias = nn.Linear(3, cfg.heads) if cfg.use_match else None
        self.match_vote = MatchVote(cfg) if cfg.use_match else None
        self.hap_head = nn.Linear(cfg.d_model, 2)
        if cfg.use_copying:  # the copying model's P(ALT): an input to every site, and a residual on the allele logit
            self.copying_in = nn.Linear(2, cfg.d_model)
            self.copying_skip = nn.Parameter(torch.ones(()))
            # a near-silent allele head: the untrained imputer predicts what the copying model does, and training
            # moves it only where retrieval and context give it a reason (a default head starts from noise added to
            # a near-Beagle-quality input). Not exactly zero: then no term would reach the transformer on the first
            # step, and train.fit's contract rightly refuses such a model.
            with torch.no_grad():
                self.hap_head.weight.mul_(0.01)
                self.hap_head.bias.zero_()
        self.gt_head = nn.Sequential(nn.Linear(2 * cfg.d_model, cfg.d_model), nn.GELU(), nn.Linear(cfg.d_model, 4))
        # True: the RAG path as first written, over [B, k, L, D] segment embeddings (the reference the
        # factored path is tested against); False (default): RagFusion.attend_factored, the same function
        self.plain_rag = False

    def embed_alleles(self, tokens: torch.Tensor) -> torch.Tensor:
        """The initial embedding (``hap_before``); also arm D's target when given the true alleles."""
        return self.embedding(tokens)

    def encode(self, tokens, pos, af, rag, rag_dist, rag_match=None, groups: WindowGroups | None = None,
               copying=None):
        """(hap_before, hap_after); ``groups`` (optional) marks rows of one window, whose pos/AF work is shared.

        With ``groups`` outside training, the transformer runs once per *distinct* (window, tokens)
        row: a target's tokens in a window are its alleles at the few typed sites (MASK elsewhere),
        so haplotypes carrying the same typed alleles have the same input and the same encoding
        (on the hard panel ~1.6 typed sites per 64-site window: ≤ 4 distinct rows per window).
        """
        if groups is not None and not self.training:
            before, h = self._encode_distinct(tokens, pos, af, groups)
        else:
            before = self.embed_alleles(tokens)
            h = self.transformer_blocks(self.emb_fusion(before, pos, af, groups))
        if copying is not None:
            h = h + self.copying_in(copying_features(copying))
        use = self.cfg.use_match
        # match-weighted ALT share of the retrieved segments; without match extents the plain share, as the seed
        af_p = self.match_vote(rag, rag_match) if use else rag.float().mean(dim=1)
        if not self.plain_rag:
            return before, self.rag_fusion.attend_factored(h, self.segment_encoder, rag, pos, af, rag_dist,
                                                           rag_match if use else None, self.match_bias, af_p, groups)
        rag_h = self.segment_encoder(rag, pos, af, rag_dist, rag_match if use else None)
        bias = self.match_bias(match_features(rag_match)) if use else None
        return before, self.rag_fusion(h, rag_h, af, af_p, bias)

    def _encode_distinct(self, tokens: torch.Tensor, pos: torch.Tensor, af: torch.Tensor,
                         groups: WindowGroups) -> tuple[torch.Tensor, torch.Tensor]:
        """(hap_before, transformer output) [B, L, D] computed on the distinct (window, tokens) rows and spread back."""
        key = torch.cat([groups.inverse.unsqueeze(1), tokens], dim=1)  # same window and same tokens = same input
        distinct = WindowGroups.of_rows(key)
        rows = distinct.first
        before = self.embed_alleles(tokens[rows])
        h = self.transformer_blocks(self.emb_fusion(before, pos[rows], af[rows]))
        return distinct.spread(before), distinct.spread(h)

    def forward(self, x: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Both haplotypes go through ``encode`` as one batch of 2·B (same weights, same math as two calls).

        On CPU at these sizes the cost is per operation, not per element (measured: the two-call
        version spent most of each step in op overhead), so one call of 2·B nearly halves a step.
        """
        before, after = self.encode_both(x)
        h1_before, h2_before = before.chunk(2, dim=0)
        h1_after, h2_after = after.chunk(2, dim=0)
        gt = self.gt_head(torch.cat([h1_after, h2_after], dim=-1))
        hap = self.allele_logits(after, x)
        h1_logits, h2_logits = hap.chunk(2, dim=0)
        return [h1_logits, h2_logits, gt, h1_before, h2_before, h1_after, h2_after]

    def encode_both(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode`` of hap_1 and hap_2 stacked as one batch of 2·B: (before, after), each [2B, L, D]."""
        if self.cfg.use_match and "rag_match_h1" not in x:
            raise KeyError("ImputerConfig.use_match needs rag_match_h1/rag_match_h2 [B, k, L, 2] in the batch "
                           "(match extents from retrieval); build the config with use_match=False otherwise")
        both = lambda a, b: torch.cat([a, b], dim=0)  # noqa: E731
        twice = lambda a: torch.cat([a, a], dim=0)  # noqa: E731
        match = both(x["rag_match_h1"], x["rag_match_h2"]) if self.cfg.use_match else None
        if self.cfg.use_copying and "copying_h1" not in x:
            raise KeyError("ImputerConfig.use_copying needs copying_h1/copying_h2 [B, L] in the batch (the Li–Stephens "
                           "P(ALT) from recon.copying); build the config with use_copying=False otherwise")
        copying = both(x["copying_h1"], x["copying_h2"]) if self.cfg.use_copying else None
        # rows' window ids (prediction batches carry them): pos/AF work once per window
        groups = {"groups": WindowGroups.of(x["window_id"]).twice()} if "window_id" in x else {}
        return self.encode(both(x["hap_1"], x["hap_2"]), twice(x["pos"]), twice(x["af"]),
                           both(x["rag_seg_h1"], x["rag_seg_h2"]), both(x["rag_dist_h1"], x["rag_dist_h2"]), match,
                           copying=copying, **groups)

    def allele_logits(self, after: torch.Tensor, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-haplotype allele logits [2B, L, 2]; with ``use_copying`` the copying model's logit is added to ALT − REF.

        The residual starts at weight 1, so an untrained network already predicts what the
        copying model does and training learns the corrections (where the network's own
        reading of retrieval and context disagrees with it).
        """
        hap = self.hap_head(after)
        if not self.cfg.use_copying:
            return hap
        z = copying_logit(torch.cat([x["copying_h1"], x["copying_h2"]], dim=0)) * self.copying_skip / 2
        return hap + torch.stack([-z, z], dim=-1)

    def alt_probability(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """P(ALT) per site of hap_1 and hap_2 [B, L] — ``forward``'s first two outputs, without the genotype head."""
        p = self.allele_logits(self.encode_both(x)[1], x).softmax(-1)[..., 1]
        return p.chunk(2, dim=0)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Weights every term shapes: embedding, fusion and transformer (for the gradient-conflict cosine)."""
        return [*self.embedding.parameters(), *self.emb_fusion.parameters(), *self.transformer_blocks.parameters()]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """What every active term must reach (``train.fit``'s contract): the transformer, the RAG path, the match readers."""
        groups = {"transformer": list(self.transformer_blocks.parameters()),
                  "rag_fusion": list(self.rag_fusion.parameters()) + list(self.segment_encoder.parameters())}
        if self.cfg.use_match:
            groups["match"] = self.match_parameters()
        if self.cfg.use_copying:
            groups["copying"] = list(self.copying_in.parameters())
        return groups

    def match_parameters(self) -> list[nn.Parameter]:
        """The weights that read match extents (empty without ``use_match``)."""
        mods = [m for m in (self.match_bias, self.match_vote, self.segment_encoder.match) if m is not None]
        return [p for m in mods for p in m.parameters()]
