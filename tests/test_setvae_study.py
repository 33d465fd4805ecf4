"""Study 4 steps: presets, one-fix ablation, the contract on the seed's configurations, baselines, outputs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from latentlab import train
from latentlab.params import ParameterError
from latentlab.setvae import pipeline as S


def test_presets_and_validation():
    for preset in ("quick", "standard", "full"):
        S.SetVAEParams.from_preset(preset)
    assert S.SetVAEParams.from_preset("full").n_stays == 4000
    with pytest.raises(ParameterError, match="ablation"):
        S.SetVAEParams.from_preset("quick", ablation=["more layers"])
    with pytest.raises(ParameterError, match="latent_dims"):
        S.SetVAEParams.from_preset("quick", latent_dims=[])
    with pytest.raises(ParameterError, match="unknown parameter"):
        S.SetVAEParams.from_preset("quick", bogus=1)


def test_seed_before_and_after_values():
    assert (S.BEFORE.beta, S.BEFORE.w, S.BEFORE.free_bits, S.BEFORE.grad_clip, S.BEFORE.clip_mode) == (0.5, 0.5, 0.2, 1.0, "value")
    assert (S.AFTER.beta, S.AFTER.w, S.AFTER.free_bits, S.AFTER.grad_clip, S.AFTER.clip_mode) == (0.1, 1.0, 0.1, 0.5, "norm")
    assert S.AFTER.future_leak == 0 and S.BEFORE.future_leak == 0  # the leak is never part of a reference config
    assert S.BEFORE.free_bits_group == S.AFTER.free_bits_group == "level"  # one reading for both references


def test_free_bits_group_reaches_the_loss(small):
    params, _, _, prep = small
    for group in ("level", "dim"):
        objective = S.build_model(dataclasses.replace(S.BEFORE, free_bits_group=group), params, len(prep.scaler))
        assert objective.cfg.free_bits_group == group
    names = S.ablation_configs([], list(S.EXTRAS))
    assert names["before, free bits per dimension"].free_bits_group == "dim"
    assert names["control: before without free bits"].free_bits == 0.0
    assert "after + staged training" in names


@pytest.mark.parametrize("fix", list(S.FIXES))
def test_ablation_turns_off_exactly_one_fix(fix):
    cfg = S.ablate(fix)
    changed = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(S.AFTER, f.name)}
    assert changed and changed <= set(S.FIXES[fix])
    assert all(getattr(cfg, f) == getattr(S.BEFORE, f) for f in S.FIXES[fix])


def test_every_fix_field_differs_between_before_and_after():
    fields = {f for fs in S.FIXES.values() for f in fs}
    assert all(getattr(S.BEFORE, f) != getattr(S.AFTER, f) for f in fields)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("sv")
    params = S.SetVAEParams.from_preset("quick", n_stays=120, max_steps=8, epochs=1, min_updates=0, progress=False,
                                        output_dir=str(out), baselines=["logistic", "gbm"])
    data = S.load(params)
    splits = S.make_splits(data, params)
    return params, data, splits, S.prepare(data, splits, params)


def test_splits_disjoint_and_scaler_from_train_only(small):
    params, data, splits, prep = small
    all_idx = np.concatenate([splits.train, splits.val, splits.test])
    assert len(np.unique(all_idx)) == len(data.labels) == len(all_idx)
    train_obs = data.obs[data.obs["stay_id"].isin(set(data.stay_ids[splits.train]))]
    expected = train_obs.groupby("variable")["value"].mean()
    pd.testing.assert_series_equal(prep.scaler["mean"].loc[expected.index], expected, check_names=False)


@pytest.mark.parametrize("name", ["before (seed)", "after (seed)"])
def test_contract_holds_for_the_seed_configurations(small, name):
    params, _, splits, prep = small
    cfg = S.REFERENCE[name]
    obj = S.build_model(cfg, params, len(prep.scaler))
    batch = S.batches(prep.tensors, splits.train, params.batch_size, 0)(0)[0]
    report = train.check_contract(obj, batch, S.loss_weights(cfg, 100), epochs=params.epochs)
    active = {k for k, v in report["peak_weights"].items() if v > 0}
    assert set(report["grad_norms"]) == active
    assert ("var_reg" in active) == (name == "after (seed)")


def test_batches_trim_padding(small):
    params, _, splits, prep = small
    batch = S.batch_of(prep.tensors, splits.train[:4])
    assert batch["step_mask"][:, -1].any() and batch["elem_mask"][..., -1].any()


def test_baselines_and_outputs(small):
    params, data, splits, prep = small
    base = S.baselines(data, prep, params)
    assert list(base["model"]) == ["logistic (summary stats)", "gradient boosting (summary stats)"]
    assert base["auroc"].between(0, 1).all()
    run = S.train_run("after (seed)", S.AFTER, prep, params, seed=0)
    rows = pd.DataFrame([S.result_row(run)])
    assert {"active_ratio", "kl_total", "auroc", "auprc", "auroc_24h", "AU_L1", "MI_L2"} <= set(rows.columns)
    metrics = S.summary_metrics(rows, base, data, prep)
    S.write_outputs(params, metrics=metrics, tables={"runs": rows}, charts={}, history=run.history)
    saved = json.loads((params.output_path / "metrics.json").read_text())
    assert saved["after (seed)"]["collapsed_seeds"] in ("0/1", "1/1")
    assert set(run.history.columns) >= {"train_kl", "weight_kl", "active_ratio", "zh_cka", "kl_level1"}


def test_a_sweep_point_without_references_or_baselines(small):
    """What params/setvae.yaml runs per point: one ablation row, no reference runs, no baselines."""
    params, data, splits, prep = small
    point = dataclasses.replace(params, references=[], baselines=[], extras=[], ablation=["pre-norm"])
    assert S.reference_configs(point, "before (seed)") == {}
    assert S.run_reference("before (seed)", prep, point) == []
    assert S.reference_configs(params, "after (seed)") == {"after (seed)": S.AFTER}
    runs = S.run_many(S.ablation_configs(point.ablation, point.extras), prep, point, [0])
    rows = pd.DataFrame([S.result_row(r) for r in runs])
    base = S.baselines(data, prep, point)
    scores = S.scores_table(S.aggregate(rows), base)
    assert list(scores["model"]) == ["after − pre-norm"]
    metrics = S.summary_metrics(rows, base, data, prep)
    assert "before (seed)" not in metrics and metrics["baselines"] == {}
    assert metrics["configurations"]["after − pre-norm"]["collapsed_seeds"] in ("0/1", "1/1")
    with pytest.raises(ParameterError, match="references"):
        S.SetVAEParams.from_preset("quick", references=["middle"])


def test_runs_in_worker_processes_give_the_same_numbers_as_one_after_another(small, monkeypatch, tmp_path):
    """``workers``: independent runs spread over processes are the same runs — same loss history, diagnosis
    and scores, bit for bit, in the notebook's order; "auto" takes only the cores runall reports free."""
    params, _, _, prep = small
    configs = {"before (seed)": S.BEFORE}
    alone = S.run_many(configs, prep, dataclasses.replace(params, workers=1), [0, 1])
    spread = S.run_many(configs, prep, dataclasses.replace(params, workers=2), [0, 1])  # seed 1 in a worker
    assert [(r.name, r.seed) for r in spread] == [(r.name, r.seed) for r in alone]
    for a, b in zip(alone, spread, strict=True):
        cols = [c for c in a.history.columns if c.startswith(("train_", "weight_")) or c in ("zh_cka", "val_auroc")]
        pd.testing.assert_frame_equal(a.history[cols], b.history[cols])
        assert a.scores == b.scores and str(a.diagnosis) == str(b.diagnosis)

    busy = tmp_path / "busy"
    monkeypatch.setenv(S.RUNNING_STUDIES_ENV, str(busy))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(S.os, "cpu_count", lambda: 2)
    busy.write_text("2\n")
    assert S.spare_cores() == 0
    busy.write_text("1\n")
    assert S.spare_cores() == 1
    busy.write_text("")  # half-written or unreadable: no spare core is assumed
    assert S.spare_cores() == 0
    monkeypatch.delenv(S.RUNNING_STUDIES_ENV)
    assert S.spare_cores() == 0  # outside a runall job "auto" means one process, as before
    with pytest.raises(ParameterError, match="workers"):
        S.SetVAEParams.from_preset("quick", workers=0)
