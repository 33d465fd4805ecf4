"""Study 3 losses: each arm matches its formula on a hand-computed case; arm A's switch; arm D's target."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentlab import train
from latentlab.recon import losses as rl
from latentlab.recon.model import BertRagImputer, ImputerConfig
from latentlab.train import ContractError, StepContext

L, K = 8, 3
CFG = ImputerConfig(window=L, k=K, d_model=8, depth=1, heads=2)


def make_batch(b: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y1, y2 = torch.randint(0, 2, (b, L), generator=g), torch.randint(0, 2, (b, L), generator=g)
    mask = torch.zeros(b, L, dtype=torch.bool)
    mask[:, ::2] = True
    hap1, hap2 = y1.masked_fill(mask, rl.MASK_TOKEN), y2.masked_fill(mask, rl.MASK_TOKEN)
    return {"hap_1": hap1, "hap_2": hap2, "y1": y1, "y2": y2, "mask": mask,
            "pos": torch.linspace(0, 1, L).expand(b, L).contiguous(), "af": torch.full((b, L), 0.3),
            "rag_seg_h1": torch.randint(0, 2, (b, K, L), generator=g),
            "rag_seg_h2": torch.randint(0, 2, (b, K, L), generator=g),
            "rag_dist_h1": torch.rand(b, K, generator=g), "rag_dist_h2": torch.rand(b, K, generator=g),
            "rag_match_h1": torch.rand(b, K, L, 2, generator=g), "rag_match_h2": torch.rand(b, K, L, 2, generator=g)}


def test_focal_loss_hand_computed():
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])  # p(ALT) = 0.75, 0.5
    target = torch.tensor([[1, 0]])
    mask = torch.tensor([[True, True]])
    # -(1-0.75)^2 log 0.75 and -(0.5)^2 log 0.5, averaged
    expected = (-(0.25 ** 2) * math.log(0.75) - (0.5 ** 2) * math.log(0.5)) / 2
    assert float(rl.focal_loss(logits, target, mask, 2.0)) == pytest.approx(expected, rel=1e-6)
    assert float(rl.focal_loss(logits, target, mask, 0.0)) == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)
    only_first = torch.tensor([[True, False]])
    assert float(rl.focal_loss(logits, target, only_first, 2.0)) == pytest.approx(-(0.25 ** 2) * math.log(0.75))


def test_recon_and_infonce_hand_computed():
    before = torch.tensor([[[1.0, 0.0], [5.0, 5.0]]])
    after = torch.tensor([[[0.0, 2.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, False]])
    assert float(rl.recon_mse(before, after, mask)) == pytest.approx((1 + 4) / 2)
    a = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    p = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    m = torch.ones(2, 1, dtype=torch.bool)
    # cos = identity matrix; logits = I / 0.1; CE = log(1 + e^-10)
    assert float(rl.info_nce(a, p, m, 0.1)) == pytest.approx(math.log(1 + math.exp(-10)), rel=1e-3)


TERMS_ON = {"hap1": 0.5, "hap2": 0.4, "gt": 1.2, "recon1": 0.3, "recon2": 0.2, "contrastive": 2.0}


@pytest.mark.parametrize("arm, expected", [
    ("A", 0.2 * 0.5 + 0.2 * 0.4 + 0.3 * 1.2 + 0.15 * 0.3 + 0.15 * 0.2),
    ("B", 0.25 * 0.5 + 0.25 * 0.4 + 0.4 * 1.2 + 0.05 * 0.3 + 0.05 * 0.2),
    ("C", 0.3 * 0.5 + 0.3 * 0.4 + 0.4 * 1.2),
    ("D", 0.25 * 0.5 + 0.25 * 0.4 + 0.4 * 1.2 + 0.05 * 0.3 + 0.05 * 0.2),
    ("E", 0.3 * 0.5 + 0.3 * 0.4 + 0.3 * 1.2 + 0.1 * 2.0),
])
def test_arm_weights_match_formula(arm, expected):
    ctx = StepContext(epoch=0, step=0, epochs=1, terms=TERMS_ON)
    weights = rl.arm_weights(arm)
    got = sum(train.resolve_weight(w, ctx) * TERMS_ON[k] for k, w in weights.items())
    assert got == pytest.approx(expected)
    assert rl.total_loss(arm, TERMS_ON) == pytest.approx(expected)


def test_arm_a_switches_when_recon_crosses_threshold():
    weights = rl.arm_weights("A")
    low = {**TERMS_ON, "recon1": 0.005}  # one recon term at/below 0.01 → the 3/3/4 branch
    ctx = StepContext(epoch=0, step=0, epochs=1, terms=low)
    assert {k: train.resolve_weight(w, ctx) for k, w in weights.items()} == rl.ARM_A_OFF
    assert rl.total_loss("A", low) == pytest.approx(3 * 0.5 + 3 * 0.4 + 4 * 1.2)
    at = {**TERMS_ON, "recon1": 0.01, "recon2": 0.02}  # strictly greater is required
    assert rl.total_loss("A", at) == pytest.approx(3 * 0.5 + 3 * 0.4 + 4 * 1.2)
    obj = rl.ReconObjective(BertRagImputer(CFG), "A", 5.0)
    for step, r in enumerate([0.5, 0.2, 0.009, 0.02, 0.02, 0.001]):
        obj.after_step(StepContext(epoch=0, step=step, epochs=1, terms={**TERMS_ON, "recon1": r, "recon2": r}))
    assert [(s["step"], s["to"]) for s in obj.switches] == [(2, "no-recon"), (3, "recon"), (5, "no-recon")]


def test_arm_a_switch_is_seen_by_fit_history():
    torch.manual_seed(0)
    model = BertRagImputer(CFG)
    obj = rl.ReconObjective(model, "A", 2.0, threshold=0.5)  # a threshold training crosses quickly
    batch = make_batch(8)
    res = train.fit(obj, [batch], weights=obj.weights(), epochs=25, lr=1e-2, progress=False)
    assert obj.switches, "recon fell below the threshold but no switch was recorded"
    hist = res.history
    assert hist["weight_hap1"].max() == pytest.approx(3.0) and hist["weight_hap1"].min() == pytest.approx(0.2)
    for s in obj.switches:  # every recorded switch agrees with the seed's condition on that step's values
        assert (s["to"] == "recon") == (s["recon1"] > 0.5 and s["recon2"] > 0.5)


def test_arm_d_target_is_true_allele_embedding():
    torch.manual_seed(0)
    model = BertRagImputer(CFG)
    batch = make_batch()
    d = rl.ReconObjective(model, "D", 5.0)
    a = rl.ReconObjective(model, "A", 5.0)
    terms_d, out = d.terms_and_outputs(batch)
    m = batch["mask"]
    true_emb = model.embedding(batch["y1"])
    expected = torch.mean((out[5][m] - true_emb[m]) ** 2)
    assert float(terms_d["recon1"].detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    masked_emb = model.embedding(batch["hap_1"])  # what A reconstructs: the MASK token's embedding
    assert float(a.loss_terms(batch)["recon1"]) == pytest.approx(float(torch.mean((out[5][m] - masked_emb[m]) ** 2)))
    assert not torch.allclose(true_emb[m], masked_emb[m])
    # flipping the true alleles at masked sites changes D's target (input tokens unchanged)
    flipped = dict(batch, y1=torch.where(m, 1 - batch["y1"], batch["y1"]))
    assert float(d.loss_terms(flipped)["recon1"]) != pytest.approx(float(terms_d["recon1"]))


def test_contract_accepts_every_arm_and_logs_recon_in_c():
    torch.manual_seed(0)
    batch = make_batch()
    for arm in rl.ARMS:
        obj = rl.ReconObjective(BertRagImputer(CFG), arm, 5.0)
        report = train.check_contract(obj, batch, obj.weights())
        assert set(report["grad_norms"]) >= {"hap1", "hap2", "gt"}
        if arm in ("C", "E"):
            assert "recon1" not in report["grad_norms"] and "recon1" in report["terms"]


class NoRag(BertRagImputer):
    """A broken imputer whose RAG fusion is skipped: the designed path is not on the forward path."""

    def encode(self, tokens, pos, af, rag, rag_dist, rag_match=None, copying=None):
        before = self.embed_alleles(tokens)
        return before, self.transformer_blocks(self.emb_fusion(before, pos, af))


def test_contract_rejects_model_without_rag_path():
    obj = rl.ReconObjective(NoRag(CFG), "C", 5.0)
    with pytest.raises(ContractError, match="sends no gradient to 'rag_fusion'"):
        train.check_contract(obj, make_batch(), obj.weights())


class IgnoresMatch(BertRagImputer):
    """A control imputer that is handed match extents but never reads them."""

    def encode(self, tokens, pos, af, rag, rag_dist, rag_match=None, copying=None):
        return super().encode(tokens, pos, af, rag, rag_dist, torch.zeros_like(rag_match).detach())


def test_model_reads_match_extents():
    obj = rl.ReconObjective(IgnoresMatch(CFG), "C", 5.0)
    batch = make_batch()
    out_a = obj.model(batch)[0]
    out_b = obj.model(dict(batch, rag_match_h1=batch["rag_match_h1"] * 0 + 1))[0]
    assert torch.equal(out_a, out_b), "the broken model must not see the extents"
    real = rl.ReconObjective(BertRagImputer(CFG), "C", 5.0)
    changed = real.model(dict(batch, rag_match_h1=batch["rag_match_h1"] * 0 + 1))[0]
    assert not torch.equal(real.model(batch)[0], changed), "the real model reads the extents"


def test_design_check_rejects_leaked_truth_and_unknown_arm():
    batch = make_batch()
    leaked = dict(batch, hap_1=batch["y1"])
    obj = rl.ReconObjective(BertRagImputer(CFG), "B", 5.0)
    with pytest.raises(ContractError, match="hap_1 input shows a true allele"):
        obj.check_design(leaked)
    with pytest.raises(ValueError, match="unknown arm 'F'"):
        rl.ReconObjective(BertRagImputer(CFG), "F", 5.0)


def test_outputs_in_seed_order():
    model = BertRagImputer(CFG)
    out = model(make_batch(3))
    assert [tuple(o.shape) for o in out] == [(3, L, 2), (3, L, 2), (3, L, 4)] + [(3, L, 8)] * 4
    np.testing.assert_allclose(out[3].detach(), model.embedding(make_batch(3)["hap_1"]).detach())


def test_gradient_conflict_measures_cosines():
    torch.manual_seed(0)
    obj = rl.ReconObjective(BertRagImputer(CFG), "A", 5.0)
    res = rl.gradient_conflict(obj, make_batch())
    assert -1 <= res["cos_hap_after"] <= 1 and -1 <= res["cos_shared"] <= 1
    assert 0 < res["aux_share"] < 1
    c = rl.gradient_conflict(rl.ReconObjective(obj.model, "C", 5.0), make_batch())
    assert c["aux_share"] == 0  # C does not train on recon: no share of the update


def test_ratio_rule():
    assert rl.ratio_verdict(2.0).startswith("recon dominates")
    assert rl.ratio_verdict(0.05).startswith("recon negligible")
    assert rl.ratio_verdict(0.5) == "reasonable range"


@pytest.mark.parametrize("arm", rl.ARMS)
def test_fit_trains_on_the_arm_formula(arm):
    """The total train.fit optimises (its history) equals the arm's formula applied to the logged terms."""
    torch.manual_seed(0)
    obj = rl.ReconObjective(BertRagImputer(CFG), arm, 5.0)
    row = train.fit(obj, [make_batch(6)], weights=obj.weights(), epochs=1, progress=False).history.iloc[0]
    terms = {k: row[f"train_{k}"] for k in ("hap1", "hap2", "gt", "recon1", "recon2", "contrastive")
             if f"train_{k}" in row}
    assert row["train_loss"] == pytest.approx(rl.total_loss(arm, terms), rel=1e-5)
