"""Issue 15: Study 2's monitors score with numpy instead of sklearn — the numbers must not move."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from latentlab.sfmn.pipeline import binary_auroc_aupr, per_cell_scores


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_and_average_precision_equal_sklearns(ties):
    rng = np.random.default_rng(1)
    for _ in range(60):
        n = int(rng.integers(4, 800))
        y = (rng.random(n) < rng.uniform(0.03, 0.6)).astype(np.float32)
        y[:2] = [1, 0]
        p = rng.random(n).astype(np.float32)
        if ties:
            p = np.round(p, 1)  # many equal scores: one threshold each, as sklearn counts them
        auroc, aupr = binary_auroc_aupr(y, p)
        assert auroc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert aupr == pytest.approx(average_precision_score(y, p), abs=1e-12)


def test_perfect_and_inverted_rankings():
    y = np.array([0, 0, 1, 1])
    assert binary_auroc_aupr(y, np.array([0.1, 0.2, 0.8, 0.9])) == (1.0, 1.0)
    auroc, aupr = binary_auroc_aupr(y, np.array([0.9, 0.8, 0.2, 0.1]))
    assert auroc == 0.0 and aupr == pytest.approx(average_precision_score(y, [0.9, 0.8, 0.2, 0.1]))


def test_per_cell_scores_average_over_cell_lines_and_skip_one_class_lines():
    rng = np.random.default_rng(0)
    cell = np.repeat([0, 1, 2], 200)
    y = (rng.random(600) < 0.2).astype(float)
    y[cell == 2] = 0  # one class only: not scorable, left out
    p = rng.random(600) + 0.3 * y
    got = per_cell_scores(y, p, cell)
    want_roc = np.mean([roc_auc_score(y[cell == c], p[cell == c]) for c in (0, 1)])
    want_ap = np.mean([average_precision_score(y[cell == c], p[cell == c]) for c in (0, 1)])
    assert got["auroc"] == pytest.approx(want_roc, abs=1e-12)
    assert got["aupr"] == pytest.approx(want_ap, abs=1e-12)


def test_gate_recovery_equals_sklearns_roc_auc_per_cell_line():
    """gate_recovery scores with the numpy AUROC; the per-cell-line numbers must be sklearn's."""
    from latentlab.sfmn.pipeline import gate_recovery

    rng = np.random.default_rng(3)
    truth = (rng.random((12, 12)) < 0.3).astype(float)
    truth[0] = 1.0  # one class: no AUROC
    truth[1, :4] = np.nan  # unknown motifs are left out
    g = rng.random((12, 24)).astype(np.float32)
    g[2] = np.round(g[2], 1)  # tied gates
    got = gate_recovery(g, truth)
    score = (g[:, :12] + g[:, 12:]) / 2
    for c in range(12):
        known = np.isfinite(truth[c])
        t = truth[c][known]
        if 0 < t.sum() < len(t):
            assert got[c] == pytest.approx(roc_auc_score(t, score[c][known]), abs=1e-12)
        else:
            assert np.isnan(got[c])
