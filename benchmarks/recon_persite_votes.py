"""Study 3 trial (issue 12, hard panel): does ranking haplotypes per *site* beat one top k per window?

Run: ``.venv/bin/python benchmarks/recon_persite_votes.py``. Builds the hard panel of
``benchmarks/recon.py`` (500 panel / 100 target individuals, 1 Mb, ~2.5 % of sites typed) and, for
every target haplotype and every site, takes the k panel haplotypes whose exact match on typed
markers spans that site longest (left + right extent, each capped at the flank; or the shorter side)
— the per-site ranking a PBWT divergence array gives — and votes them, unweighted (k-vote) and
weighted by the shorter match side as ``recon.retrieval_vote(weighted=True)`` does. No network: if
the per-site votes are no better than the window's, handing the model per-site segments cannot
raise what it reads. Ties among equal matches are broken arbitrarily (``argpartition``): a trial,
not the study's retrieval. Prints one row per setting.
"""

from __future__ import annotations

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


def per_site_votes(data: hp.ImputationData, flank: float, k: int, rank: str) -> dict[str, dict]:
    """P(ALT) of every target haplotype at every site from its k longest per-site matches → scores of both votes."""
    panel, obs = data.panel.flat(), data.array
    pos = data.panel.positions.astype(np.float64)
    truth = data.truth.haps
    flat = truth.reshape(-1, truth.shape[-1])
    marker_pos = pos[obs]
    left_i, right_i = np.searchsorted(marker_pos, pos, side="right"), np.searchsorted(marker_pos, pos, side="left")
    pos_ext = np.concatenate([[-np.inf], marker_pos, [np.inf]])
    scale = np.float32(np.log1p(flank / 1000))
    votes = {"k-vote": np.empty(flat.shape), "match-weighted vote": np.empty(flat.shape)}
    for s in range(0, len(flat), 4):
        last, nxt, _ = mt._mismatch_runs(flat[s:s + 4][:, obs], panel[:, obs])
        left = np.minimum(pos - pos_ext[last[:, :, left_i]], flank)  # [q, N, S]
        right = np.minimum(pos_ext[nxt[:, :, right_i]] - pos, flank)
        score = left + right if rank == "sum" else np.minimum(left, right) + 1e-3 * (left + right)
        top = np.argpartition(-score, k - 1, axis=1)[:, :k, :]  # [q, k, S]
        alleles = panel[top, np.arange(flat.shape[1])[None, None, :]]
        shorter = np.take_along_axis(np.minimum(left, right), top, axis=1)
        w = np.exp(8.0 * np.log1p(shorter / 1000) / scale)
        votes["k-vote"][s:s + 4] = alleles.mean(axis=1)
        votes["match-weighted vote"][s:s + 4] = (w * alleles).sum(axis=1) / w.sum(axis=1)
    out = {}
    for name, p in votes.items():
        p = p.reshape(truth.shape)
        p[:, :, obs] = truth[:, :, obs]
        out[name] = recon.score(p.sum(axis=1), (p > 0.5).sum(axis=1), truth.sum(axis=1), data.maf, ~obs)
    return out


def main() -> None:
    pd.set_option("display.width", 200)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = hp.load_dataset(panel_files(500, 100, 1_000_000, 0.025, Path(tmp) / "hard"))
        for flank, k, rank in ((250_000, 8, "sum"), (250_000, 8, "shorter side"), (500_000, 8, "sum"),
                               (250_000, 16, "sum"), (1_000_000, 8, "shorter side")):
            started = time.process_time()
            for vote, m in per_site_votes(data, flank, k, rank).items():
                rows.append({"flank_bp": flank, "k": k, "rank by": rank, "row": vote,
                             **{c: round(m[c], 3) for c in ("f1_overall", "f1_rare", "f1_common", "r2_site_mean")},
                             "cpu_s": round(time.process_time() - started)})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
