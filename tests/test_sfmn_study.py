"""Study 2 steps: K×M batches, LOCO splits, the curriculum, monitors and warnings, evaluation, gate explorer."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from latentlab.params import ParameterError
from latentlab.sfmn import data as epi
from latentlab.sfmn import pipeline as S
from latentlab.sfmn.widgets import GateExplorer, gate_explorer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    params = S.SFMNParams.from_preset(
        "quick", output_dir=str(tmp_path_factory.mktemp("sfmn")), n_cell_lines=5, n_motifs=6, n_enhancers=300,
        n_promoters=120, pairs_per_cell_line=300, enhancer_len=150, promoter_len=120, epochs=4, phase2_epochs=1,
        patience=10, test_cell_lines=["CL01"], progress=False)
    data = S.load(params)
    split = S.loco_splits(data, params)[0]
    inputs = S.PairInputs(data, params.encoder)
    return params, data, split, inputs


@pytest.fixture(scope="module")
def trained(setup):
    params, data, split, inputs = setup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.GateWarning)
        return S.train_model("sfmn", data, inputs, split, params, 0)


def test_params_reject_unknown_names_and_bad_values():
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['gates'\]"):
        S.SFMNParams.from_preset("quick", gates="sigmoid")
    with pytest.raises(ParameterError, match="SFMNParams.gate = 'softmax'"):
        S.SFMNParams.from_preset("quick", gate="softmax")
    with pytest.raises(ParameterError, match="SFMNParams.cells_per_batch"):
        S.SFMNParams.from_preset("quick", cells_per_batch=1)
    assert S.SFMNParams.from_preset("standard").weights == {"align": 0.5, "sparse": 0.1, "entropy": 0.05, "smooth": 0.1}


def test_batches_are_k_cell_lines_by_m_samples_and_repeatable(setup):
    params, data, split, inputs = setup
    cell = inputs.cell.numpy()
    order = S.cell_blocks(split.train_rows, cell, 2, 16, seed=3)
    for idx in order(0):
        blocks = idx.reshape(2, 16)
        assert all(len(set(cell[b])) == 1 for b in blocks)  # cell-line-pure blocks
        assert cell[blocks[0, 0]] != cell[blocks[1, 0]]  # K distinct cell lines
        assert set(cell[idx]) <= set(split.train)
    assert all((a == b).all() for a, b in zip(order(1), S.cell_blocks(split.train_rows, cell, 2, 16, 3)(1), strict=True))


def test_loco_split_never_shows_the_test_cell_line_and_disjoint_rows_are_disjoint(setup):
    params, data, split, inputs = setup
    cell = data.pairs.cell.to_numpy()
    assert split.test not in split.train + split.val
    assert (cell[split.train_rows] != split.test).all() and (cell[split.val_rows] != split.test).all()
    seen = np.concatenate([split.train_rows, split.val_rows])
    assert not set(data.pairs.enh.to_numpy()[split.disjoint_rows]) & set(data.pairs.enh.to_numpy()[seen])
    assert not set(data.pairs.prom.to_numpy()[split.disjoint_rows]) & set(data.pairs.prom.to_numpy()[seen])
    with pytest.raises(ValueError, match=r"unknown cell line\(s\) \['HeLa'\]"):
        S.loco_splits(data, S.SFMNParams.from_preset("quick", test_cell_lines=["HeLa"]))


def test_training_logs_every_term_weight_and_monitor_with_the_curriculum(trained, setup):
    params, *_ = setup
    h = trained.history
    for term in ("task", "align", "sparse", "entropy", "smooth"):
        assert f"train_{term}" in h and f"weight_{term}" in h
    for col in ("gate_active", "gate_entropy", "gate_pairwise", "train_aupr", "val_aupr", "gate_recovery_seen", "phase"):
        assert col in h
    assert h.weight_align.iat[0] == 0 and h.weight_align.iat[-1] == pytest.approx(params.alpha)
    assert h.phase.tolist() == [1, 2, 3, 3]
    assert h.gate_mean.iat[0] == 1.0  # phase 1: gates frozen at all-ones
    assert h.gate_mean.iat[-1] < 1.0
    assert 0 <= trained.threshold <= 1
    assert h.best_epoch.iat[0] >= 1  # selection only among epochs with a live gate


def test_evaluate_reports_unseen_scores_gap_and_gate_recovery(trained, setup):
    params, data, split, inputs = setup
    row = S.evaluate(trained, data, inputs, split)
    assert 0 <= row["test_aupr"] <= 1 and 0 <= row["test_auroc"] <= 1
    assert row["gap"] == pytest.approx(row["train_aupr"] - row["test_aupr"])
    assert row["base_rate"] == pytest.approx(params.positive_rate, abs=0.01)
    assert 0 <= row["gate_recovery_unseen"] <= 1 or math.isnan(row["gate_recovery_unseen"])


def test_gate_recovery_is_one_for_the_truth_and_chance_for_noise():
    truth = np.array([[1, 0, 0, 1], [0, 1, 1, 0]])
    assert np.allclose(S.gate_recovery(np.hstack([truth, truth]).astype(float), truth), 1.0)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, (200, 20))
    noise = rng.random((200, 40))
    assert abs(np.nanmean(S.gate_recovery(noise, truth)) - 0.5) < 0.05


def test_degenerate_gates_are_named_and_warned():
    assert len(S.degenerate(S.gate_stats(np.ones((3, 8))))) == 3
    assert S.degenerate(S.gate_stats(np.eye(3, 8))) == []


def test_degenerate_gate_warns_visibly_during_training(setup):
    params, data, split, inputs = setup
    import dataclasses

    p = dataclasses.replace(params, beta=0.0, gamma=0.0, delta=0.0, alpha=0.0, epochs=3)
    with pytest.warns(S.GateWarning, match="not sparse"):
        S.train_model("sfmn", data, inputs, split, p, 0)


def test_one_hot_is_never_recomputed_during_training(setup, monkeypatch):
    params, data, split, inputs = setup

    def forbidden(*a, **k):
        raise AssertionError("one_hot called during training")

    monkeypatch.setattr(epi, "one_hot", forbidden)
    import dataclasses

    S.train_model("erm", data, inputs, split, dataclasses.replace(params, epochs=2), 0)


def test_gate_explorer_updates_without_a_browser(trained, setup):
    params, data, split, inputs = setup
    explorer = gate_explorer(trained, data, inputs, split)
    test = data.cell_lines[split.test]
    assert explorer.roles[test] == "unseen"
    base = explorer.update(test)
    row = S.evaluate(trained, data, inputs, split)
    assert base["aupr"] == pytest.approx(row["test_aupr"], abs=1e-6)
    closed = explorer.update(test, gate=np.zeros(trained.model.d))
    assert closed["predictions"].p.nunique() == 1  # g = 0: the sequence no longer reaches the prediction
    assert closed["aupr"] == pytest.approx(closed["base_rate"])
    sparse = explorer.update(test, keep=0.25)
    assert (sparse["gate"] > 0).sum() <= round(0.25 * trained.model.d)
    assert GateExplorer.apply_sparsity(np.array([0.1, 0.9, 0.5, 0.2]), 0.5).tolist() == [0, 0.9, 0.5, 0]
    with pytest.raises(KeyError, match="unknown cell line"):
        explorer.update("nope")
    box = explorer.widget()
    assert len(box.children) == 3
    explorer.chart(sparse).to_dict(format="vega")  # VegaFusion prepares the data


def test_gate_explorer_refuses_an_ungated_model(setup):
    params, data, split, inputs = setup
    erm = S.build_model("erm", data, inputs, split, params)
    with pytest.raises(TypeError, match="needs a gated model"):
        GateExplorer(erm, inputs, {}, {}, [], {})


def test_seeded_training_repeats_exactly(setup):
    params, data, split, inputs = setup
    import dataclasses

    p = dataclasses.replace(params, epochs=2)
    a = S.train_model("dann", data, inputs, split, p, 5)
    b = S.train_model("dann", data, inputs, split, p, 5)
    assert np.allclose(a.history.train_loss, b.history.train_loss)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True):
        assert torch.equal(x, y)
