"""Study 3 trial (issue 12, hard panel): does ranking haplotypes per *site* beat one top k per window?

Run: ``.venv/bin/python benchmarks/recon_persite_votes.py``. Builds the hard panel of
``benchmarks/recon.py`` (500 panel / 100 target individuals, 1 Mb, ~2.5 % of sites typed) and, for
every target haplotype and every site, takes the k panel haplotypes whose exact match on typed
markers spans that site longest (left + right extent, each capped at the flank; or the shorter side)
— the per-site ranking a PBWT divergence array gives — and votes them, unweighted (k-vote) and
weighted by the shorter match side as ``recon.retrieval_vote(weighted=True)`` does. No network: if
the per-site votes are no better than the window's, handing the model per-site segments cannot
raise what it reads. Ties among equal matches are broken arbitrarily (``argpartition``): a trial,
not the study's retrieval. Prints one row per setting. ``--one-mismatch``: each side extends to the
*second* mismatching marker (a match that tolerates one mismatch), exact extents breaking ties; the
weighted vote reads the tolerant shorter side, and also (``weights=exact``) the exact one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from latentlab.recon import data as hp
from latentlab.recon import pipeline as recon
from latentlab.recon import retrieval as mt

sys.path.insert(0, str(Path(__file__).parent))
from recon import panel_files  # noqa: E402  (the same hard panel as the acceptance benchmark)


def _second_mismatch(last: np.ndarray, nxt: np.ndarray, l0: np.ndarray, n0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The +1-offset table entries of the second mismatch left and right of each site (``l0``/``n0``: the first)."""
    last, nxt, l0, n0 = (a.astype(np.int64) for a in (last, nxt, l0, n0))  # the tables may be uint8: no wrap at 0 - 1
    n_markers = nxt.shape[-1] - 1
    l1 = np.where(l0 > 0, np.take_along_axis(last, np.maximum(l0 - 1, 0), axis=2), 0)
    n1 = np.where(n0 <= n_markers, np.take_along_axis(nxt, np.minimum(n0, n_markers), axis=2), n_markers + 1)
    return l1, n1


def per_site_votes(data: hp.ImputationData, flank: float, k: int, rank: str,
                   one_mismatch: bool = False) -> dict[str, dict]:
    """P(ALT) of every target haplotype at every site from its k longest per-site matches → scores of both votes."""
    panel, obs = data.panel.flat(), data.array
    pos = data.panel.positions.astype(np.float64)
    truth = data.truth.haps
    flat = truth.reshape(-1, truth.shape[-1])
    marker_pos = pos[obs]
    left_i, right_i = np.searchsorted(marker_pos, pos, side="right"), np.searchsorted(marker_pos, pos, side="left")
    pos_ext = np.concatenate([[-np.inf], marker_pos, [np.inf]])
    scale = np.float32(np.log1p(flank / 1000))
    names = ["k-vote", "match-weighted vote"] + (["match-weighted vote (weights=exact)"] if one_mismatch else [])
    votes = {name: np.empty(flat.shape) for name in names}
    for s in range(0, len(flat), 4):
        last, nxt, _ = mt._mismatch_runs(flat[s:s + 4][:, obs], panel[:, obs])
        l0, n0 = last[:, :, left_i], nxt[:, :, right_i]
        exact_l, exact_r = np.minimum(pos - pos_ext[l0], flank), np.minimum(pos_ext[n0] - pos, flank)  # [q, N, S]
        left, right, tie = exact_l, exact_r, 0.0
        if one_mismatch:
            l1, n1 = _second_mismatch(last, nxt, l0, n0)
            left, right = np.minimum(pos - pos_ext[l1], flank), np.minimum(pos_ext[n1] - pos, flank)
            tie = 1e-6 * (exact_l + exact_r)
        score = (left + right if rank == "sum" else np.minimum(left, right) + 1e-3 * (left + right)) + tie
        top = np.argpartition(-score, k - 1, axis=1)[:, :k, :]  # [q, k, S]
        alleles = panel[top, np.arange(flat.shape[1])[None, None, :]]
        votes["k-vote"][s:s + 4] = alleles.mean(axis=1)
        sides = [("match-weighted vote", left, right)] + ([("match-weighted vote (weights=exact)", exact_l, exact_r)]
                                                          if one_mismatch else [])
        for name, lo, hi in sides:
            w = np.exp(8.0 * np.log1p(np.take_along_axis(np.minimum(lo, hi), top, axis=1) / 1000) / scale)
            votes[name][s:s + 4] = (w * alleles).sum(axis=1) / w.sum(axis=1)
    out = {}
    for name, p in votes.items():
        p = p.reshape(truth.shape)
        p[:, :, obs] = truth[:, :, obs]
        out[name] = recon.score(p.sum(axis=1), (p > 0.5).sum(axis=1), truth.sum(axis=1), data.maf, ~obs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one-mismatch", action="store_true", help="matches that tolerate one mismatch per side")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    settings = ((250_000, 8, "sum"), (500_000, 8, "sum"), (500_000, 16, "sum"), (1_000_000, 16, "sum")) \
        if args.one_mismatch else ((250_000, 8, "sum"), (250_000, 8, "shorter side"), (500_000, 8, "sum"),
                                   (250_000, 16, "sum"), (1_000_000, 8, "shorter side"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = hp.load_dataset(panel_files(500, 100, 1_000_000, 0.025, Path(tmp) / "hard"))
        for flank, k, rank in settings:
            started = time.process_time()
            for vote, m in per_site_votes(data, flank, k, rank, args.one_mismatch).items():
                rows.append({"flank_bp": flank, "k": k, "rank by": rank, "row": vote,
                             **{c: round(m[c], 3) for c in ("f1_overall", "f1_rare", "f1_common", "r2_site_mean")},
                             "cpu_s": round(time.process_time() - started)})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
