"""SetVAE model: causality (no future step reaches a prediction), posterior design, losses, contract."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from latentlab import train
from latentlab.setvae.losses import (
    LossConfig,
    SetVAEObjective,
    beta_schedule,
    free_bits_kl,
    level_weight_vector,
    smoothed_bce,
    task_weight,
)
from latentlab.setvae.model import HierarchicalSetVAE, SetVAEConfig, causal_mask, gaussian_kl
from latentlab.train import StepContext


def toy_batch(b: int = 3, t: int = 6, k: int = 4, n_var: int = 5, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    times = torch.sort(torch.rand(b, t, generator=g) * 48, dim=1).values
    step_mask = torch.ones(b, t, dtype=torch.bool)
    step_mask[0, -2:] = False
    elem = torch.rand(b, t, k, generator=g) < 0.7
    elem[..., 0] = True
    return {"times": times, "step_mask": step_mask, "var": torch.randint(0, n_var, (b, t, k), generator=g),
            "val": torch.randn(b, t, k, generator=g), "elem_mask": elem, "label": torch.tensor([0, 1, 0])}


def model(**kw) -> HierarchicalSetVAE:
    torch.manual_seed(0)
    m = HierarchicalSetVAE(SetVAEConfig(n_variables=5, d_model=16, latent_dims=(4, 3), max_steps=8, **kw))
    return m.eval()


def test_leaky_mask_is_off_by_default():
    assert SetVAEConfig().future_leak == 0
    assert causal_mask(3).tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    assert causal_mask(3, 1).tolist() == [[False, False, True], [False, False, False], [False, False, False]]


@pytest.mark.parametrize("time_encoding", ["learned", "rope"])
@pytest.mark.parametrize("pooling", ["attention", "mean"])
def test_no_future_step_reaches_the_prediction(time_encoding, pooling):
    """Changing everything after step t leaves the step-t prediction, H and the reconstruction unchanged."""
    m = model(time_encoding=time_encoding, pooling=pooling)
    batch = toy_batch()
    t = 2
    future = {k: v.clone() for k, v in batch.items()}
    future["val"][:, t + 1 :] += 5.0
    future["var"][:, t + 1 :] = (future["var"][:, t + 1 :] + 1) % 5
    with torch.no_grad():
        a, b = m(batch), m(future)
    torch.testing.assert_close(a["step_logits"][:, : t + 1], b["step_logits"][:, : t + 1])
    torch.testing.assert_close(a["h"][:, : t + 1], b["h"][:, : t + 1])
    torch.testing.assert_close(a["recon"][:, : t + 1], b["recon"][:, : t + 1])
    assert not torch.allclose(a["logit"], b["logit"])  # the final prediction does read the whole stay


def test_leaky_mask_lets_the_future_in():
    m = model(future_leak=2)
    batch = toy_batch()
    future = {k: v.clone() for k, v in batch.items()}
    future["val"][:, 3:] += 5.0
    with torch.no_grad():
        a, b = m(batch), m(future)
    assert not torch.allclose(a["step_logits"][:, 1:3], b["step_logits"][:, 1:3])


def test_reconstruction_of_step_t_does_not_see_x_t_through_history():
    """With decoder_input='h' the value at step t is predicted from h_{t-1} only: x_t cannot leak in."""
    m = model(decoder_input="h")
    batch = toy_batch()
    changed = {k: v.clone() for k, v in batch.items()}
    changed["val"][:, 3] += 5.0
    with torch.no_grad():
        a, b = m(batch), m(changed)
    torch.testing.assert_close(a["recon"][:, : 4], b["recon"][:, : 4])


def test_posterior_is_residual_on_prior_and_logvar_clipped():
    m = model(logvar_min=-2.0, logvar_max=1.0)
    with torch.no_grad():
        for head in m.setvae.posteriors:
            head[-1].weight.zero_()
            head[-1].bias.fill_(50.0)  # a constant, absurd residual (mean and log-variance)
        out = m(toy_batch(), sample=False)
    top, deep = out["levels"]
    assert torch.all(top.mu_p == 0) and torch.all(top.logvar_p == 0)  # level 1 prior N(0, I)
    assert torch.allclose(top.mu_q, top.mu_p + 50.0)  # residual on the prior
    assert float(deep.logvar_q.max()) == 1.0 and float(top.logvar_q.min()) >= -2.0
    assert not torch.allclose(deep.mu_p, torch.zeros_like(deep.mu_p))  # level 2 prior depends on z^1


def test_gaussian_kl_hand_values():
    kl = gaussian_kl(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, math.log(4.0), 0.0]),
                     torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, math.log(2.0)]))
    expected = [0.5, 0.5 * (3 - math.log(4.0)), 0.5 * (math.log(2.0) + 1 / 2 + 1 / 2 - 1)]
    torch.testing.assert_close(kl, torch.tensor(expected))


def test_free_bits_clamp_as_defined():
    kl = torch.tensor([[0.02, 0.5], [0.08, 0.3]], requires_grad=True)  # per-dim batch means 0.05, 0.4
    value = free_bits_kl(kl, 0.1)
    assert float(value.detach()) == pytest.approx(0.1 + 0.4)
    value.backward()
    torch.testing.assert_close(kl.grad, torch.tensor([[0.0, 0.5], [0.0, 0.5]]))  # clamped dim: no gradient
    assert float(free_bits_kl(kl.detach(), 0.0)) == pytest.approx(0.45)


def test_free_bits_per_level_clamps_the_sum_not_each_dim():
    kl = torch.tensor([[0.02, 0.5], [0.08, 0.3]], requires_grad=True)  # level KL = 0.05 + 0.4 = 0.45
    above = free_bits_kl(kl, 0.3, group="level")
    assert float(above.detach()) == pytest.approx(0.45)
    above.backward()  # above λ: every dimension (also the tiny one) is pushed toward the prior
    torch.testing.assert_close(kl.grad, torch.full((2, 2), 0.5))
    kl.grad = None
    below = free_bits_kl(kl, 1.0, group="level")
    assert float(below.detach()) == pytest.approx(1.0)
    below.backward()
    torch.testing.assert_close(kl.grad, torch.zeros(2, 2))  # the whole level is free: no gradient
    with pytest.raises(ValueError, match="free_bits group"):
        free_bits_kl(kl, 0.1, group="unit")
    with pytest.raises(ValueError, match="free_bits_group"):
        LossConfig(free_bits_group="unit")


def test_schedules_and_weights():
    ctx = lambda step, epoch=0: StepContext(epoch=epoch, step=step, epochs=5)  # noqa: E731
    lin = beta_schedule("linear", 0.1, warmup_steps=100)
    assert [lin(ctx(s)) for s in (0, 50, 100, 500)] == pytest.approx([0.0, 0.05, 0.1, 0.1])
    cyc = beta_schedule("cyclical", 1.0, cycle_steps=10, ratio=0.5)
    assert [cyc(ctx(s)) for s in (0, 2, 5, 9, 10, 12)] == pytest.approx([0.0, 0.4, 1.0, 1.0, 0.0, 0.4])
    assert beta_schedule("constant", 0.5)(ctx(7)) == 0.5
    with pytest.raises(ValueError, match="cyclical"):
        beta_schedule("exp", 1.0)
    dyn = task_weight(1.0, True, start=0.5, end=1.0)
    assert [dyn(ctx(0, e)) for e in (0, 2, 4)] == pytest.approx([0.5, 0.75, 1.0])
    assert level_weight_vector(2, 2.0) == pytest.approx((2 / 3, 4 / 3))
    y = torch.tensor([1.0, 0.0])
    logit = torch.tensor([0.3, -0.2])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.tensor([0.95, 0.05]))
    torch.testing.assert_close(smoothed_bce(logit, y, 0.1), expected)


WEIGHTS = {"recon": 1.0, "kl": 0.1, "cls": 1.0, "var_reg": 0.1, "mean_reg": 0.01}


def objective(**kw) -> SetVAEObjective:
    return SetVAEObjective(model(**kw).train(), LossConfig(free_bits=0.0, level_weights=(1.0, 1.0)))


def test_contract_passes_for_the_designed_model():
    report = train.check_contract(objective(), toy_batch(), WEIGHTS)
    assert set(report["grad_norms"]) == set(WEIGHTS)


def test_contract_accepts_kl_inside_free_bits_but_not_a_cut_kl():
    roomy = SetVAEObjective(model().train(), LossConfig(free_bits=50.0, free_bits_group="level"))
    report = train.check_contract(roomy, toy_batch(), WEIGHTS)  # every level's KL is below λ: flat, allowed
    assert report["grad_norms"]["kl"] == {"setvae": 0.0}
    cut = SetVAEObjective(model().train(), LossConfig(free_bits=0.0))
    original = cut.loss_terms
    cut.loss_terms = lambda batch: {**original(batch), "kl": original(batch)["kl"].detach() + 0 * original(batch)["cls"]}
    with pytest.raises(train.ContractError, match="'kl' has weight > 0 but sends no gradient to 'setvae'"):
        train.check_contract(cut, toy_batch(), WEIGHTS)


def test_contract_rejects_unused_weight_and_broken_decoder():
    with pytest.raises(train.ContractError, match="read by no loss term"):
        train.check_contract(objective(), toy_batch(), {**WEIGHTS, "align": 1.0})
    broken = objective()
    original = broken.model.reconstruct
    broken.model.reconstruct = lambda z, h, var: original(torch.zeros_like(z), h, var)  # silently drops z
    with pytest.raises(train.ContractError, match="does not depend on z"):
        train.check_contract(broken, toy_batch(), WEIGHTS)


def test_config_validation():
    with pytest.raises(ValueError, match="future_leak"):
        SetVAEConfig(future_leak=-1)
    with pytest.raises(ValueError, match="pooling"):
        SetVAEConfig(pooling="max")
    with pytest.raises(ValueError, match="level_weights"):
        SetVAEObjective(model(), LossConfig(level_weights=(1.0,)))
    assert dataclasses.replace(SetVAEConfig(), time_encoding="rope").time_encoding == "rope"


def test_reconstruction_reads_each_elements_variable_bilinearly():
    """``reconstruct`` (one product with every variable's embedding, then a gather) equals the per-element
    form code_t · e_var / sqrt(d) + b_var it replaced."""
    torch.manual_seed(0)
    model = HierarchicalSetVAE(SetVAEConfig(n_variables=9, d_model=16, latent_dims=(4,))).eval()
    z, h = torch.randn(3, 5, 16), torch.randn(3, 5, 16)
    var = torch.randint(0, 9, (3, 5, 7))
    h_prev = torch.cat([model.start.expand(3, 1, -1), h[:, :-1]], 1)
    code = model.decoder(torch.cat([z, h_prev], -1))
    direct = (code.unsqueeze(2) * model.dec_var(var)).sum(-1) / 4.0 + model.dec_bias(var).squeeze(-1)
    torch.testing.assert_close(model.reconstruct(z, h, var), direct, atol=1e-5, rtol=1e-5)
