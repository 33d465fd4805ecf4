"""Clinical loaders: exact irregular times, the real formats round-trip, and every bad input is named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from latentlab.setvae import data as c


@pytest.fixture(scope="module")
def sim() -> c.ClinicalData:
    return c.simulate_stays(c.StaySimulation(n_stays=120, seed=3))


def _stay(tmp_path, name: str, body: str) -> None:
    (tmp_path / "set").mkdir(exist_ok=True)
    (tmp_path / "set" / name).write_text(body)


def _outcomes(tmp_path, rows: str) -> str:
    path = tmp_path / "Outcomes-a.txt"
    path.write_text("RecordID,In-hospital_death\n" + rows)
    return str(path)


def test_physionet_round_trip_keeps_exact_minutes(sim, tmp_path):
    outcomes = c.write_physionet(sim, tmp_path / "set-a")
    back = c.load_physionet(tmp_path / "set-a", outcomes, variables=c.SIM_VARIABLES)
    assert len(back.obs) == len(sim.obs)
    np.testing.assert_allclose(back.obs["time"].to_numpy(), sim.obs["time"].to_numpy(), atol=1e-9)
    assert (back.obs["time"] % 1 != 0).mean() > 0.9  # times are not on the hour
    assert back.labels.equals(sim.labels)


def test_long_csv_round_trip(sim, tmp_path):
    obs, lab = c.write_long_csv(sim, tmp_path)
    back = c.load_long_csv(obs, lab, variables=c.SIM_VARIABLES)
    pd.testing.assert_frame_equal(back.obs, sim.obs, check_dtype=False)


def test_simulator_truth_outcome_driven_by_latent_path(sim):
    big = c.simulate_stays(c.StaySimulation(n_stays=1500, seed=1))
    assert 0.10 < big.labels.mean() < 0.18
    assert roc_auc_score(big.labels, big.truth["risk"][big.labels.index.astype(int) - 100000]) > 0.8
    assert len(big.variables) == 36


def test_simulator_without_outcome_signal_is_chance():
    flat = c.simulate_stays(c.StaySimulation(n_stays=1500, outcome_strength=0.0, seed=2))
    feats = c.summary_features(flat).fillna(0).to_numpy()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    prob = cross_val_predict(model, feats, flat.labels, cv=3, method="predict_proba")[:, 1]
    assert abs(roc_auc_score(flat.labels, prob) - 0.5) < 0.08


def test_physionet_missing_marker_and_static_descriptors(tmp_path):
    _stay(tmp_path, "1.txt", "Time,Parameter,Value\n00:00,RecordID,1\n00:00,Age,54\n00:00,Weight,-1\n00:07,HR,80\n")
    data = c.load_physionet(tmp_path / "set", _outcomes(tmp_path, "1,1\n"))
    assert list(data.obs["variable"]) == ["HR"] and data.obs["time"].iloc[0] == pytest.approx(7 / 60)
    assert data.static.loc["1", "Age"] == 54


def test_set_arrays_keep_exact_times_and_group_by_timestamp(tmp_path):
    obs = pd.DataFrame({"stay_id": ["s"] * 4, "time": [0.1, 0.1, 1.0 / 3, 47.99],
                        "variable": ["HR", "Temp", "HR", "HR"], "value": [80.0, 37.0, 90.0, 100.0]})
    data = c.ClinicalData(obs, pd.Series([1], index=["s"]), ["HR", "Temp"])
    arrays = c.to_set_arrays(data, c.fit_scaler(data, ["s"]), max_steps=2)
    assert arrays.truncated_steps == 1  # the earliest of 3 steps is dropped, the last 2 kept
    np.testing.assert_allclose(arrays.times[0], [1.0 / 3, 47.99], rtol=1e-6)
    full = c.to_set_arrays(data, c.fit_scaler(data, ["s"]), max_steps=4)
    assert full.elem_mask[0].sum(-1).tolist() == [2, 1, 1, 0]
    assert sorted(full.var[0, 0, :2].tolist()) == [0, 1]
