"""Study 1 step functions end to end on small data: simulated, each-holdout, and real pbmc68k."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latentlab.h2 import pipeline as h2
from latentlab.h2 import plots
from latentlab.h2.probes import SplitError


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




# --------------------------------------------------------------------------- columns, checked at load time


def test_empty_condition_key_means_no_condition_column(tmp_path):
    params = small_params(tmp_path, condition_key="")
    adata = h2.load(params)
    assert [s.name for s in h2.make_splits(adata, params)] == ["random"]
    assert list(h2.describe_design(adata, params).columns) == ["cells"]
    assert any("held-out-condition split" in item for item in h2.skipped_measures(params))


def test_a_missing_biology_column_fails_at_load_naming_the_parameter(tmp_path):
    params = small_params(tmp_path, biology_key="celltype")
    with pytest.raises(h2.scrna.DataError, match=r"no cell metadata column 'celltype' for biology_key; set -p "
                                                  r"biology_key to one of \['cell_type', 'Sample', 'Group'\]"):
        h2.load(params)


def test_a_missing_holdout_value_fails_at_load(tmp_path):
    with pytest.raises(SplitError, match=r"set -p holdout to one of \['27', '30', '34', '36'\] or 'each'"):
        h2.load(small_params(tmp_path, holdout="99"))


def test_a_run_without_biology_column_uses_knn_agreement_and_says_so(tmp_path):
    params = small_params(tmp_path, biology_key="")
    adata = h2.preprocess(h2.load(params), params)
    h2.add_expression_reference(adata, params)
    splits = h2.make_splits(adata, params)
    reference = {"PCA": h2.pca_embedding(adata, params), "AE": h2.ae_embedding(adata, params)[0]}
    tradeoff, _, _ = h2.mitigation_sweep(adata, params, splits[-1], reference)
    assert "biology_accuracy" not in tradeoff and h2.biology_measure(tradeoff) == "knn_agreement"
    verdict = h2.mitigation_verdict(tradeoff)
    assert set(verdict.biology_measure) == {"knn_agreement"}
    plots.tradeoff(tradeoff, biology=h2.biology_measure(tradeoff)).to_dict(format="vega")  # VegaFusion prepares the data
    scib_rows = h2.batch_metric_table(adata, {"PCA": reference["PCA"]}, params)
    assert np.isfinite(scib_rows.batch_asw.iloc[0])
    leakage, _ = h2.leakage_table(adata, reference, splits, params)
    lines = h2.conclusions(h2.leakage_verdicts(leakage), tradeoff, verdict, params)
    assert any("cell-type probe accuracy and k-means ARI (biology_key is empty)" in line for line in lines)
    metrics = h2.summary_metrics(leakage, tradeoff, verdict, h2.pd.DataFrame(), seconds=1.0)
    assert "knn_agreement" in metrics and "biology_accuracy" not in metrics


# --------------------------------------------------------------------------- Harmony on a strong chip effect


def harmony_case(tmp_path, chip_effect, library_shift, **overrides):
    params = small_params(tmp_path, n_cells=1200, n_genes=1000, chip_effect=chip_effect,
                          library_shift=library_shift, **overrides)
    sim = h2.scrna.simulate_counts(h2.scrna.ScrnaSimulation(n_cells=1200, n_genes=1000, chip_effect=chip_effect,
                                                            library_shift=library_shift, seed=0))
    adata = h2.preprocess(sim, params)
    split = h2.holdout_split(adata.obs["Group"], adata.obs["Sample"], "36")

    def auc(z):
        return h2.run_probe(z, adata.obs["Group"], split, n_boot=0, n_perm=0).metrics["roc_auc"]

    z_pca = h2.pca_embedding(adata, params)
    z_harmony = h2.baseline_embedding(adata, params, "harmony")
    biology = h2.run_probe(z_harmony, adata.obs["cell_type"], split, n_boot=0, n_perm=0).metrics["accuracy"]
    return auc(z_pca), auc(z_harmony), biology, adata.uns["harmony"]


def test_harmony_removes_most_of_a_strong_chip_effect(tmp_path):
    pca_auc, harmony_auc, biology, run = harmony_case(tmp_path, 0.6, 0.3)
    assert pca_auc > 0.99  # a strong effect: PCA gives the chip away completely
    assert harmony_auc < 0.8 and biology > 0.95, (harmony_auc, biology)
    assert run["iterations"] > 1 and run["mean_shift"] > 0.3


def test_harmony_is_not_stopped_after_one_iteration_by_a_flat_first_step(tmp_path):
    """harmonypy's default tolerance (1e-2) ends after one iteration when chips do not overlap at all,
    returning PCA almost unchanged — the reported 'AUC 1.0, scores ≈ PCA'."""
    import harmonypy

    pca_auc, harmony_auc, _, run = harmony_case(tmp_path, 1.0, 1.0, harmony_theta=4.0)
    assert run["iterations"] > 5 and run["mean_shift"] > 0.5
    assert pca_auc == 1.0 and harmony_auc < 0.9, harmony_auc
    default = harmonypy.run_harmony(np.zeros((50, 2)) + np.arange(50)[:, None] % 2, h2.pd.DataFrame(
        {"b": ["x", "y"] * 25}), ["b"], verbose=False)
    assert np.asarray(default.Z_corr).shape == (50, 2)  # this harmonypy returns cells × dims


# --------------------------------------------------------------------------- conclusions from the numbers


def run_to_conclusions(tmp_path, chip_effect: float):
    params = small_params(tmp_path, n_cells=600, n_genes=300, chip_effect=chip_effect, library_shift=chip_effect,
                          epochs=4, n_boot=100, n_perm=20, mitigations=[], probes=["linear"])
    adata = h2.preprocess(h2.load(params), params)
    h2.add_expression_reference(adata, params)
    splits = h2.make_splits(adata, params)
    embeddings = {"PCA": h2.pca_embedding(adata, params), "AE": h2.ae_embedding(adata, params)[0]}
    leakage, _ = h2.leakage_table(adata, embeddings, splits, params)
    verdicts = h2.leakage_verdicts(leakage)
    reference = {**embeddings, "harmony": h2.baseline_embedding(adata, params, "harmony")}
    tradeoff, _, _ = h2.mitigation_sweep(adata, params, splits[-1], reference)
    verdict = h2.mitigation_verdict(tradeoff)
    lines = h2.conclusions(verdicts, tradeoff, verdict, params, truth=adata.uns["simulation"],
                           harmony=adata.uns["harmony"])
    return verdicts, lines


@pytest.mark.parametrize("chip_effect, expected", [(0.0, "chance"), (0.8, "leakage")])
def test_conclusions_follow_the_numbers_and_agree_with_the_truth(tmp_path, chip_effect, expected):
    verdicts, lines = run_to_conclusions(tmp_path, chip_effect)
    assert h2.overall_verdict(verdicts)["overall"] == expected
    assert lines[0].startswith(f"Verdict (holdout Sample=36, linear probe): **{expected}**")
    pca = verdicts.query("embedding == 'PCA' and probe == 'linear' and split == 'holdout Sample=36'").iloc[0]
    assert f"AUC {pca.value:.3f} (95% CI {pca.ci_low:.3f}–{pca.ci_high:.3f})" in lines[0]
    assert any(f"the verdict '{expected}' agrees with it" in line for line in lines)
    assert any(line.startswith("harmony: leakage AUC") for line in lines)
    if expected == "chance":
        assert not any("mitigation bar" in line for line in lines)  # no mitigation trained in this run
    if expected == "leakage":  # 20 permutations cannot beat a strong effect: p sits at 1/21, and is said to
        assert verdicts.query("embedding == 'PCA' and probe == 'linear'").p_at_floor.all()
        assert any("sit at their floor 0.048" in line for line in lines)


def test_verdicts_need_a_ci_and_respect_the_null_band():
    assert h2._verdict(0.9, np.nan, np.nan, 0.5, 0.02) == "not resolved"
    assert h2._verdict(0.9, 0.85, 0.95, 0.5, 0.02) == "leakage"
    assert h2._verdict(0.56, 0.51, 0.6, 0.5, 0.04) == "not resolved"  # above 0.5, inside the null band
    assert h2._verdict(0.5, 0.45, 0.55, 0.5, 0.02) == "chance"
    assert h2._verdict(0.4, 0.35, 0.45, 0.5, 0.02) == "below chance"


def test_the_mitigation_bar_is_said_not_to_apply_when_the_ae_does_not_leak():
    tradeoff = h2.pd.DataFrame([
        {"method": "AE", "weight": 0.0, "label": "AE", "leakage_auc": 0.52, "leakage_auc_low": 0.45,
         "leakage_auc_high": 0.6, "leakage_excess": 0.02, "leakage_knn_auc": 0.5, "biology_accuracy": 0.99},
        {"method": "mmd", "weight": 0.3, "label": "mmd w=0.3", "leakage_auc": 0.5, "leakage_auc_low": 0.44,
         "leakage_auc_high": 0.57, "leakage_excess": 0.0, "leakage_knn_auc": 0.5, "biology_accuracy": 0.98}])
    notes = h2._mitigation_notes(tradeoff, h2.mitigation_verdict(tradeoff), None)
    assert notes == ["The plain AE leaks too little (|AUC − 0.5| = 0.020) for a mitigation to cut it by 0.2: the "
                     "mitigation bar does not apply to this run."]


def test_parallel_mitigations_equal_a_single_thread_serial_run(tmp_path, monkeypatch):
    """With T torch threads the mitigations train T at a time, each on one thread: the same numbers, bit for
    bit, as training them one after another on one thread (only the timing column differs)."""
    import torch

    params = small_params(tmp_path, mitigations=["mmd", "adversarial"],
                          penalty_weights={"mmd": [0.3], "adversarial": [0.1]}, device="cpu")
    adata = h2.preprocess(h2.load(params), params)
    split = h2.make_splits(adata, params)[-1]
    reference = {"PCA": h2.pca_embedding(adata, params)}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert h2.mitigation_workers(params, 2) == 1
        serial = h2.mitigation_sweep(adata, params, split, reference)
        torch.set_num_threads(2)
        monkeypatch.setattr(h2.os, "cpu_count", lambda: 2)
        assert h2.mitigation_workers(params, 2) == 2
        parallel = h2.mitigation_sweep(adata, params, split, reference)
    finally:
        torch.set_num_threads(threads)
    assert list(serial[1]) == list(parallel[1]) == ["PCA", "mmd w=0.3", "adversarial w=0.1"]
    for label in serial[1]:
        np.testing.assert_array_equal(serial[1][label], parallel[1][label])
    h2.pd.testing.assert_frame_equal(serial[0].drop(columns="seconds"), parallel[0].drop(columns="seconds"))
    h2.pd.testing.assert_frame_equal(serial[2].drop(columns="seconds"), parallel[2].drop(columns="seconds"))


def test_plain_ae_trains_on_one_thread_whatever_the_kernels_count(tmp_path):
    """In a 2-thread kernel the plain AE trains on one torch thread: the same numbers, bit for bit, as a
    1-thread kernel's, and the kernel's thread count is back afterwards."""
    import torch

    params = small_params(tmp_path, device="cpu", n_cells=600, n_genes=1000, epochs=2)  # 2 threads differ here
    adata = h2.preprocess(h2.load(params), params)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        z_one, history_one = h2.ae_embedding(adata, params)
        torch.set_num_threads(2)
        z_two, history_two = h2.ae_embedding(adata, params)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(z_one, z_two)
    h2.pd.testing.assert_frame_equal(history_one.drop(columns="seconds"), history_two.drop(columns="seconds"))
