"""Study 3's Li–Stephens copying posteriors: lshmm's model, the interpolation, and what the imputer does with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lshmm import api as ls_api
from lshmm import core as ls_core

from latentlab import train
from latentlab.recon import copying
from latentlab.recon import losses as rl
from latentlab.recon.model import BertRagImputer, ImputerConfig
from latentlab.train import ContractError


def random_panel(n: int = 40, sites: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    panel = (rng.random((n, sites)) < rng.uniform(0.05, 0.5, sites)).astype(np.int8)
    positions = np.sort(rng.choice(np.arange(1, 60_000), sites, replace=False))  # 60 kb: few switches expected
    return panel, positions


def test_posteriors_equal_lshmms_checked_api():
    """The per-query shortcut (emission table built once, compiled loops called directly) is lshmm's own answer."""
    panel, pos = random_panel()
    typed = np.arange(0, 300, 5)
    query = panel[3, typed].copy()
    query[::7] ^= 1  # mismatches, so the emission table matters
    ref, mpos = panel[:, typed], pos[typed].astype(float)
    r = copying.switch_probabilities(mpos, len(panel), 1e5)
    mu = float(ls_core.estimate_mutation_probability(len(panel)))
    fwd, c, _ = ls_api.forwards(ref.T.copy(), query[None, :], 1, r, prob_mutation=mu, scale_mutation_rate=True)
    bwd = ls_api.backwards(ref.T.copy(), query[None, :], 1, c, r, prob_mutation=mu, scale_mutation_rate=True)
    expected = fwd * bwd / (fwd * bwd).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(copying.marker_posteriors(query, ref, mpos, ne=1e5), expected, rtol=1e-10, atol=1e-14)


def test_a_copy_of_one_haplotype_imputes_its_alleles_and_an_excluded_one_gets_no_mass():
    panel, pos = random_panel(seed=1)
    observed = np.zeros(300, bool)
    observed[::6] = True
    query = panel[[7]].copy()
    post = copying.marker_posteriors(query[0, observed], panel[:, observed], pos[observed].astype(float), ne=1e5)
    assert post[:, 7].mean() > 0.9 and post[:, 7].min() > 0.5  # 50 markers pin the copied haplotype down
    p = copying.alt_posterior(query, panel, observed, pos)
    assert ((p[0] > 0.5) == panel[7].astype(bool))[~observed].mean() > 0.98
    excluded = copying.marker_posteriors(query[0, observed], panel[:, observed], pos[observed].astype(float), ne=1e5,
                                         exclude=np.array([7]))
    assert np.all(excluded[:, 7] == 0)
    np.testing.assert_allclose(excluded.sum(axis=1), 1.0)


def test_a_mosaic_switches_source_at_its_breakpoint():
    """Truth first: a query copying haplotype 2 then haplotype 9 is imputed from each on its own side."""
    panel, pos = random_panel(n=60, seed=2)
    observed = np.zeros(300, bool)
    observed[::4] = True
    mosaic = np.concatenate([panel[2, :150], panel[9, 150:]])[None, :]
    p = copying.alt_posterior(mosaic, panel, observed, pos)[0]
    untyped = ~observed
    assert ((p > 0.5) == mosaic[0].astype(bool))[untyped].mean() > 0.95
    post = copying.marker_posteriors(mosaic[0, observed], panel[:, observed], pos[observed].astype(float), ne=1e5)
    assert post[5, 2] > 0.9 and post[-5, 9] > 0.9


def test_interpolation_is_linear_between_markers_and_flat_outside():
    marker_pos = np.array([100.0, 200.0, 400.0])
    interval, weight = copying.interpolation(marker_pos, np.array([50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 900.0]))
    assert interval.tolist() == [0, 0, 1, 1, 2, 2, 3]
    np.testing.assert_allclose(weight, [1.0, 1.0, 0.5, 1.0, 0.5, 1.0, 0.0])
    # P(ALT) between two markers is the distance-weighted mix of what each copies
    panel = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 1], [1, 0, 1, 1, 0]], np.int8)
    observed = np.array([True, False, True, False, True])
    positions = np.array([100, 150, 200, 300, 400])
    p = copying.alt_posterior(panel[[2]], panel, observed, positions)
    post = copying.marker_posteriors(panel[2, observed], panel[:, observed], positions[observed].astype(float), ne=1e5)
    expected_site1 = 0.5 * post[0] @ panel[:, 1] + 0.5 * post[1] @ panel[:, 1]
    assert p[0, 1] == pytest.approx(expected_site1, rel=1e-5)


def test_refuses_without_markers_or_with_too_few_haplotypes():
    panel, pos = random_panel(n=4)
    with pytest.raises(ValueError, match="no observed"):
        copying.alt_posterior(panel[:1], panel, np.zeros(300, bool), pos)
    observed = np.ones(300, bool)
    with pytest.raises(ValueError, match="needs at least 3"):
        copying.alt_posterior(panel[:1], panel, observed, pos, exclude=np.array([[0, 1]]))


L, K = 8, 3
CFG = ImputerConfig(window=L, k=K, d_model=8, depth=1, heads=2, use_copying=True)


def copying_batch(b: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y1, y2 = torch.randint(0, 2, (b, L), generator=g), torch.randint(0, 2, (b, L), generator=g)
    mask = torch.zeros(b, L, dtype=torch.bool)
    mask[:, ::2] = True
    return {"hap_1": y1.masked_fill(mask, rl.MASK_TOKEN), "hap_2": y2.masked_fill(mask, rl.MASK_TOKEN),
            "y1": y1, "y2": y2, "mask": mask, "pos": torch.linspace(0, 1, L).expand(b, L).contiguous(),
            "af": torch.full((b, L), 0.3), "rag_seg_h1": torch.randint(0, 2, (b, K, L), generator=g),
            "rag_seg_h2": torch.randint(0, 2, (b, K, L), generator=g),
            "rag_dist_h1": torch.rand(b, K, generator=g), "rag_dist_h2": torch.rand(b, K, generator=g),
            "rag_match_h1": torch.rand(b, K, L, 2, generator=g), "rag_match_h2": torch.rand(b, K, L, 2, generator=g),
            "copying_h1": torch.rand(b, L, generator=g), "copying_h2": torch.rand(b, L, generator=g)}


def test_untrained_imputer_predicts_close_to_the_copying_model_and_reads_it():
    torch.manual_seed(0)
    model = BertRagImputer(CFG).eval()
    batch = copying_batch()
    p1, _ = model.alt_probability(batch)
    ls = batch["copying_h1"]
    assert torch.allclose(p1, ls, atol=0.05)  # the near-silent head adds at most a small correction
    flipped = model.alt_probability(dict(batch, copying_h1=1 - ls))[0]
    assert torch.allclose(flipped, 1 - ls, atol=0.05)
    with pytest.raises(KeyError, match="use_copying needs copying_h1"):
        model.alt_probability({k: v for k, v in batch.items() if not k.startswith("copying")})


class CopyingOnlyAtTheHead(BertRagImputer):
    """A broken imputer: the copying posterior reaches the logits but never the network's representation."""

    def encode(self, tokens, pos, af, rag, rag_dist, rag_match=None, copying=None, **kw):
        return super().encode(tokens, pos, af, rag, rag_dist, rag_match, **kw)


def test_contract_passes_the_design_and_refuses_a_model_that_skips_the_copying_input():
    batch = copying_batch()
    ok = rl.ReconObjective(BertRagImputer(CFG), "B", 5.0)
    report = train.check_contract(ok, batch, ok.weights())
    assert report["grad_norms"]["hap1"]["copying residual"] > 0
    assert report["grad_norms"]["recon1"]["copying"] > 0
    assert ok.gated_terms() == {"hap1", "hap2"}  # focal allele terms start flat: checked for reach, not size
    assert rl.ReconObjective(BertRagImputer(CFG), "B", 0.0).gated_terms() == set()
    plain = dict(CFG.__dict__, use_copying=False)
    assert rl.ReconObjective(BertRagImputer(ImputerConfig(**plain)), "B", 5.0).gated_terms() == set()
    broken = rl.ReconObjective(CopyingOnlyAtTheHead(CFG), "B", 5.0)
    with pytest.raises(ContractError, match="sends no gradient to 'copying'"):
        train.check_contract(broken, batch, broken.weights())


def test_the_best_arm_is_judged_against_the_copying_model_by_its_seed_noise():
    import pandas as pd

    from latentlab.recon import pipeline as recon

    def summary(mean: float, sd: float, n: int) -> pd.DataFrame:
        rows = [{"arm": "C", "gamma": 2.5, "n_seeds": n, "f1_common_mean": mean, "f1_common_sd": sd,
                 "f1_rare_mean": 0.95, "f1_overall_mean": mean},
                {"arm": recon.COPYING, "gamma": float("nan"), "n_seeds": 1, "f1_common_mean": 0.980,
                 "f1_common_sd": float("nan"), "f1_rare_mean": 0.95, "f1_overall_mean": 0.98}]
        return pd.DataFrame(rows)

    assert recon.beagle_gap(summary(0.9790, 0.0002, 3))["copying_gain_verdict"].startswith("a loss beyond seed noise")
    assert recon.beagle_gap(summary(0.9797, 0.0002, 3))["copying_gain_verdict"].startswith("within seed noise")
    assert recon.beagle_gap(summary(0.9850, 0.0010, 3))["copying_gain_verdict"].startswith("a gain beyond seed noise")
    assert recon.beagle_gap(summary(0.9850, float("nan"), 1))["copying_gain_verdict"].startswith("not tested: 1 seed")
