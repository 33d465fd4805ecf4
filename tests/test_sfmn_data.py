"""Study 2 data: validated loaders (each bad input names its record) and the simulator's ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from latentlab.sfmn import data as epi

SMALL = epi.EpiSimulation(n_cell_lines=5, n_motifs=6, n_enhancers=300, n_promoters=120, pairs_per_cell_line=300,
                          enhancer_len=150, promoter_len=120, seed=1)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    directory = tmp_path_factory.mktemp("epi")
    out = epi.simulate_epi(SMALL)
    paths = epi.write_epi(out, directory)
    return out, paths


def write(path, text):
    path.write_text(text)
    return path


def pairs_file(tmp_path, rows="e1,p1,1,A\ne1,p1,0,A\n"):
    return write(tmp_path / "pairs.csv", "enhancer,promoter,label,cell_line\n" + rows)


def test_round_trip_reads_back_what_was_written(simulated):
    out, paths = simulated
    data = epi.load_epi(paths["pairs"], paths["sequences"], cell_features=paths["cell_features"],
                        motifs=paths["motifs"], enhancer_len=SMALL.enhancer_len, promoter_len=SMALL.promoter_len)
    assert len(data.pairs) == len(out["pairs"])
    assert (data.pairs.label.to_numpy() == out["pairs"].label.to_numpy()).all()
    assert data.cell_features.shape == (SMALL.n_cell_lines, SMALL.n_features)
    assert [m.matrix_id for m in data.motifs] == list(epi.MOTIF_IDS[: SMALL.n_motifs])
    np.testing.assert_allclose(data.motifs[0].counts, out["motifs"][0].counts)
    # the one-hot cache holds exactly the written sequence
    enh = data.enhancers.names[0]
    decoded = "".join("ACGT"[i] for i in data.enh_onehot[0].argmax(0))
    assert decoded == out["enhancers"][enh]


def test_one_hot_crops_centre_and_pads_symmetrically_with_n():
    x = epi.one_hot(["AACGTT", "GN", "ACGT"], 4)
    assert "".join("ACGT"[i] for i in x[0].argmax(0)) == "ACGT"  # centre crop of AACGTT
    assert x[1].sum() == 1 and x[1][2, 1] == 1  # 'GN' padded to '.GN.': G at position 1, N all zeros
    assert x[2].sum() == 4


def test_scans_are_cached_once(simulated):
    _, paths = simulated
    data = epi.load_epi(paths["pairs"], paths["sequences"], motifs=paths["motifs"],
                        enhancer_len=SMALL.enhancer_len, promoter_len=SMALL.promoter_len)
    first = data.scans()
    assert data.scans() is first


def test_simulator_truth_is_sparse_continuous_and_drives_labels(simulated):
    out, _ = simulated
    acc = out["accessibility"].to_numpy()
    assert 0.1 < acc.mean() < 0.6 and (acc.sum(1) >= 1).all()
    rate = out["pairs"].groupby("cell_line")["label"].mean()
    assert np.allclose(rate, SMALL.positive_rate, atol=0.01)
    # continuity: cell lines close on the manifold share more accessible motifs than distant ones
    t = out["position"].to_numpy()
    i, j = np.triu_indices(len(t), 1)
    d = np.minimum(np.abs(t[i] - t[j]), 1 - np.abs(t[i] - t[j]))
    overlap = (acc[i] == acc[j]).mean(1)
    assert np.corrcoef(d, overlap)[0, 1] < 0
    # the true label is exactly "an accessible compatible motif pair is present"
    pairs = out["pairs"]
    e = pairs.enhancer.str[3:].astype(int).to_numpy()
    p = pairs.promoter.str[4:].astype(int).to_numpy()
    c = pairs.cell_line.str[2:].astype(int).to_numpy()
    a = acc[c]
    rule = np.einsum("ni,ij,nj->n", out["enhancer_presence"][e] * a, out["compatibility"],
                     out["promoter_presence"][p] * a) > 0
    assert (rule == pairs.true_label.to_numpy().astype(bool)).all()
    # label noise is small and symmetric in count
    assert (pairs.label != pairs.true_label).mean() < 0.01


def test_pwm_scan_finds_the_planted_motifs_and_nothing_where_nothing_is(simulated):
    out, _ = simulated
    enh = epi.one_hot(list(out["enhancers"].values()), SMALL.enhancer_len)
    scans = epi.scan_max(enh, [m.pwm for m in out["motifs"]])
    presence = out["enhancer_presence"]
    aucs = [roc_auc_score(presence[:, i], scans[:, i]) for i in range(SMALL.n_motifs)]
    assert min(aucs) > 0.85, aucs
    # pure background (no planted site) scores below planted sites for the strongest motif (CTCF)
    background = epi.one_hot(["".join(np.random.default_rng(k).choice(list("ACGT"), 150)) for k in range(50)], 150)
    bg = epi.scan_max(background, [out["motifs"][0].pwm])[:, 0]
    assert np.median(bg) < np.median(scans[presence[:, 0] == 1, 0])


# Bad input (issue 13): tests/test_sfmn_loaders.py
