"""Truth first: the probe reports chance when there is no chip effect, leakage when there is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentlab.probes import SplitError, holdout_split, random_split, run_probe
from latentlab.studies import h2


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
