"""Collapse diagnostics against hand-computed values, and the diagnosis on models that do / do not use z."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentlab.setvae import diagnostics as dg
from latentlab.setvae import pipeline as S


def test_active_units_hand_values():
    mu = np.array([[0.0, 0.0], [0.2, 0.001], [0.4, 0.002]])
    active, var = dg.active_units(mu)
    np.testing.assert_allclose(var, [0.04, 1e-6])  # sample variance (ddof=1) of the posterior means
    assert active.tolist() == [True, False]
    assert dg.active_units(mu, threshold=0.05)[0].tolist() == [False, False]
    with pytest.raises(ValueError, match="N >= 2"):
        dg.active_units(mu[:1])


def test_kl_per_dim_hand_values():
    mu = np.array([[1.0, 0.0], [-1.0, 0.0]])
    lv = np.array([[0.0, math.log(4.0)], [0.0, math.log(4.0)]])
    np.testing.assert_allclose(dg.kl_per_dim(mu, lv), [0.5, 0.5 * (3 - math.log(4.0))])
    np.testing.assert_allclose(dg.kl_per_dim(mu, lv, mu, lv), [0.0, 0.0])


def test_mutual_information_zero_for_prior_and_large_for_separated_posteriors():
    n = 400
    same = dg.mutual_information(np.zeros((n, 3)), np.zeros((n, 3)))
    assert abs(same) < 0.05
    spread = np.random.default_rng(0).normal(0, 10, (n, 3))
    sharp = dg.mutual_information(spread, np.full((n, 3), math.log(1e-4)))
    assert sharp == pytest.approx(math.log(n), abs=0.05)  # upper bound log N reached


def test_level_stats_and_diagnose_rules():
    rng = np.random.default_rng(0)
    used = dg.level_stats(1, rng.normal(0, 1, (300, 4)), np.full((300, 4), -2.0), np.zeros((300, 4)), np.zeros((300, 4)))
    dead = dg.level_stats(2, rng.normal(0, 0.01, (300, 4)), np.zeros((300, 4)), np.zeros((300, 4)), np.zeros((300, 4)))
    assert used.active == 4 and dead.active == 0 and dead.kl < 0.01
    healthy = dg.diagnose([used])
    assert healthy.status == "healthy" and "4/4" in healthy.evidence[0]
    collapsed = dg.diagnose([dead])
    assert collapsed.status == "collapsed" and "lower β" in collapsed.next_step
    both = dg.diagnose([used, dead])  # 4/8 active = 0.5 is not below the 0.5 ratio; level 2 named
    assert "level 2: AU 0/4" in str(both) and "level(s) [2] within 0.1 nats/step of their prior" in str(both)
    assert "of their prior" not in str(healthy)
    overfit = dg.diagnose([used], train_auroc=0.99, val_auroc=0.7)
    assert overfit.status == "healthy" and "dropout" in overfit.next_step


def test_linear_cka_and_pca():
    x = np.random.default_rng(0).normal(size=(100, 5))
    assert dg.linear_cka(x, x @ np.linalg.qr(np.random.default_rng(1).normal(size=(5, 5)))[0]) == pytest.approx(1.0)
    assert dg.pca_2d(x).shape == (100, 2)


@pytest.fixture(scope="module")
def tiny():
    params = S.SetVAEParams.from_preset("quick", n_stays=160, max_steps=12, epochs=8, batch_size=16, lr=5e-3, min_updates=0, set_window_minutes=0,
                                        progress=False, output_dir="runs/test/setvae_diag", seeds=[0])
    data = S.load(params)
    prep = S.prepare(data, S.make_splits(data, params), params)
    return params, prep


def test_diagnosis_collapsed_when_decoder_ignores_z_and_healthy_when_it_uses_it(tiny, monkeypatch):
    """Trained end to end: a decoder reading only history gives the latents nothing to do (KL wins)."""
    params, prep = tiny
    import dataclasses

    from latentlab.setvae.model import SetVAEConfig

    def with_decoder(decoder_input):
        original = S.build_model

        def build(cfg, p, n, *args):
            obj = original(cfg, p, n, *args)
            obj.model.__init__(dataclasses.replace(obj.model.cfg, decoder_input=decoder_input))
            return obj

        monkeypatch.setattr(S, "build_model", build)

    quiet = dataclasses.replace(S.AFTER, free_bits=0.0, w=0.0, beta=1.0, kl_schedule="constant",
                                pooling="mean", staged=False, optimiser="adam", var_reg=0.0, mean_reg=0.0)
    with_decoder("h")
    ignored = S.train_run("ignores z", quiet, prep, params, seed=0)
    with_decoder("z")
    uses = S.train_run("uses z", dataclasses.replace(quiet, beta=0.05), prep, params, seed=0)
    assert ignored.diagnosis.status == "collapsed", str(ignored.diagnosis)
    assert uses.diagnosis.status == "healthy", str(uses.diagnosis)
    assert SetVAEConfig().decoder_input == "z+h"


def _healthy_levels():
    rng = np.random.default_rng(0)
    return [dg.level_stats(1, rng.normal(0, 1, (300, 4)), np.full((300, 4), -2.0), np.zeros((300, 4)), np.zeros((300, 4)))]


def test_underfitting_is_not_advised_regularisation():
    """Train AUROC at chance (the failure the issue reported: train 0.50, test 0.35): the model did not learn."""
    d = dg.diagnose(_healthy_levels(), train_auroc=0.50, val_auroc=0.35, train_counts=(25, 155), val_counts=(8, 52))
    assert d.problem == "underfitting" and "did not learn" in str(d)
    assert "dropout" not in d.next_step and "weight decay" not in d.next_step
    assert "train longer" in d.next_step


def test_overfitting_needs_a_model_that_fits_its_training_stays():
    d = dg.diagnose(_healthy_levels(), train_auroc=0.97, val_auroc=0.66, train_counts=(60, 300), val_counts=(20, 100))
    assert d.problem == "overfitting" and "dropout" in d.next_step
    fine = dg.diagnose(_healthy_levels(), train_auroc=0.86, val_auroc=0.80, train_counts=(60, 300), val_counts=(20, 100))
    assert fine.problem == "none"


def test_chance_band_widens_with_few_positives():
    """0.62 on 5 positives is within sampling noise of 0.5; on 500 it is not."""
    assert dg.task_fit(0.62, 0.6, train_counts=(5, 40))[0] == "underfitting"
    assert dg.task_fit(0.62, 0.6, train_counts=(500, 4000))[0] == "weak task"
    gap_small_test = dg.task_fit(0.9, 0.75, train_counts=(100, 600), test_counts=(4, 30))[0]
    assert gap_small_test == "ok"  # a 0.15 gap on 4 test positives is not evidence of overfitting


def test_collapse_with_underfitting_says_both():
    dead = dg.level_stats(1, np.random.default_rng(0).normal(0, 0.01, (300, 4)), np.zeros((300, 4)),
                          np.zeros((300, 4)), np.zeros((300, 4)))
    d = dg.diagnose([dead], train_auroc=0.52, val_auroc=0.5, train_counts=(30, 150))
    assert d.status == "collapsed" and d.problem == "collapse" and "train longer" in d.next_step


def test_a_model_trained_too_little_is_diagnosed_underfitting(tiny):
    """Trained end to end with a learning rate too small to move: the diagnosis names underfitting."""
    import dataclasses

    params, prep = tiny
    frozen = dataclasses.replace(params, lr=1e-7, epochs=1, min_updates=0)
    run = S.train_run("after, lr 1e-7", S.AFTER, prep, frozen, seed=0)
    assert run.diagnosis.problem in ("underfitting", "collapse"), str(run.diagnosis)
    assert "train longer" in run.diagnosis.next_step and "dropout" not in run.diagnosis.next_step
