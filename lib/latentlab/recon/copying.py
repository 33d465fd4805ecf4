"""Li–Stephens copying posteriors: P(ALT) at every site from a haplotype copying the panel (``lshmm``).

A query haplotype is modelled as a mosaic of panel haplotypes (Li & Stephens 2003): along
the typed markers it copies one panel haplotype at a time, switches to another with a
probability that grows with the distance between markers, and mismatches its copied
allele with a small probability. Forward–backward over the typed markers
(``lshmm.forwards`` / ``lshmm.backwards``, haploid, maintained by tskit-dev) gives, at each
marker, the posterior probability that the query copies each panel haplotype. Between two
markers the copying probabilities are interpolated linearly in distance, as Beagle does,
and P(ALT) at an untyped site is the copying-weighted share of panel haplotypes carrying ALT
there. This is the imputation model behind Beagle and IMPUTE; here it is the network's
strongest per-site input, and the "LS HMM alone" row shows what the network adds to it.

Switch probability between markers ``d`` bp apart: ``1 − exp(−4·Ne·c·d / N)`` with ``N`` the
copiable panel haplotypes and ``c`` = 1e-8 per bp (1 cM/Mb, Beagle's map when none is given;
its default Ne is 100,000). Mismatch probability: Li & Stephens' eq. A2–A3 for ``N``
haplotypes (``lshmm.core.estimate_mutation_probability``).
"""

from __future__ import annotations

import functools

import numpy as np
from lshmm import core as ls_core
from lshmm import fb_haploid as ls_hap

NONCOPY = ls_core.NONCOPY
RECOMBINATION_PER_BP = 1e-8  # 1 cM/Mb


def switch_probabilities(marker_pos: np.ndarray, n_copiable: int, ne: float) -> np.ndarray:
    """Per-marker probability of switching copied haplotype since the previous marker (0 at the first)."""
    gaps = np.diff(marker_pos.astype(np.float64), prepend=marker_pos[0])
    return -np.expm1(-4 * ne * RECOMBINATION_PER_BP * gaps / n_copiable)


def _emissions(copiable_typed: np.ndarray, query_typed: np.ndarray, mu: float) -> np.ndarray:
    """lshmm's haploid emission table [M, 2] (mismatch, match) for the distinct alleles of the copiable rows and query.

    What ``lshmm.api.check_inputs`` builds per call (NONCOPY rows do not count as alleles), counted
    here with one vectorised pass instead of a ``np.unique`` per marker (8 ms of every 22 ms query
    otherwise).
    """
    first = copiable_typed[0]
    varies = (copiable_typed != first).any(axis=0) | (query_typed != first)
    n_alleles = 1 + varies.astype(np.int8)  # biallelic 0/1 data: 1 or 2 alleles
    return ls_core.get_emission_matrix_haploid(np.full(len(n_alleles), mu), len(n_alleles), n_alleles, True)


@functools.lru_cache(maxsize=64)
def _mutation_probability(n_copiable: int) -> float:
    """Li & Stephens' eq. A2–A3 (a Python sum over ``n`` terms: computed once per panel size)."""
    return float(ls_core.estimate_mutation_probability(n_copiable))


def marker_posteriors(query_typed: np.ndarray, panel_typed: np.ndarray, marker_pos: np.ndarray, *, ne: float,
                      exclude: np.ndarray | None = None) -> np.ndarray:
    """Posterior copying probabilities [M, N] of one query haplotype (alleles [M] at the typed markers).

    ``panel_typed`` [N, M]; ``exclude`` panel rows the query may not copy (its own haplotypes
    when panel individuals are the queries) — lshmm's NONCOPY state, so the switch
    probabilities count only the copiable ones.
    """
    ref = np.array(panel_typed.T, dtype=np.int8, order="C")  # lshmm's layout [sites, haplotypes]; a copy we may mark
    copiable = panel_typed
    if exclude is not None and len(exclude):
        ref[:, exclude] = NONCOPY
        copiable = np.delete(panel_typed, exclude, axis=0)
    if len(copiable) < 3:
        raise ValueError(f"{len(copiable)} copiable panel haplotype(s): the Li–Stephens model needs at least 3")
    r = switch_probabilities(marker_pos, len(copiable), ne)
    emissions = _emissions(copiable, query_typed, _mutation_probability(len(copiable)))
    query = np.ascontiguousarray(query_typed, dtype=np.int8)[None, :]
    n, m = ref.shape[1], ref.shape[0]
    fwd, scale, _ = ls_hap.forwards_ls_hap(n, m, ref, query, emissions, r, norm=True)
    post = fwd * ls_hap.backwards_ls_hap(n, m, ref, query, emissions, scale, r)
    post /= post.sum(axis=1, keepdims=True)
    return post


def interpolation(marker_pos: np.ndarray, site_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every site: the marker interval it lies in (0 … M, the markers either side are ``i − 1`` and ``i``) and
    the weight of the right-hand marker; sites outside the markers take the nearest one's posterior."""
    interval = np.searchsorted(marker_pos, site_pos, side="left")  # first marker >= site
    lo = marker_pos[np.clip(interval - 1, 0, None)]
    hi = marker_pos[np.clip(interval, None, len(marker_pos) - 1)]
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(span > 0, (site_pos - lo) / span, np.where(interval == 0, 1.0, 0.0))
    return interval, weight


def alt_posterior(query: np.ndarray, panel: np.ndarray, observed: np.ndarray, positions: np.ndarray, *,
                  ne: float = 1e5, exclude: np.ndarray | None = None, chunk: int = 64) -> np.ndarray:
    """P(ALT) [Q, S] at every site for query haplotypes [Q, S] (only ``observed`` markers are read).

    ``panel`` [N, S] 0/1 haplotypes; ``exclude`` [Q, m] panel rows each query may not copy.
    Typed sites get the model's posterior too (callers keep the observed allele there).
    Forward–backward runs per query in lshmm's compiled loops (O(M·N)); the interpolation then
    runs per marker interval for ``chunk`` queries at once as two matrix products
    ([q, N] posteriors at the interval's ends by the panel's alleles at its sites).
    """
    marker_pos = positions[observed].astype(np.float64)
    if len(marker_pos) == 0:
        raise ValueError("no observed (typed) marker: nothing for the Li–Stephens model to copy on")
    interval, weight = interpolation(marker_pos, positions.astype(np.float64))
    panel_typed = panel[:, observed]
    alt = panel.astype(np.float32)  # [N, S]
    bounds = np.searchsorted(interval, np.arange(len(marker_pos) + 2))  # sites of interval i: bounds[i]:bounds[i+1]
    out = np.empty(query.shape, np.float32)
    post = np.empty((len(marker_pos), min(chunk, len(query)), len(panel)), np.float32)  # [M, q, N]: rows contiguous
    for s in range(0, len(query), chunk):
        rows = range(s, min(s + chunk, len(query)))
        for j, q in enumerate(rows):
            post[:, j, :] = marker_posteriors(query[q, observed], panel_typed, marker_pos, ne=ne,
                                              exclude=None if exclude is None else exclude[q])
        for i in range(len(marker_pos) + 1):
            sites = slice(bounds[i], bounds[i + 1])
            if sites.start == sites.stop:
                continue
            left, right = post[max(i - 1, 0), :len(rows)], post[min(i, len(marker_pos) - 1), :len(rows)]
            w = weight[sites].astype(np.float32)
            out[rows.start:rows.stop, sites] = (1 - w) * (left @ alt[:, sites]) + w * (right @ alt[:, sites])
    return np.clip(out, 0.0, 1.0, out=out)
