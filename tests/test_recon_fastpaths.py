"""Study 3's speed-ups change no result: each fast path against the plain computation it replaced."""

from __future__ import annotations

import numpy as np
import torch

from latentlab.recon import data as hp
from latentlab.recon import pipeline as recon
from latentlab.recon.model import BertRagImputer, ImputerConfig, WindowGroups


def _windows(n_sites: int = 150, window: int = 32) -> recon.WindowSet:
    """5 individuals over 150 sites: 5 windows, the last shifted back so it overlaps the 4th."""
    rng = np.random.default_rng(3)
    query, panel = rng.integers(0, 2, (5, 2, n_sites)), rng.integers(0, 2, (40, n_sites))
    observed = rng.random(n_sites) < 0.3
    return recon.build_windows(query, panel, observed, np.arange(n_sites) * 100 + 1, window, 4)


def test_assemble_equals_window_by_window_loop_and_later_window_wins():
    ws = _windows()
    assert hp.window_starts(150, 32)[-1] < 4 * 32  # the last window overlaps: the overwrite order matters
    probs = np.random.default_rng(0).random(ws.hap.shape)
    expected = np.full((5, 2, 150), np.nan)
    for i in range(len(ws)):  # the loop assemble() replaced: windows in order, a later one overwrites
        expected[ws.individual[i], :, ws.site[i]] = probs[i].T
    assert np.array_equal(recon.assemble(ws, probs, 5, 150), expected)


def test_assemble_leaves_uncovered_sites_nan():
    ws = _windows()
    keep = ws.individual != 2
    sub = recon._subset(ws, np.flatnonzero(keep))
    out = recon.assemble(sub, np.zeros(sub.hap.shape), 5, 150)
    assert np.isnan(out[2]).all() and not np.isnan(out[[0, 1, 3, 4]]).any()


def test_both_haplotypes_in_one_pass_equal_two_separate_encodes():
    cfg = ImputerConfig(window=32, k=4, d_model=16, depth=2, heads=2)
    torch.manual_seed(0)
    model = BertRagImputer(cfg).eval()
    ws = _windows()
    batch = recon.to_batch(ws, np.arange(len(ws)), np.full(150, 0.3))
    with torch.no_grad():
        out = model(batch)
        for k in (1, 2):  # one haplotype at a time, as the model computed it before
            before, after = model.encode(batch[f"hap_{k}"], batch["pos"], batch["af"], batch[f"rag_seg_h{k}"],
                                         batch[f"rag_dist_h{k}"], batch[f"rag_match_h{k}"])
            torch.testing.assert_close(out[2 + k], before)
            torch.testing.assert_close(out[4 + k], after, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out[k - 1], model.hap_head(after), atol=1e-5, rtol=1e-5)


def test_predict_windows_matches_small_batches_and_keeps_observed_alleles():
    cfg = ImputerConfig(window=32, k=4, d_model=16, depth=1, heads=2)
    torch.manual_seed(1)
    model = BertRagImputer(cfg)
    ws = _windows()
    af = np.full(150, 0.3)
    big, small = recon.predict_windows(model, ws, af), recon.predict_windows(model, ws, af, batch_size=3)
    np.testing.assert_allclose(big, small, atol=1e-5)
    observed = ws.hap != hp.MASK
    assert np.array_equal(big[observed], ws.hap[observed])
    assert ((big[~observed] > 0) & (big[~observed] < 1)).all()


def test_factored_rag_attention_equals_the_plain_segment_path_with_and_without_match():
    ws = _windows()
    batch = recon.to_batch(ws, np.arange(len(ws)), np.random.default_rng(2).random(150))
    for use_match in (True, False):
        torch.manual_seed(4)
        model = BertRagImputer(ImputerConfig(window=32, k=4, d_model=16, depth=1, heads=2, use_match=use_match))
        for p in model.parameters():  # non-trivial biases everywhere (defaults start some at zero)
            p.data.add_(0.1 * torch.randn_like(p))
        fast = model(batch)
        model.plain_rag = True
        plain = model(batch)
        for a, b in zip(fast, plain, strict=True):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
        grads = []
        for flag in (False, True):  # same gradients too: training takes the factored path
            model.plain_rag = flag
            model.zero_grad()
            sum(o.square().mean() for o in model(batch)).backward()
            # the key bias and match_bias.bias shift all k logits alike: zero gradient (None on the factored path)
            grads.append([torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()])
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-3)


def test_window_groups_compute_pos_and_af_once_per_window_with_the_same_outputs():
    ws = _windows()
    rows = np.random.default_rng(5).permutation(len(ws))  # windows mixed and out of order
    batch = recon.to_batch(ws, rows, np.random.default_rng(6).random(150))
    grouped = dict(batch, window_id=torch.from_numpy(ws.window_id[rows]))
    groups = WindowGroups.of(grouped["window_id"])
    assert len(groups.first) == len(np.unique(ws.window_id)) < len(rows)
    assert torch.equal(grouped["window_id"][groups.first][groups.inverse], grouped["window_id"])
    for use_match in (True, False):
        torch.manual_seed(7)
        model = BertRagImputer(ImputerConfig(window=32, k=4, d_model=16, depth=1, heads=2, use_match=use_match)).eval()
        with torch.no_grad():
            for a, b in zip(model(grouped), model(batch), strict=True):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_distinct_token_rows_are_encoded_once_with_the_same_outputs():
    rng = np.random.default_rng(8)
    n_sites = 150
    panel = rng.integers(0, 2, (40, n_sites))
    query = panel.reshape(20, 2, n_sites)[rng.integers(0, 3, 6)]  # 6 individuals, 3 distinct: repeated token rows
    observed = rng.random(n_sites) < 0.05
    ws = recon.build_windows(query, panel, observed, np.arange(n_sites) * 100 + 1, 32, 4)
    batch = recon.to_batch(ws, np.arange(len(ws)), rng.random(n_sites))
    grouped = dict(batch, window_id=torch.from_numpy(ws.window_id))
    groups = WindowGroups.of(grouped["window_id"]).twice()
    tokens = torch.cat([batch["hap_1"], batch["hap_2"]])
    distinct = WindowGroups.of_rows(torch.cat([groups.inverse.unsqueeze(1), tokens], dim=1))
    assert len(distinct.first) < len(tokens)  # the shortcut is exercised
    assert torch.equal(tokens[distinct.first][distinct.inverse], tokens)
    torch.manual_seed(9)
    model = BertRagImputer(ImputerConfig(window=32, k=4, d_model=16, depth=2, heads=2)).eval()
    with torch.no_grad():
        for a, b in zip(model(grouped), model(batch), strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        model.train()  # training never takes the shortcut (dropout, gradients per row)
        shortcut_calls = []
        original = model._encode_distinct
        model._encode_distinct = lambda *a, **kw: shortcut_calls.append(1) or original(*a, **kw)
        torch.testing.assert_close(model(grouped)[5], model(batch)[5])
        assert not shortcut_calls  # equal outputs alone cannot tell: the shortcut computes the same function
        model.eval()
        model(grouped)
        assert shortcut_calls  # and the spy does see it where it is taken
