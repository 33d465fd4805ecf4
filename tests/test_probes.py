"""Truth first: the probe reports chance when there is no chip effect, leakage when there is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentlab.h2 import pipeline as h2
from latentlab.h2.probes import SplitError, holdout_split, random_split, run_probe


def simulated_embeddings(chip_effect: float, *, ae: bool = False):
    params = h2.H2Params.from_preset("quick", n_cells=800, n_genes=300, chip_effect=chip_effect,
                                     library_shift=chip_effect, epochs=8, progress=False, output_dir="unused")
    sim = h2.scrna.simulate_counts(h2.scrna.ScrnaSimulation(
        n_cells=params.n_cells, n_genes=params.n_genes, chip_effect=chip_effect, library_shift=chip_effect, seed=4))
    adata = h2.preprocess(sim, params)
    z = h2.ae_embedding(adata, params)[0] if ae else h2.pca_embedding(adata, params)
    return adata, z


@pytest.mark.parametrize("kind", ["linear", "knn"])
def test_no_chip_effect_gives_chance(kind):
    adata, z = simulated_embeddings(0.0)
    split = holdout_split(adata.obs["Group"], adata.obs["Sample"], "36")
    result = run_probe(z, adata.obs["Group"], split, kind=kind, n_boot=300, n_perm=20, seed=0)
    low, high = result.ci["roc_auc"]
    assert low < 0.5 < high, f"{kind} probe claims leakage where there is none: CI {low:.3f}-{high:.3f}"
    assert result.null["roc_auc"][2] > 0.05  # not significant against its own permutation null


@pytest.mark.parametrize("embedding", ["pca", "ae"])
def test_strong_chip_effect_is_found_on_the_held_out_sample(embedding):
    adata, z = simulated_embeddings(1.0, ae=embedding == "ae")
    split = holdout_split(adata.obs["Group"], adata.obs["Sample"], "36")
    result = run_probe(z, adata.obs["Group"], split, kind="linear", n_boot=100, n_perm=10, seed=0)
    assert result.metrics["roc_auc"] > 0.95
    assert result.null["roc_auc"][0] == pytest.approx(0.5, abs=0.1)
    assert result.null["roc_auc"][2] < 0.1


def test_random_split_is_stratified_80_20():
    labels = pd.Series(["a"] * 80 + ["b"] * 20, name="Group")
    split = random_split(labels, seed=0)
    assert len(split.test) == 20 and (labels.iloc[split.test] == "b").sum() == 4


def test_holdout_that_empties_a_class_is_an_error():
    labels = pd.Series(["chip1"] * 10 + ["chip1", "chip2"] * 5, name="Group")
    condition = pd.Series(["36"] * 10 + ["27"] * 10, name="Sample")
    with pytest.raises(SplitError, match=r"holdout Sample=36' leaves no Group=\['chip2'\] cells in the test set"):
        holdout_split(labels, condition, "36")
    with pytest.raises(SplitError, match=r"holdout Sample=27' leaves no Group=\['chip2'\] cells in the train set"):
        holdout_split(labels, condition, "27")


def test_unknown_holdout_value_is_an_error():
    with pytest.raises(SplitError, match=r"Sample='99': no such value"):
        holdout_split(pd.Series(["a", "b"]), pd.Series(["1", "2"], name="Sample"), "99")


def test_multiclass_probe_reports_macro_scores():
    rng = np.random.default_rng(0)
    y = pd.Series(rng.choice(["G1", "S", "G2M"], 300), name="phase")
    z = rng.normal(size=(300, 4)) + (y == "S").to_numpy()[:, None] * 3
    result = run_probe(z, y, random_split(y, seed=0), n_boot=20, n_perm=5)
    assert 0 <= result.metrics["f1"] <= 1 and result.metrics["roc_auc"] > 0.6


def test_p_value_floor_is_reported_with_the_table():
    """With n permutations p cannot go below 1/(n+1): a strong signal lands exactly there, and says so."""
    rng = np.random.default_rng(1)
    y = pd.Series(rng.choice(["chip1", "chip2"], 400), name="Group")
    z = rng.normal(size=(400, 3)) + (y == "chip2").to_numpy()[:, None] * 3
    table = run_probe(z, y, random_split(y, seed=0), n_boot=50, n_perm=20).table()
    auc = table.set_index("metric").loc["roc_auc"]
    assert auc.n_perm == 20 and auc.p_floor == pytest.approx(1 / 21) and auc.p_value == pytest.approx(1 / 21)
    verdicts = h2.leakage_verdicts(table.assign(embedding="toy"))
    assert verdicts.p_at_floor.all() and "p ≤ 0.048 (its floor with 20 permutations)" in verdicts.evidence[0]
    weak = run_probe(rng.normal(size=(400, 3)), y, random_split(y, seed=0), n_boot=50, n_perm=20).table()
    assert not h2.leakage_verdicts(weak.assign(embedding="toy")).p_at_floor.any()


def _looped_bootstrap(y, proba, classes, n_boot, seed):
    """The per-resample sklearn loop the vectorised bootstrap replaces (the reference it must equal)."""
    from latentlab.h2.probes import METRICS, score

    rng = np.random.default_rng(seed)
    draws = {m: [] for m in METRICS}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        for m, v in score(y[idx], proba[idx], classes).items():
            draws[m].append(v)
    return {m: np.asarray(v, dtype=float) for m, v in draws.items()}


@pytest.mark.parametrize("n, ties", [(301, False), (40, True), (6, True)])
def test_vectorised_bootstrap_equals_the_sklearn_loop(n, ties):
    """Every resample's accuracy, balanced accuracy, AUC (with tied scores) and F1 as sklearn scores it;
    tiny n gives one-class resamples (AUC NaN, balanced accuracy over the class present)."""
    from latentlab.h2.probes import _binary_bootstrap_scores

    rng = np.random.default_rng(5)
    classes = np.array(["a", "b"])
    y = classes[(rng.random(n) < 0.35).astype(int)]
    p1 = np.round(rng.random(n), 1) if ties else rng.random(n)
    proba = np.column_stack([1 - p1, p1])
    proba[0] = 0.5  # an exact argmax tie: the first class wins, as np.argmax
    expected = _looped_bootstrap(y, proba, classes, 200, seed=9)
    got = _binary_bootstrap_scores(y, proba, classes, np.random.default_rng(9).integers(0, n, (200, n)), chunk=7)
    for metric, values in expected.items():
        np.testing.assert_allclose(got[metric], values, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=metric)
    assert np.isnan(expected["roc_auc"]).any() == (n == 6)


@pytest.mark.parametrize("kind", ["linear", "knn"])
def test_permutation_null_equals_refitting_the_whole_probe_each_time(kind):
    """The cached scaler / neighbours give the very numbers a full refit per permutation gives."""
    from latentlab.h2.probes import METRICS, Split, _permutation_null, make_probe, score

    rng = np.random.default_rng(2)
    z = rng.normal(size=(150, 5)) * [1, 5, 0.1, 2, 1]
    classes = np.array(["x", "y", "z"])
    y = classes[rng.integers(0, 3, 150)]
    split = Split("s", np.arange(100), np.arange(100, 150))
    observed = dict.fromkeys(METRICS, 0.5)
    got, scored = _permutation_null(z, y, split, classes, kind, observed, 15, seed=4)
    shuffles = np.random.default_rng(5)
    draws = {m: [] for m in METRICS}
    for _ in range(15):
        shuffled = shuffles.permutation(y[split.train])
        proba = make_probe(kind, 4).fit(z[split.train], shuffled).predict_proba(z[split.test])
        for m, v in score(y[split.test], proba, classes).items():
            draws[m].append(v)
    assert scored == 15
    for m in METRICS:
        v = np.asarray(draws[m])
        expected = (np.nanmean(v), np.nanstd(v), (1 + np.sum(v >= 0.5)) / 16)
        np.testing.assert_allclose(got[m], expected, rtol=1e-12, err_msg=m)
