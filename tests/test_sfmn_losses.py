"""Study 2 loss terms: IMMAX on logits with explicit α updates, alignment, sparsity, entropy sign, smoothness."""

from __future__ import annotations

import entmax
import pytest
import torch

from latentlab.sfmn import losses as L


def test_immax_is_finite_on_extreme_logits_and_matches_its_formula():
    loss = L.AdaptiveIMMAX(alpha=0.3)
    logits = torch.tensor([100.0, -100.0, 2.0, -3.0])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    value = loss(logits, y)
    assert torch.isfinite(value)
    a = 0.3
    pos = torch.nn.functional.softplus(-torch.tensor([100.0, -3.0]) / a).mean()
    neg = torch.nn.functional.softplus(torch.tensor([-100.0, 2.0]) / (1 - a)).mean()
    assert torch.allclose(value, (pos + neg) / 2)


def test_immax_alpha_moves_only_in_update_towards_the_imbalance_target():
    loss = L.AdaptiveIMMAX(alpha=0.5, momentum=0.5)
    y = torch.tensor([1.0] + [0.0] * 15)
    for _ in range(3):
        loss(torch.zeros(16), y)
    assert float(loss.alpha) == 0.5  # computing the loss never changes α
    for _ in range(40):
        loss(torch.zeros(16), y)
        loss.update()
    target = 1 / (1 + 15**0.5)  # √S₊ / (√S₊ + √S₋) with S₊ = 1, S₋ = 15 per batch
    assert abs(float(loss.alpha) - target) < 0.01


def test_immax_one_class_batch_uses_that_class_and_keeps_alpha():
    loss = L.AdaptiveIMMAX(alpha=0.4)
    logits = torch.tensor([0.5, -0.5], requires_grad=True)
    value = loss(logits, torch.zeros(2))
    assert torch.isfinite(value)
    expected = torch.nn.functional.softplus(logits / 0.6).mean()
    assert torch.allclose(value, expected)
    value.backward()
    assert loss.update() == pytest.approx(0.4)


def test_swap_alignment_zero_when_aligned_positive_when_not():
    h = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([1, 1, 0, 0])
    cell = torch.tensor([0, 1, 0, 1])
    assert float(L.swap_alignment(h, y, cell)) == 0.0
    moved = h.clone()
    moved[1] = torch.tensor([0.0, 2.0])
    assert float(L.swap_alignment(moved, y, cell)) > 0
    assert torch.isfinite(L.swap_alignment(moved, y, cell, form="contrastive"))
    # pairs only count across cell lines: one cell line gives no pair, a zero that is still connected
    h1 = h.clone().requires_grad_(True)
    empty = L.swap_alignment(h1, y, torch.zeros(4, dtype=torch.long))
    assert float(empty.detach()) == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match="form must be"):
        L.swap_alignment(h, y, cell, form="cosine")


def test_sparsity_on_sparsemax_is_constant_with_exactly_zero_gradient():
    x = torch.randn(3, 10, requires_grad=True)
    term = L.sparsity(entmax.sparsemax(x, dim=-1))
    assert float(term.detach()) == pytest.approx(1 / 10)
    (grad,) = torch.autograd.grad(term, x)
    assert float(grad.abs().max()) == 0.0
    s = torch.randn(3, 10, requires_grad=True)
    (g2,) = torch.autograd.grad(L.sparsity(torch.sigmoid(s)), s)
    assert float(g2.abs().max()) > 0


def test_entropy_sign_spread_raises_entropy_seed_sign_lowers_it():
    def descend(sign):
        x = torch.tensor([[3.0, -3.0, -3.0, -3.0]], requires_grad=True)
        opt = torch.optim.SGD([x], lr=1.0)
        for _ in range(50):
            opt.zero_grad()
            L.entropy_term(torch.sigmoid(x), sign).backward()
            opt.step()
        return float(L.gate_entropy(torch.sigmoid(x.detach())))

    start = float(L.gate_entropy(torch.sigmoid(torch.tensor([[3.0, -3.0, -3.0, -3.0]]))))
    assert descend("spread") > start > descend("seed")
    with pytest.raises(ValueError, match="entropy sign"):
        L.entropy_term(torch.ones(1, 2), "plus")


def test_smoothness_weights_close_cell_lines_more():
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    v_close = torch.tensor([[0.0], [0.1], [5.0]])  # lines 0 and 1 close, gates differ
    v_far = torch.tensor([[0.0], [5.0], [0.1]])  # lines 0 and 2 close, gates equal
    assert float(L.smoothness(g, v_close)) > float(L.smoothness(g, v_far))
    assert float(L.smoothness(torch.ones(3, 2), v_close)) == 0.0
    assert float(L.smoothness(g[:1], v_close[:1])) == 0.0
