"""Issue 15: the speed-ups of Study 4 keep the numbers — packed set elements, the O(N²) mutual
information, and the monitor that skips MI."""

from __future__ import annotations

import math

import numpy as np
import torch

from latentlab.setvae import diagnostics as dg
from latentlab.setvae.model import PackedRows, SetEncoder, SetVAEConfig


def _sets(seed: int = 0, s: int = 40, k: int = 9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    var = torch.randint(0, 10, (s, k), generator=gen)
    val = torch.randn(s, k, generator=gen)
    sizes = torch.randint(1, k + 1, (s,), generator=gen)
    pad = torch.arange(k)[None, :] >= sizes[:, None]
    return var, val, pad


def test_packed_rows_round_trip_keeps_valid_elements_and_zeroes_padding():
    _, val, pad = _sets()
    rows = PackedRows(~pad)
    packed = rows.rows(val.unsqueeze(-1))
    assert packed.shape == (int((~pad).sum()), 1)
    back = rows.padded(packed)[..., 0]
    assert torch.equal(back[~pad], val[~pad])
    assert torch.all(back[pad] == 0)


def test_set_encoder_output_does_not_depend_on_padding_width_or_padded_values():
    """Padding must never reach a valid output: widening the padding and filling it with junk
    leaves every posterior unchanged (eval mode, no dropout)."""
    torch.manual_seed(0)
    enc = SetEncoder(SetVAEConfig(n_variables=10, d_model=16, latent_dims=(4, 4))).eval()
    var, val, pad = _sets()
    wide_var = torch.cat([var, torch.randint(0, 10, (len(var), 5))], 1)
    wide_val = torch.cat([val, 100 * torch.randn(len(val), 5)], 1)
    wide_pad = torch.cat([pad, torch.ones(len(pad), 5, dtype=torch.bool)], 1)
    junk_val = torch.where(pad, torch.full_like(val, 1e3), val)
    with torch.no_grad():
        ref = enc(var, val, pad, sample=False)
        wide = enc(wide_var, wide_val, wide_pad, sample=False)
        junk = enc(var, junk_val, pad, sample=False)
    for a, b, c in zip(ref, wide, junk, strict=True):
        torch.testing.assert_close(a.mu_q, b.mu_q, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.mu_q, c.mu_q, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.logvar_q, b.logvar_q, atol=1e-5, rtol=1e-5)


def test_set_encoder_reads_every_valid_element():
    """The packing must not drop elements: changing one valid value changes that set's posterior."""
    torch.manual_seed(0)
    enc = SetEncoder(SetVAEConfig(n_variables=10, d_model=16, latent_dims=(4,))).eval()
    var, val, pad = _sets()
    last = (~pad).sum(1) - 1  # the last valid element of every set
    changed = val.clone()
    changed[torch.arange(len(val)), last] += 3.0
    with torch.no_grad():
        a = enc(var, val, pad, sample=False)[0].mu_q
        b = enc(var, changed, pad, sample=False)[0].mu_q
    assert bool(((a - b).abs().amax(1) > 1e-4).all())


def _mi_direct(mu: np.ndarray, logvar: np.ndarray, seed: int) -> float:
    """The textbook estimate with the full (N, N, D) difference tensor (the old implementation)."""
    mu_t, lv_t = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(logvar, dtype=torch.float64)
    n, d = mu_t.shape
    gen = torch.Generator().manual_seed(seed)
    z = mu_t + torch.randn(n, d, generator=gen, dtype=torch.float64) * (0.5 * lv_t).exp()
    log2pi = math.log(2 * math.pi)
    neg_entropy = (-0.5 * d * log2pi - 0.5 * (1 + lv_t).sum(-1)).mean()
    dev = z[:, None, :] - mu_t[None]
    log_density = -0.5 * ((dev**2) / lv_t.exp()[None]).sum(-1) - 0.5 * (d * log2pi + lv_t.sum(-1))[None]
    return float(neg_entropy - (torch.logsumexp(log_density, dim=1) - math.log(n)).mean())


def test_mutual_information_matches_the_direct_estimate():
    rng = np.random.default_rng(3)
    mu, lv = rng.normal(0, 2, (400, 6)), rng.uniform(-6, 2, (400, 6))
    assert math.isclose(dg.mutual_information(mu, lv, seed=5), _mi_direct(mu, lv, 5), rel_tol=1e-9, abs_tol=1e-9)


def test_level_stats_without_mi_keeps_every_other_number():
    rng = np.random.default_rng(0)
    args = (rng.normal(0, 1, (300, 4)), np.full((300, 4), -2.0), np.zeros((300, 4)), np.zeros((300, 4)))
    full, fast = dg.level_stats(1, *args), dg.level_stats(1, *args, mi=False)
    assert math.isnan(fast.mi) and math.isfinite(full.mi)
    assert (full.active, full.kl, full.mean_sigma, full.kl_per_dim) == (fast.active, fast.kl, fast.mean_sigma, fast.kl_per_dim)


def test_rerun_into_the_same_output_dir_never_reads_an_earlier_simulation(tmp_path):
    """The simulated stays are written to output_dir/data and read back: a second run with fewer stays or
    another seed must read only its own (it used to find the first run's extra files and stop)."""
    from latentlab.setvae import pipeline as S

    first = S.load(S.SetVAEParams.from_preset("quick", output_dir=str(tmp_path), n_stays=60, seed=0))
    second = S.load(S.SetVAEParams.from_preset("quick", output_dir=str(tmp_path), n_stays=50, seed=1))
    assert len(first.labels) == 60 and len(second.labels) == 50
    fresh = S.load(S.SetVAEParams.from_preset("quick", output_dir=str(tmp_path / "fresh"), n_stays=50, seed=1))
    assert second.obs.equals(fresh.obs) and second.labels.equals(fresh.labels)


def test_packed_set_attention_matches_the_padded_sdpa_reference_in_values_and_gradients():
    """The packed path (shared-query ``MAB.induce`` with a segment softmax, ``MAB.broadcast``) is the same
    function as the padded SDPA layout: same posteriors and same parameter gradients (eval mode)."""
    torch.manual_seed(1)
    enc = SetEncoder(SetVAEConfig(n_variables=10, d_model=16, n_heads=2, latent_dims=(4, 3))).eval()
    var, val, pad = _sets(seed=2, s=30, k=11)
    grads = []
    for packed in (True, False):
        enc.zero_grad()
        levels = enc(var, val, pad, sample=False, packed=packed)
        sum((lv.mu_q * (1 + lv.mu_q)).sum() + lv.logvar_q.exp().sum() for lv in levels).backward()
        grads.append(({n: p.grad.clone() for n, p in enc.named_parameters()}, levels))
    (g_packed, packed), (g_padded, padded) = grads
    for a, b in zip(packed, padded, strict=True):
        torch.testing.assert_close(a.mu_q, b.mu_q, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.logvar_q, b.logvar_q, atol=1e-5, rtol=1e-5)
    for name, grad in g_padded.items():
        torch.testing.assert_close(g_packed[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    assert any(float(g.abs().sum()) > 0 for n, g in g_packed.items() if "inducing" in n)


def test_dropout_mask_drops_at_rate_p_scales_the_rest_and_follows_the_torch_seed():
    from latentlab.setvae.model import dropout, dropout_mask

    torch.manual_seed(0)
    mask = dropout_mask((400, 501), 0.1)
    n = mask.numel()
    dropped = float((mask == 0).float().mean())
    assert abs(dropped - 0.1) < 4 * math.sqrt(0.1 * 0.9 / n)
    assert torch.all((mask == 0) | torch.isclose(mask, torch.tensor(1 / 0.9)))
    assert abs(float(mask.mean()) - 1.0) < 0.01
    torch.manual_seed(0)
    assert torch.equal(mask, dropout_mask((400, 501), 0.1))  # odd element count: the half draw is cut off
    x = torch.randn(3, 7)
    assert dropout(x, 0.5, training=False) is x and torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))
    rows = dropout_mask((2000, 8), 0.3)  # neither half of a 64-bit draw is biased
    for half in (rows.view(-1)[0::2], rows.view(-1)[1::2]):
        assert abs(float((half == 0).float().mean()) - 0.3) < 4 * math.sqrt(0.3 * 0.7 / half.numel())


def test_pma_segment_sum_pool_is_induce_with_one_query_dropout_included():
    """``MAB.pool`` (the PMA's segment sum over packed rows) is ``MAB.induce`` for one shared query, in
    training mode too: same values and gradients when both draw their dropout masks from the same seed."""
    from latentlab.setvae.model import MAB

    torch.manual_seed(0)
    mab = MAB(16, 2, 0.3).train()
    _, _, pad = _sets(seed=4, s=25, k=10)
    rows = PackedRows(~pad)
    y = torch.randn(len(rows.index), 16, requires_grad=True)
    seed = torch.randn(1, 16)
    outs = []
    for method in (mab.pool, mab.induce):
        torch.manual_seed(7)
        out = method(seed, y, rows)
        (grad,) = torch.autograd.grad((out * out.detach().sign()).sum(), y)
        outs.append((out, grad))
    (pooled, g_pool), (induced, g_induce) = outs
    assert pooled.shape == (rows.n_sets, 1, 16)
    torch.testing.assert_close(pooled, induced, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_pool, g_induce, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert float((pooled - mab.eval().pool(seed, y, rows)).abs().max()) > 1e-3  # dropout did act in training
