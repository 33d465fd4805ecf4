"""train.fit's loss total skips ×1 and the leading 0 + : the value and every gradient must be the plain sum's."""

from __future__ import annotations

import torch

from latentlab.train import weighted_sum


def _grads(weights: dict[str, float], combine) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    x = torch.randn(64, 7)
    layer = torch.nn.Linear(7, 5)
    h = layer(x)
    terms = {"task": h.pow(2).mean(), "align": h.abs().mean() * 1e-3, "sparse": h.sigmoid().mean(), "off": h.sum()}
    total = combine(terms, weights)
    total.backward()
    return total.detach(), [p.grad.clone() for p in layer.parameters()]


def _plain(terms, used):
    return sum(used[k] * terms[k] for k in terms if used[k] != 0)


def test_weighted_sum_equals_the_plain_sum_bit_for_bit():
    for weights in ({"task": 1.0, "align": 0.5, "sparse": 0.05, "off": 0.0},
                    {"task": 0.0, "align": 1.0, "sparse": 1.0, "off": 0.0},
                    {"task": 1.0, "align": 0.0, "sparse": 0.0, "off": 0.0},
                    {"task": 0.3, "align": 1.0, "sparse": 1e-7, "off": 2.0}):
        total, grads = _grads(weights, weighted_sum)
        want_total, want_grads = _grads(weights, _plain)
        assert torch.equal(total, want_total)
        assert all(torch.equal(g, w) for g, w in zip(grads, want_grads, strict=True))


def test_all_weights_zero_gives_a_plain_zero():
    terms = {"task": torch.tensor(2.0, requires_grad=True)}
    assert weighted_sum(terms, {"task": 0.0}) == 0.0
    assert not isinstance(weighted_sum(terms, {"task": 0.0}), torch.Tensor)
