"""Study 3 end to end: parameters, metrics on hand cases, windows/retrieval truth, one tiny run, Beagle."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from latentlab.params import ParameterError
from latentlab.recon import data as hp
from latentlab.recon import pipeline as recon


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("recon")
    params = recon.ReconParams.from_preset("quick", output_dir=str(out), n_panel=30, n_target=6, length_bp=60_000,
                                           window=16, epochs=2, progress=False, arms=["A", "C"], gammas=[5.0])
    data, paths = recon.load(params)
    return params, data, paths, recon.prepare(data, params)


def test_params_validation():
    with pytest.raises(ParameterError, match="unknown parameter"):
        recon.ReconParams.from_preset("quick", n_layers=3)
    with pytest.raises(ParameterError, match="arms"):
        recon.ReconParams.from_preset("quick", arms=["A", "Z"])
    with pytest.raises(ParameterError, match="d_model"):
        recon.ReconParams.from_preset("quick", d_model=30, heads=4)
    std = recon.ReconParams.from_preset("standard")
    assert len(std.runs()) == 5 * 2 * 3  # every arm × both γ × 3 seeds
    quick = recon.ReconParams.from_preset("quick")
    assert sorted({(a, g) for a, g, _ in quick.runs()}) == sorted(
        [(a, 5.0) for a in "ABCDE"] + [("A", 2.5), ("C", 2.5)])


def test_alt_f1_hand_computed():
    pred = np.array([2, 1, 0, 1])
    true = np.array([1, 1, 1, 0])
    # TP = 1 + 1 = 2, FP = 1 + 1 = 2, FN = 1 → F1 = 4 / 7
    assert recon.alt_f1(pred, true) == pytest.approx(4 / 7)
    assert recon.alt_f1(true, true) == 1.0


def test_score_splits_rare_and_common():
    truth = np.array([[1, 0, 2], [0, 1, 1]])
    calls = np.array([[1, 0, 0], [0, 1, 1]])  # the only error is on the common site (2 → 0)
    maf = np.array([0.01, 0.02, 0.3])
    s = recon.score(calls.astype(float), calls, truth, maf, np.ones(3, bool))
    assert s["f1_rare"] == 1.0 and s["f1_common"] == pytest.approx(2 * 1 / (2 * 1 + 2))


def test_windows_mask_and_exclude_self(tiny):
    params, data, _, prep = tiny
    ws = prep.train
    masked = ws.hap == hp.MASK
    assert np.all(masked == ~data.array[ws.site][:, None, :])
    assert np.all(ws.hap[~masked] == ws.y[~masked]), "observed tokens must equal the truth"
    # a training haplotype never retrieves its own copy: the distance-0 self match is excluded,
    # so at least one masked site differs between the query and its retrieved set for most windows
    same = (ws.rag == ws.y[:, :, None, :]).all(axis=-1).any(axis=-1)
    assert same.mean() < 1.0


def test_retrieval_recovers_masked_alleles_of_panel_copies(tiny):
    """Truth: a target that *is* a panel individual retrieves its haplotypes at distance 0, carrying every masked allele."""
    params, data, _, _ = tiny
    copies = data.panel.haps[:2]  # rows 0-3: at most 3 lower-index ties, k = 4 keeps the copy in the top k
    ws = recon.build_windows(copies, data.panel.flat(), data.array, data.panel.positions, params.window, params.k)
    assert np.all(ws.dist[:, :, 0] == 0)
    top = ws.rag[:, :, 0, :]
    hit = (ws.rag == ws.y[:, :, None, :]).all(axis=-1).any(axis=-1)
    assert hit.all() and top.shape == ws.y.shape


def test_tiny_ablation_run_and_user_directory(tiny, tmp_path):
    params, data, paths, prep = tiny
    run = recon.train_arm(prep, params, "A", 5.0, 0)
    m = run.metrics
    for key in ("f1_overall", "f1_rare", "f1_common", "cos_hap_after", "cos_shared", "util_final", "switches"):
        assert key in m
    assert 0 <= m["f1_overall"] <= 1 and np.isfinite(m["cos_shared"])
    assert m["switches"] == len(run.switches)
    assert {"weight_recon1", "conflict_cos_hap_after", "util_g5", "val_f1"} <= set(run.history.columns)
    vote = recon.retrieval_vote(prep)
    assert 0 < vote["f1_overall"] <= 1
    summary = recon.summary_table(recon.ablation_table([run], None, vote))
    assert set(summary["arm"]) == {"A", recon.VOTE} and (summary["n_seeds"] == 1).all()
    fake_beagle = summary[summary["arm"] == recon.VOTE].assign(arm="Beagle 5.4")
    gap = recon.beagle_gap(pd.concat([summary, fake_beagle]))
    assert gap["best_arm"] == "A", "reference rows must never be picked as the best arm"
    # the same VCFs as a user directory load to the same data
    user = recon.ReconParams.from_preset("quick", data=str(paths["panel"].parent), output_dir=str(tmp_path))
    again, _ = recon.load(user)
    np.testing.assert_array_equal(again.panel.haps, data.panel.haps)


@pytest.mark.skipif(shutil.which("beagle") is None, reason="Beagle 5.4 (Debian `beagle`) not installed")
def test_beagle_on_same_files(tiny, tmp_path):
    params, data, paths, prep = tiny
    res = recon.run_beagle(paths, prep, tmp_path)
    assert res["available"] and res["metrics"]["f1_common"] > 0.8
    assert res["seconds"] > 0


def test_beagle_absent_is_reported(tiny, tmp_path, monkeypatch):
    params, data, paths, prep = tiny
    monkeypatch.setattr(recon.shutil, "which", lambda name: None)
    res = recon.run_beagle(paths, prep, tmp_path)
    assert res == {"available": False, "reason": res["reason"]} and "skipped" in res["reason"]
    assert "Beagle 5.4" not in set(recon.ablation_table([], res).get("arm", []))
