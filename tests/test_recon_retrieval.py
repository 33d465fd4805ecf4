"""Study 3 retrieval, scoring and verdicts on hand-built cases: match extents, per-site r², dosage VCF, rules of evidence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from latentlab.params import ParameterError
from latentlab.recon import data as hp
from latentlab.recon import pipeline as recon
from latentlab.recon import retrieval as mt

# 12 sites at 100, 200, ..., 1200 bp; sites 1, 4, 7, 10 are typed (positions 200, 500, 800, 1100)
POS = np.arange(1, 13) * 100
TYPED = np.zeros(12, bool)
TYPED[[1, 4, 7, 10]] = True


def panel_and_query():
    query = np.zeros((1, 12), np.int8)
    panel = np.zeros((4, 12), np.int8)
    panel[0, [1, 10]] = 1  # mismatches at 200 and 1100: matches 500..800 only
    panel[1, 10] = 1  # mismatch at 1100 only: matches from the left end to 800
    panel[2, 1] = 1  # mismatch at 200 only: matches 500 to the right end
    panel[3, 7] = 1  # mismatch at 800, inside the window
    return query, panel


def test_match_extents_hand_computed():
    query, panel = panel_and_query()
    # one window of 4 sites: 400, 500, 600, 700 bp (centre 550); flank 1,000 bp
    found = mt.retrieve_matches(query, panel, TYPED, POS, np.array([3]), 4, 4, flank_bp=1000)
    # around 550: hap 0 spans (200, 1100) → 350 + 550 = 900; hap 1 (−∞ cap 1000, 1100) → 1000 + 550;
    # hap 2 (200, +∞ cap 1000) → 350 + 1000; hap 3 (−∞, 800) → 1000 + 250
    assert list(found.index[0, 0]) == [1, 2, 3, 0]
    np.testing.assert_allclose(found.score_bp[0, 0], [1550, 1350, 1250, 900])
    # per-site extents of hap 3 (mismatch at 800): left is capped by the flank, right = 800 − site
    k3 = list(found.index[0, 0]).index(3)
    np.testing.assert_allclose(found.left_bp[0, 0, k3], [1000] * 4)
    np.testing.assert_allclose(found.right_bp[0, 0, k3], [400, 300, 200, 100])
    # hap 0 at site 500 (typed, matching): left to the mismatch at 200 → 300; right to 1100 → 600
    k0 = list(found.index[0, 0]).index(0)
    assert found.left_bp[0, 0, k0, 1] == 300 and found.right_bp[0, 0, k0, 1] == 600


def test_mismatch_at_a_typed_site_gives_zero_extent_there():
    query, panel = panel_and_query()
    found = mt.retrieve_matches(query, panel, TYPED, POS, np.array([6]), 4, 4, flank_bp=1000)  # sites 700..1000
    k3 = list(found.index[0, 0]).index(3)
    assert found.left_bp[0, 0, k3, 1] == 0 and found.right_bp[0, 0, k3, 1] == 0  # site 800 mismatches


def test_exclude_and_k_limits():
    query, panel = panel_and_query()
    found = mt.retrieve_matches(query, panel, TYPED, POS, np.array([3]), 4, 2, flank_bp=1000,
                                exclude=np.array([[1]]))
    assert 1 not in found.index[0, 0] and list(found.index[0, 0]) == [2, 3]
    with pytest.raises(ValueError, match="exceeds"):
        mt.retrieve_matches(query, panel, TYPED, POS, np.array([3]), 4, 4, flank_bp=1000, exclude=np.array([[1]]))
    with pytest.raises(ValueError, match="no observed"):
        mt.retrieve_matches(query, panel, np.zeros(12, bool), POS, np.array([3]), 4, 2, flank_bp=1000)


def test_extents_of_equal_retrieval_extents_for_the_same_rows():
    query, panel = panel_and_query()
    found = mt.retrieve_matches(query, panel, TYPED, POS, np.array([0, 3, 6]), 4, 3, flank_bp=500)
    left, right = mt.extents_of(query, panel, TYPED, POS, np.array([0, 3, 6]), 4, found.index, flank_bp=500)
    np.testing.assert_array_equal(left, found.left_bp)
    np.testing.assert_array_equal(right, found.right_bp)


def _reference_runs(query, panel):
    """The first version's tables: last mismatch <= m (-1 if none), first >= m (M if none), mismatches before m."""
    n_markers = query.shape[1]
    mism = query[:, None, :] != panel[None, :, :]
    idx = np.arange(n_markers)
    last = np.maximum.accumulate(np.where(mism, idx, -1), axis=2)
    nxt = np.minimum.accumulate(np.where(mism, idx, n_markers)[:, :, ::-1], axis=2)[:, :, ::-1]
    cum = np.concatenate([np.zeros(mism.shape[:2] + (1,), int), np.cumsum(mism, axis=2)], axis=2)
    return last, nxt, cum


def _reference_extent(last, nxt, marker_pos, points, flank_bp):
    n_markers = len(marker_pos)
    left_i = np.searchsorted(marker_pos, points, side="right") - 1
    right_i = np.searchsorted(marker_pos, points, side="left")
    lm = np.where(left_i >= 0, np.take(last, np.clip(left_i, 0, n_markers - 1), axis=-1), -1)
    rm = np.where(right_i < n_markers, np.take(nxt, np.clip(right_i, 0, n_markers - 1), axis=-1), n_markers)
    pos_ext = np.concatenate([[-np.inf], marker_pos, [np.inf]])
    return np.minimum(points - pos_ext[lm + 1], flank_bp), np.minimum(pos_ext[rm + 1] - points, flank_bp)


def _reference_retrieval(query, panel, observed, positions, starts, window, k, flank_bp, exclude=None):
    """The first, direct version: a stable full sort of every panel row, per-site extents window by window."""
    marker_pos = positions[observed].astype(np.float64)
    site_pos = positions[starts[:, None] + np.arange(window)].astype(np.float64)
    centre = (site_pos[:, 0] + site_pos[:, -1]) / 2
    lo = np.searchsorted(marker_pos, centre - flank_bp, side="left")
    hi = np.searchsorted(marker_pos, centre + flank_bp, side="right")
    last, nxt, cum = _reference_runs(query[:, observed], panel[:, observed])
    cl, cr = _reference_extent(last, nxt, marker_pos, centre, flank_bp)
    length = cl + cr
    hamming = np.take(cum, hi, axis=-1) - np.take(cum, lo, axis=-1)
    key = length - hamming / (hamming.max() + 1.0) * 0.5
    if exclude is not None:
        np.put_along_axis(key, exclude[:, :, None].repeat(len(starts), axis=2), -np.inf, axis=1)
    top = np.argsort(-key, axis=1, kind="stable")[:, :k, :].transpose(0, 2, 1)
    q_idx = np.arange(len(query))[:, None]
    ext = [_reference_extent(last[q_idx, top[:, w]], nxt[q_idx, top[:, w]], marker_pos, site_pos[w], flank_bp)
           for w in range(len(starts))]
    return top, np.stack([e[0] for e in ext], axis=1), np.stack([e[1] for e in ext], axis=1)


@pytest.mark.parametrize("typed_share", [0.03, 0.3, 0.8])  # 0.8: > 255 markers, int16 tables
def test_fast_retrieval_equals_the_direct_stable_sort_with_many_ties(typed_share):
    """Top-k by packed integer keys + vectorised extents = the direct version, ties broken by panel order alike."""
    rng = np.random.default_rng(5)
    n_sites, panel_n = 400, 60
    founders = rng.integers(0, 2, (6, n_sites)).astype(np.int8)  # few founders: many exact ties on typed markers
    panel = founders[rng.integers(0, 6, panel_n)]
    panel[rng.random(panel.shape) < 0.01] ^= 1
    query = founders[rng.integers(0, 6, 7)].copy()
    observed = rng.random(n_sites) < typed_share
    observed[[0, 200]] = True
    positions = np.cumsum(rng.integers(1, 400, n_sites)) + 1000
    starts = hp.window_starts(n_sites, 32)
    exclude = rng.choice(panel_n, (7, 2))
    for k, flank, ex in ((5, 20_000, None), (8, 3_000, exclude), (panel_n - 2, 20_000, exclude)):
        found = mt.retrieve_matches(query, panel, observed, positions, starts, 32, k, flank_bp=flank, exclude=ex,
                                    chunk=3)
        top, left, right = _reference_retrieval(query, panel, observed, positions, starts, 32, k, flank, ex)
        np.testing.assert_array_equal(found.index, top)
        np.testing.assert_array_equal(found.left_bp, left)
        np.testing.assert_array_equal(found.right_bp, right)


def test_build_windows_both_modes_and_unknown_mode():
    rng = np.random.default_rng(0)
    panel = rng.integers(0, 2, (20, 12)).astype(np.int8)
    query = panel[:2].reshape(1, 2, 12).copy()  # an individual made of panel rows 0 and 1
    for mode in recon.RETRIEVAL_MODES:
        ws = recon.build_windows(query, panel, TYPED, POS, 4, 3, retrieval=mode, flank_bp=1000)
        assert ws.rag.shape == (3, 2, 3, 4) and ws.match.shape == (3, 2, 3, 4, 2)
        assert np.all(ws.dist[:, :, 0] == 0), f"{mode}: the copy itself is at distance 0"
        assert np.all((ws.match >= 0) & (ws.match <= 1.001))
    with pytest.raises(ValueError, match="choose one of"):
        recon.build_windows(query, panel, TYPED, POS, 4, 3, retrieval="pbwt2")


def test_per_site_r2_hand_computed():
    truth = np.array([[0, 1, 0], [1, 1, 2], [2, 1, 0]])
    dosage = np.array([[0.0, 0.2, 0.5], [1.0, 0.9, 0.5], [2.0, 1.5, 0.5]])
    r2 = recon.per_site_r2(dosage, truth)
    assert r2[0] == pytest.approx(1.0)
    assert math.isnan(r2[1]), "truth constant: r² undefined"
    assert r2[2] == 0.0, "dosage constant while the truth varies: no information"
    s = recon.score(dosage, np.rint(dosage).astype(int), truth, np.array([0.3, 0.3, 0.3]), np.ones(3, bool))
    assert s["r2_site_mean"] == pytest.approx(0.5) and s["r2site_0.2-0.5"] == pytest.approx(0.5)


def test_dosage_vcf_round_trip(tmp_path):
    from cyvcf2 import VCF

    h = hp.Haplotypes(["a", "b"], np.array([10, 20, 30]), list("ACG"), list("TTT"),
                      np.zeros((2, 2, 3), np.int8))
    data = hp.ImputationData(h, h, np.array([True, False, False]))
    probs = np.array([[[0.9, 0.2, 0.51], [0.1, 0.0, 0.5]], [[1.0, 0.7, 0.3], [1.0, 0.25, 0.0]]])
    path = recon.write_dosage_vcf(tmp_path / "d.vcf", probs, data)
    vcf = VCF(str(path))
    assert list(vcf.samples) == ["a", "b"]
    recs = list(vcf)
    assert [r.POS for r in recs] == [10, 20, 30] and [r.INFO.get("IMP") for r in recs] == [None, True, True]
    ds = np.stack([r.format("DS")[:, 0] for r in recs], axis=1)
    np.testing.assert_allclose(ds, probs.sum(axis=1), atol=1e-3)
    gt = np.stack([r.genotype.array()[:, :2].sum(axis=1) for r in recs], axis=1)
    np.testing.assert_array_equal(gt, (probs > 0.5).sum(axis=1))
    with pytest.raises(ValueError, match="NaN"):
        recon.write_dosage_vcf(tmp_path / "bad.vcf", np.full_like(probs, np.nan), data)
    assert not (tmp_path / "bad.vcf").exists()


def _summary(rows):
    return pd.DataFrame(rows, columns=["arm", "gamma", "n_seeds", "f1_overall_mean", "f1_overall_sd"])


def test_verdict_one_arm_or_one_seed_is_not_tested():
    one_arm = recon.verdict(_summary([("C", 5.0, 3, 0.9, 0.01)]), 5.0)
    assert one_arm["seed_ranking_confirmed"].startswith("not tested")
    assert one_arm["differences_within_noise"].startswith("not tested")
    one_seed = recon.verdict(_summary([(a, 5.0, 1, f, math.nan) for a, f in zip("CDBA", [0.9, 0.8, 0.7, 0.6], strict=True)]), 5.0)
    assert one_seed["seed_ranking_confirmed"] is not True
    assert one_seed["seed_ranking_confirmed"].startswith("not tested") and one_seed["max_seed_sd"] is None


def test_verdict_decides_only_beyond_noise():
    clear = [(a, 5.0, 3, f, 0.005) for a, f in zip("CDBA", [0.9, 0.85, 0.8, 0.75], strict=True)]
    assert recon.verdict(_summary(clear), 5.0)["seed_ranking_confirmed"] is True
    reversed_ = [(a, 5.0, 3, f, 0.005) for a, f in zip("ABDC", [0.9, 0.85, 0.8, 0.75], strict=True)]
    assert recon.verdict(_summary(reversed_), 5.0)["seed_ranking_confirmed"] is False
    noisy = [(a, 5.0, 3, f, 0.05) for a, f in zip("CDBA", [0.9, 0.89, 0.88, 0.87], strict=True)]
    assert recon.verdict(_summary(noisy), 5.0)["seed_ranking_confirmed"].startswith("not resolved")
    tied_but_e_low = [(a, 5.0, 3, f, 0.001) for a, f in zip("ABCDE", [0.977, 0.977, 0.9772, 0.9771, 0.95],
                                                                strict=True)]
    v = recon.verdict(_summary(tied_but_e_low), 5.0)
    assert v["differences_within_noise"] is False, "E really is lower"
    assert v["seed_ranking_confirmed"].startswith("not resolved"), "E must not decide the order of A-D"


def test_list_parameters_accept_json_text_and_say_how_otherwise():
    p = recon.ReconParams.from_preset("quick", arms='["C", "E"]', gammas="[2.5]")
    assert p.arms == ["C", "E"] and p.gammas == [2.5]
    with pytest.raises(ParameterError, match=r"arms.*-y"):
        recon.ReconParams.from_preset("quick", arms="C")
    with pytest.raises(ParameterError, match="gamma_arms"):
        recon.ReconParams.from_preset("quick", gamma_arms='{"A": 1}')


def test_beagle_gap_reports_issue_12_bars():
    rows = [("C", 2.5, 3, 0.97, 0.001), (recon.VOTE, math.nan, 1, 0.93, math.nan),
            ("Beagle 5.4", math.nan, 1, 0.98, math.nan)]
    summary = _summary(rows).assign(f1_common_mean=[0.975, 0.94, 0.98], f1_rare_mean=[0.90, 0.85, 0.96])
    gap = recon.beagle_gap(summary)
    assert gap["best_arm"] == "C"
    assert gap["vote_gain_common"] == pytest.approx(0.035) and gap["bar_vote_gain_common_met"]
    assert gap["common_gap"] == pytest.approx(0.005) and gap["bar_beagle_common_met"]
    assert gap["rare_gap"] == pytest.approx(0.06) and not gap["bar_beagle_rare_met"]
    no_refs = recon.beagle_gap(summary[summary["arm"] == "C"])
    assert not no_refs["beagle"] and "vote_gain_common" not in no_refs and "common_gap" not in no_refs
