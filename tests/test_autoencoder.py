"""Autoencoders and mitigations: shapes, and the loss contract (including broken variants)."""

from __future__ import annotations

import pytest
import torch

from latentlab import train
from latentlab.h2 import losses
from latentlab.h2 import model as aem


def batch(n: int = 32, genes: int = 20):
    g = torch.Generator().manual_seed(0)
    context = torch.randint(0, 2, (n,), generator=g)
    context[:4] = -1  # hidden labels (test cells)
    return {"x": torch.rand(n, genes, generator=g), "context": context}


def weights_for(method: str, w: float = 0.5):
    weights = {"recon": 1.0, **{t: w for t in losses.PENALTY_TERMS[method]}}
    return weights


@pytest.mark.parametrize("method", ["none", "adversarial", "hsic", "mmd", "subspace"])
def test_every_variant_passes_the_contract(method):
    model = aem.AutoEncoder(20, latent=4) if method == "none" else aem.MITIGATIONS[method](20, 2, latent=4)
    report = train.check_contract(losses.AutoEncoderObjective(model), batch(), weights_for(method))
    assert set(report["grad_norms"]) == set(weights_for(method))


def test_embeddings_have_the_latent_size():
    assert aem.AutoEncoder(20, latent=16).embed(batch()["x"]).shape == (32, 16)
    assert aem.SubspaceAE(20, 2, latent=16, context_dims=2).embed(batch()["x"]).shape == (32, 14)


def test_gradient_reversal_flips_the_encoder_gradient():
    x = torch.ones(3, requires_grad=True)
    losses.reverse_gradient(x, 2.0).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -2.0))


def test_adversary_that_never_reaches_the_encoder_fails_the_contract():
    class Detached(losses.AutoEncoderObjective):
        def loss_terms(self, batch):
            z = self.model.encode(batch["x"])
            return {"recon": super().loss_terms(batch)["recon"],
                    **losses.adversarial_terms(self.model, z.detach(), batch["context"])}

    with pytest.raises(train.ContractError, match="'adversary' has weight > 0 but sends no gradient to 'encoder'"):
        train.check_contract(Detached(aem.AdversarialAE(20, 2, latent=4)), batch(), weights_for("adversarial"))


def test_a_head_the_penalty_skips_fails_the_contract():
    """term_targets names each penalty's own head: a subspace context term that bypasses it is caught."""
    class Headless(losses.AutoEncoderObjective):
        def loss_terms(self, batch):
            terms = super().loss_terms(batch)
            z = self.model.encode(batch["x"])
            terms["context"] = z[:, :2].pow(2).mean()  # reaches the encoder, never the context head
            return terms

    with pytest.raises(train.ContractError, match="'context' has weight > 0 but sends no gradient to 'context head'"):
        train.check_contract(Headless(aem.SubspaceAE(20, 2, latent=4)), batch(),
                             {"recon": 1.0, "context": 1.0, "adversary": 0.5})


def test_penalty_weight_that_no_term_reads_fails_the_contract():
    with pytest.raises(train.ContractError, match=r"\['hsic'\] are read by no loss term"):
        train.check_contract(losses.AutoEncoderObjective(aem.AutoEncoder(20, latent=4)), batch(), {"recon": 1.0, "hsic": 1.0})


def test_hidden_labels_never_enter_the_penalty():
    model = aem.MMDAE(20, 2, latent=4)
    b = batch()
    full = losses.AutoEncoderObjective(model).loss_terms(b)["mmd"]
    b2 = {"x": b["x"].clone(), "context": b["context"].clone()}
    b2["x"][:4] += 10.0  # change only the hidden cells' inputs
    z = model.encode(b2["x"])
    assert torch.allclose(losses.mmd(z[4:], b2["context"][4:]), full)


def test_hsic_is_near_zero_for_independent_labels_and_positive_for_dependent():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200, 3, generator=g)
    independent = torch.randint(0, 2, (200,), generator=g)
    dependent = (z[:, 0] > 0).long()
    assert losses.hsic(z, dependent, 2) > 5 * losses.hsic(z, independent, 2)
