"""Study 1 step functions end to end on small data: simulated, each-holdout, and real pbmc68k."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latentlab import plots
from latentlab.probes import SplitError
from latentlab.studies import h2


def small_params(tmp_path, **overrides):
    base = dict(n_cells=400, n_genes=200, epochs=3, n_boot=20, n_perm=3, progress=False,
                output_dir=str(tmp_path / "run"), mitigations=["mmd"], penalty_weights={"mmd": [0.3]},
                baselines=["harmony"], probes=["linear"])
    return h2.H2Params.from_preset("quick", **{**base, **overrides})


def test_simulated_study_writes_every_output(tmp_path):
    params = small_params(tmp_path)
    adata = h2.preprocess(h2.load(params), params)
    assert (tmp_path / "run/data/X.mtx").exists()  # went through the real 3-file format
    splits = h2.make_splits(adata, params)
    embeddings = {"PCA": h2.pca_embedding(adata, params), "AE": h2.ae_embedding(adata, params)[0]}
    assert all(z.shape == (adata.n_obs, 16) for z in embeddings.values())
    leakage, roc = h2.leakage_table(adata, embeddings, splits, params)
    assert set(leakage.split) == {"random", "holdout Sample=36"}
    assert set(leakage.metric) == {"accuracy", "balanced_accuracy", "roc_auc", "f1"}
    reference = {**embeddings, "harmony": h2.baseline_embedding(adata, params, "harmony")}
    tradeoff, mitigated, history = h2.mitigation_sweep(adata, params, splits[-1], reference)
    assert list(tradeoff.label) == ["PCA", "AE", "harmony", "mmd w=0.3"]
    assert {"train_recon", "train_mmd", "weight_mmd"} <= set(history.columns)
    verdict = h2.mitigation_verdict(tradeoff)
    metrics = h2.summary_metrics(leakage, tradeoff, verdict, h2.pd.DataFrame(), seconds=1.0)
    out = h2.write_outputs(params, metrics=metrics, tables={"leakage": leakage}, history=history,
                           charts={"tradeoff": plots.tradeoff(tradeoff), "roc": plots.roc_curves(roc)})
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["params"]["n_cells"] == 400 and "AE | holdout Sample=36 | roc_auc" in saved["linear_probe"]
    assert {"tradeoff.png", "tradeoff.html", "roc.png", "history.csv", "leakage.csv"} <= {p.name for p in out.iterdir()}


def test_each_sample_held_out_in_turn(tmp_path):
    params = small_params(tmp_path, holdout="each")
    adata = h2.preprocess(h2.load(params), params)
    names = [s.name for s in h2.make_splits(adata, params)]
    assert names == ["random"] + [f"holdout Sample={s}" for s in ("27", "30", "34", "36")]


def test_real_pbmc68k_runs_with_phase_as_context(tmp_path):
    params = small_params(tmp_path, data="pbmc68k", context_key="phase", condition_key="",
                          biology_key="bulk_labels")
    adata = h2.preprocess(h2.load(params), params)
    splits = h2.make_splits(adata, params)
    assert [s.name for s in splits] == ["random"]
    h2.add_expression_reference(adata, params)
    z = h2.pca_embedding(adata, params)
    scores = h2.biology_scores(adata, z, splits[0], params)
    assert scores["biology_accuracy"] > 0.5 and 0 < scores["knn_agreement"] <= 1
    leakage, _ = h2.leakage_table(adata, {"PCA": z}, splits, params)
    auc = leakage.query("metric == 'roc_auc'").value.iloc[0]
    assert np.isfinite(auc)  # three phases: macro one-vs-rest AUC


def test_raw_preprocessing_keeps_counts(tmp_path):
    params = small_params(tmp_path, preprocessing="raw")
    adata = h2.preprocess(h2.load(params), params)
    assert np.all(adata.X.data == np.round(adata.X.data))


def test_missing_holdout_value_fails_before_training(tmp_path):
    params = small_params(tmp_path, holdout="99")
    adata = h2.preprocess(h2.load(params), params)
    with pytest.raises(SplitError, match="Sample=.99.: no such value"):
        h2.make_splits(adata, params)
