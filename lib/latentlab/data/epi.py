"""Enhancer–promoter interaction data: validated loaders and a simulator with ground truth.

Real formats: a pairs table ``enhancer, promoter, label, cell_line`` (CSV/TSV),
sequences as a table ``region, sequence`` or FASTA, an optional cell-line
feature table ``cell_line, f1, f2, ...`` and motifs in JASPAR format. Every
input a user can get wrong raises ``DataError`` naming the file and record.

Sequences are one-hot encoded exactly once, at load, into fixed-length arrays
(centre-cropped, or padded symmetrically with N = all-zero columns), and the
PWM scan of every region is computed once and cached on the data object, so
no epoch ever re-encodes a sequence.

The simulator plants real JASPAR motifs (pyjaspar's bundled database, no
network) into random background. Each cell line sits at a point ``t_c`` on a
circular manifold; motif ``i`` is accessible in cell lines whose ``t_c`` lies
within an arc around the motif's centre (sparse, continuous truth ``a_c``).
A pair interacts when it carries a compatible (enhancer motif, promoter motif)
pair whose two motifs are both accessible in that cell line. Enhancers are
sampled per cell line with a bias towards accessible motifs (as candidate
enhancers in real data come from that cell line's open chromatin), so an
unlabelled support set of a cell line carries information about its gates.
"""

from __future__ import annotations

import dataclasses
import io as _io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from latentlab.io import atomic_write

BASES = "ACGT"
PAIR_COLUMNS = ("enhancer", "promoter", "label", "cell_line")
# Distinct TF families (no two from the same family) from JASPAR CORE vertebrates, bundled with pyjaspar.
MOTIF_IDS = (  # ordered by how reliably a planted site is found by the scan (long, high-information first)
    "MA0139.2", "MA0079.5", "MA0105.4", "MA0112.4", "MA0144.3", "MA0154.5", "MA0003.5", "MA0028.3",
    "MA0069.1", "MA0083.3", "MA0113.4", "MA0162.5", "MA0093.4", "MA0131.3", "MA0099.4", "MA0135.2",
    "MA0117.3", "MA0102.5", "MA0090.4", "MA0018.5", "MA0043.4", "MA0065.3", "MA0114.5", "MA0095.4",
    "MA0148.5", "MA0036.4", "MA0077.2", "MA0108.3",
)


class DataError(ValueError):
    """An input file does not have the shape or content the study needs."""


@dataclasses.dataclass
class Motif:
    """A position frequency matrix; ``pwm`` is the (4, L) log2-odds matrix against a uniform background."""

    matrix_id: str
    name: str
    counts: np.ndarray  # (4, L) in ACGT order

    @property
    def probabilities(self) -> np.ndarray:
        c = self.counts + 0.25  # pseudocount keeps log-odds finite
        return c / c.sum(axis=0, keepdims=True)

    @property
    def pwm(self) -> np.ndarray:
        return np.log2(self.probabilities / 0.25).astype(np.float32)


@dataclasses.dataclass
class EpiData:
    """Pairs plus cached one-hot sequences and cell-line context.

    ``pairs`` has the four public columns plus integer ``enh``, ``prom`` (rows of
    ``enh_onehot``/``prom_onehot``) and ``cell`` (index into ``cell_lines``).
    ``truth`` (simulated data only) holds ``accessibility`` (cell line × motif).
    """

    pairs: pd.DataFrame
    enhancers: list[str]
    promoters: list[str]
    enh_onehot: np.ndarray  # (n_enh, 4, Le) uint8
    prom_onehot: np.ndarray  # (n_prom, 4, Lp) uint8
    cell_lines: list[str]
    cell_features: np.ndarray | None = None  # (C, m) float32, standardised
    motifs: list[Motif] = dataclasses.field(default_factory=list)
    truth: dict | None = None
    _scans: dict = dataclasses.field(default_factory=dict, repr=False)

    def scans(self, motifs: list[Motif] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Max PWM score per (region, motif) on both strands, computed once and cached."""
        motifs = motifs or self.motifs
        if not motifs:
            raise DataError("no motifs: the pwm encoder needs a JASPAR motif file (or simulated data)")
        key = tuple(m.matrix_id for m in motifs)
        if key not in self._scans:
            bank = [m.pwm for m in motifs]
            self._scans[key] = (scan_max(self.enh_onehot, bank), scan_max(self.prom_onehot, bank))
        return self._scans[key]

    def summary(self) -> pd.DataFrame:
        g = self.pairs.groupby("cell_line", sort=False)["label"]
        return pd.DataFrame({"pairs": g.size(), "positives": g.sum(), "positive rate": g.mean().round(4)})


# --------------------------------------------------------------------------- encoding


def one_hot(sequences: list[str], length: int) -> np.ndarray:
    """(n, 4, length) uint8; centre-crop longer sequences, pad shorter ones symmetrically with N (zeros)."""
    out = np.zeros((len(sequences), 4, length), dtype=np.uint8)
    lookup = np.full(256, 4, dtype=np.int64)
    for i, b in enumerate(BASES):
        lookup[ord(b)] = i
    for row, seq in enumerate(sequences):
        codes = lookup[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
        if len(codes) > length:
            start = (len(codes) - length) // 2
            codes = codes[start : start + length]
        offset = (length - len(codes)) // 2
        pos = np.nonzero(codes < 4)[0]
        out[row, codes[pos], pos + offset] = 1
    return out


def scan_max(onehot: np.ndarray, pwms: list[np.ndarray], chunk: int = 512) -> np.ndarray:
    """Best log-odds match of each PWM on either strand: (n_regions, n_motifs) float32."""
    import torch

    width = max(p.shape[1] for p in pwms)
    bank = np.zeros((len(pwms), 4, width), dtype=np.float32)
    for i, p in enumerate(pwms):
        bank[i, :, : p.shape[1]] = p
    weight = torch.from_numpy(bank)
    reverse = torch.flip(weight, dims=(1, 2))  # complement (ACGT -> TGCA) and reverse
    out = []
    with torch.no_grad():
        for start in range(0, len(onehot), chunk):
            x = torch.from_numpy(onehot[start : start + chunk].astype(np.float32))
            fwd = torch.nn.functional.conv1d(x, weight).amax(dim=2)
            rev = torch.nn.functional.conv1d(x, reverse).amax(dim=2)
            out.append(torch.maximum(fwd, rev).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(pwms)), dtype=np.float32)


# --------------------------------------------------------------------------- loaders


def _require_nonempty(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")


def _read_table(path: Path) -> pd.DataFrame:
    _require_nonempty(path)
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty") from exc
    if frame.empty:
        raise DataError(f"{path}: header only, no records")
    frame.columns = [c.strip() for c in frame.columns]
    return frame


def load_pairs(path: str | Path) -> pd.DataFrame:
    """Pairs table with columns ``enhancer, promoter, label, cell_line``; labels 0/1, both classes per cell line."""
    path = Path(path)
    frame = _read_table(path)
    missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {list(PAIR_COLUMNS)}, got {list(frame.columns)}")
    frame = frame[list(PAIR_COLUMNS)].copy()
    for col in ("enhancer", "promoter", "cell_line"):
        frame[col] = frame[col].str.strip()
        blank = np.nonzero((frame[col] == "").to_numpy())[0]
        if len(blank):
            raise DataError(f"{path}: record {blank[0] + 2} (line {blank[0] + 2}): empty {col!r}")
    bad = ~frame["label"].str.strip().isin(["0", "1"])
    if bad.any():
        row = int(np.nonzero(bad.to_numpy())[0][0])
        raise DataError(
            f"{path}: line {row + 2} (enhancer {frame.enhancer.iat[row]!r}, promoter {frame.promoter.iat[row]!r}): "
            f"label {frame.label.iat[row]!r}; expected 0 or 1"
        )
    frame["label"] = frame["label"].str.strip().astype(np.int64)
    classes = frame.groupby("cell_line", sort=False)["label"].nunique()
    single = classes[classes < 2]
    if len(single):
        name = single.index[0]
        only = int(frame.loc[frame.cell_line == name, "label"].iat[0])
        raise DataError(
            f"{path}: cell line {name!r} has a single class (all labels {only}); AUPR and validation need both 0 and 1"
        )
    return frame.reset_index(drop=True)


def load_sequences(path: str | Path) -> dict[str, str]:
    """Region → sequence from FASTA (``.fa``/``.fasta``/``.fna``) or a ``region, sequence`` table."""
    path = Path(path)
    _require_nonempty(path)
    if path.suffix.lower() in (".fa", ".fasta", ".fna"):
        records = _parse_fasta(path)
    else:
        frame = _read_table(path)
        missing = [c for c in ("region", "sequence") if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected 'region, sequence'")
        records = list(zip(frame["region"].str.strip(), frame["sequence"].str.strip(), strict=True))
    seqs: dict[str, str] = {}
    for name, seq in records:
        if name in seqs:
            raise DataError(f"{path}: duplicate region {name!r}")
        seq = seq.upper()
        if not seq:
            raise DataError(f"{path}: region {name!r} has an empty sequence")
        bad = set(seq) - set("ACGTN")
        if bad:
            pos = next(i for i, ch in enumerate(seq) if ch in bad)
            raise DataError(
                f"{path}: region {name!r} has character(s) {sorted(bad)} (first at position {pos + 1}); "
                "expected only A, C, G, T, N"
            )
        seqs[name] = seq
    if not seqs:
        raise DataError(f"{path}: no sequences")
    return seqs


def _parse_fasta(path: Path) -> list[tuple[str, str]]:
    records: list[tuple[str, list[str]]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            name = line[1:].split()[0] if line[1:].strip() else ""
            if not name:
                raise DataError(f"{path}: line {number}: FASTA header without a region name")
            records.append((name, []))
        elif not records:
            raise DataError(f"{path}: line {number}: sequence before the first '>' header; not FASTA")
        else:
            records[-1][1].append(line)
    return [(name, "".join(parts)) for name, parts in records]


def load_cell_features(path: str | Path) -> pd.DataFrame:
    """Cell line × feature table: first column ``cell_line``, the rest numeric (e.g. accessibility summaries)."""
    path = Path(path)
    frame = _read_table(path)
    if frame.columns[0] != "cell_line":
        raise DataError(f"{path}: first column must be 'cell_line', got {frame.columns[0]!r}")
    if frame.shape[1] < 2:
        raise DataError(f"{path}: no feature columns after 'cell_line'")
    if frame.cell_line.duplicated().any():
        raise DataError(f"{path}: duplicate cell line {frame.cell_line[frame.cell_line.duplicated()].iat[0]!r}")
    values = frame.set_index("cell_line").apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any():
        row, col = next((r, c) for r in values.index for c in values.columns if pd.isna(values.at[r, c]))
        raise DataError(f"{path}: cell line {row!r}, column {col!r}: {frame.set_index('cell_line').at[row, col]!r} is not a number")
    return values.astype(np.float32)


def load_motifs(path: str | Path) -> list[Motif]:
    """Motifs in JASPAR format (as written by Bio.motifs / downloaded from jaspar.elixir.no)."""
    from Bio import motifs as bio_motifs

    path = Path(path)
    _require_nonempty(path)
    try:
        parsed = list(bio_motifs.parse(_io.StringIO(path.read_text()), "jaspar"))
    except Exception as exc:  # Biopython raises ValueError/KeyError for malformed matrices
        raise DataError(f"{path}: not a readable JASPAR motif file ({exc})") from exc
    if not parsed:
        raise DataError(f"{path}: no motifs")
    return [Motif(m.matrix_id, m.name, np.array([m.counts[b] for b in BASES], dtype=np.float64)) for m in parsed]


def load_epi(
    pairs: str | Path,
    sequences: str | Path | list[str | Path],
    *,
    cell_features: str | Path | None = None,
    motifs: str | Path | None = None,
    enhancer_len: int = 500,
    promoter_len: int = 300,
) -> EpiData:
    """Read and cross-validate pairs, sequences (one or several files), features and motifs; one-hot once."""
    pairs_path = Path(pairs)
    frame = load_pairs(pairs_path)
    seqs: dict[str, str] = {}
    for source in sequences if isinstance(sequences, list) else [sequences]:
        for name, seq in load_sequences(source).items():
            if name in seqs:
                raise DataError(f"{source}: region {name!r} also defined in an earlier sequence file")
            seqs[name] = seq
    for col in ("enhancer", "promoter"):
        unknown = ~frame[col].isin(seqs.keys())
        if unknown.any():
            row = int(np.nonzero(unknown.to_numpy())[0][0])
            raise DataError(
                f"{pairs_path}: line {row + 2}: {col} {frame[col].iat[row]!r} is not in the sequence file(s) "
                f"({int(unknown.sum())} unknown {col} record(s))"
            )
    enhancers = list(dict.fromkeys(frame.enhancer))
    promoters = list(dict.fromkeys(frame.promoter))
    cells = list(dict.fromkeys(frame.cell_line))
    features = None
    if cell_features is not None:
        table = load_cell_features(cell_features)
        missing = [c for c in cells if c not in table.index]
        if missing:
            raise DataError(f"{cell_features}: no features for cell line(s) {missing} that appear in {pairs_path}")
        values = table.loc[cells].to_numpy(np.float32)
        sd = values.std(axis=0)
        features = ((values - values.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
    e_index = {r: i for i, r in enumerate(enhancers)}
    p_index = {r: i for i, r in enumerate(promoters)}
    c_index = {c: i for i, c in enumerate(cells)}
    frame["enh"] = frame.enhancer.map(e_index).astype(np.int64)
    frame["prom"] = frame.promoter.map(p_index).astype(np.int64)
    frame["cell"] = frame.cell_line.map(c_index).astype(np.int64)
    return EpiData(
        pairs=frame,
        enhancers=enhancers,
        promoters=promoters,
        enh_onehot=one_hot([seqs[r] for r in enhancers], enhancer_len),
        prom_onehot=one_hot([seqs[r] for r in promoters], promoter_len),
        cell_lines=cells,
        cell_features=features,
        motifs=load_motifs(motifs) if motifs is not None else [],
    )


# --------------------------------------------------------------------------- simulator


@dataclasses.dataclass(frozen=True)
class EpiSimulation:
    """Sizes and effect strengths of the simulated EPI data (see module docstring)."""

    n_cell_lines: int = 8
    n_motifs: int = 12
    n_enhancers: int = 1500
    n_promoters: int = 600
    pairs_per_cell_line: int = 1000
    enhancer_len: int = 300
    promoter_len: int = 200
    positive_rate: float = 0.05
    accessible_fraction: float = 0.3
    partners: int = 1  # compatible promoter motifs per enhancer motif
    motifs_per_region: float = 2.0
    enhancer_bias: float = 1.0  # log-odds boost per accessible motif when sampling a cell line's enhancers
    label_noise: float = 0.02
    site_sharpness: float = 2.0  # planted sites drawn from PWM^sharpness: high-affinity, findable by a scan
    n_features: int = 4
    gc: float = 0.42
    seed: int = 0


def jaspar_motifs(n: int) -> list[Motif]:
    """The first ``n`` of ``MOTIF_IDS`` from pyjaspar's bundled JASPAR database (no network)."""
    from pyjaspar import jaspardb

    if not 1 <= n <= len(MOTIF_IDS):
        raise ValueError(f"n_motifs must be in 1..{len(MOTIF_IDS)}, got {n}")
    db = jaspardb()
    out = []
    for matrix_id in MOTIF_IDS[:n]:
        m = db.fetch_motif_by_id(matrix_id)
        if m is None:
            raise DataError(f"JASPAR motif {matrix_id} is not in pyjaspar's bundled database ({db.release})")
        out.append(Motif(m.matrix_id, m.name, np.array([m.counts[b] for b in BASES], dtype=np.float64)))
    return out


def _sample_site(motif: Motif, rng: np.random.Generator, sharpness: float = 1.0) -> np.ndarray:
    """One site drawn from the PWM; ``sharpness`` > 1 draws closer to the consensus (a high-affinity site)."""
    p = motif.probabilities ** sharpness
    p = p / p.sum(axis=0, keepdims=True)
    u = rng.random(p.shape[1])
    return (u[None, :] > np.cumsum(p, axis=0)).sum(axis=0).clip(0, 3)


def _regions(n: int, length: int, motifs: list[Motif], sim: EpiSimulation, rng: np.random.Generator):
    """Background sequence (codes 0..3) with planted motif sites on a random strand; returns (codes, presence)."""
    probs = [(1 - sim.gc) / 2, sim.gc / 2, sim.gc / 2, (1 - sim.gc) / 2]
    codes = rng.choice(4, size=(n, length), p=probs)
    presence = np.zeros((n, len(motifs)), dtype=np.int8)
    counts = rng.poisson(sim.motifs_per_region, size=n)
    for r in range(n):
        for i in rng.choice(len(motifs), size=min(counts[r], len(motifs)), replace=False):
            site = _sample_site(motifs[i], rng, sim.site_sharpness)
            if rng.random() < 0.5:
                site = 3 - site[::-1]
            start = rng.integers(0, length - len(site))
            codes[r, start : start + len(site)] = site
            presence[r, i] = 1
    # overlapping sites can partly overwrite each other: a small, realistic source of label noise
    return codes, presence


def _codes_to_str(codes: np.ndarray) -> list[str]:
    table = np.array(list(BASES))
    return ["".join(table[row]) for row in codes]


def simulate_epi(sim: EpiSimulation) -> dict:
    """Draw sequences, cell lines, truth and labelled pairs; returns a dict of frames and arrays."""
    rng = np.random.default_rng(sim.seed)
    motifs = jaspar_motifs(sim.n_motifs)
    n_m, n_c = sim.n_motifs, sim.n_cell_lines
    # cell lines: evenly spread points on a circle (with jitter) = the continuous manifold
    t = (np.arange(n_c) + rng.uniform(-0.25, 0.25, n_c)) / n_c
    centres = rng.permutation(n_m) / n_m + rng.uniform(0, 1 / n_m, n_m)
    dist = np.abs(t[:, None] - centres[None, :])
    dist = np.minimum(dist, 1 - dist)
    access = (dist < sim.accessible_fraction / 2).astype(np.int8)  # (C, n_m) sparse, continuous in t
    access[np.arange(n_c), dist.argmin(axis=1)] = 1  # every cell line exposes at least its nearest motif
    freqs = np.arange(1, sim.n_features // 2 + 1)
    features = np.concatenate([np.sin(2 * np.pi * freqs[None] * t[:, None]), np.cos(2 * np.pi * freqs[None] * t[:, None])], 1)
    features = features[:, : sim.n_features] + rng.normal(0, 0.05, (n_c, sim.n_features))
    compat = np.zeros((n_m, n_m), dtype=np.int8)  # enhancer motif i is compatible with promoter motif j
    for i in range(n_m):
        compat[i, rng.choice(n_m, size=min(sim.partners, n_m), replace=False)] = 1
    for c in range(n_c):  # every cell line needs at least one accessible compatible pair, else no positives
        open_ = np.nonzero(access[c])[0]
        if not (compat[np.ix_(open_, open_)]).any():
            compat[rng.choice(open_), rng.choice(open_)] = 1
    e_codes, e_pres = _regions(sim.n_enhancers, sim.enhancer_len, motifs, sim, rng)
    p_codes, p_pres = _regions(sim.n_promoters, sim.promoter_len, motifs, sim, rng)
    names = [f"CL{c:02d}" for c in range(n_c)]
    rows = []
    for c in range(n_c):
        rows.append(_pairs_for_cell(c, names[c], access[c], compat, e_pres, p_pres, sim, rng))
    pairs = pd.concat(rows, ignore_index=True)
    return {
        "pairs": pairs,
        "enhancers": dict(zip([f"enh{i:05d}" for i in range(sim.n_enhancers)], _codes_to_str(e_codes), strict=True)),
        "promoters": dict(zip([f"prom{i:05d}" for i in range(sim.n_promoters)], _codes_to_str(p_codes), strict=True)),
        "features": pd.DataFrame(features, index=pd.Index(names, name="cell_line"),
                                 columns=[f"f{i + 1}" for i in range(sim.n_features)]),
        "motifs": motifs,
        "accessibility": pd.DataFrame(access, index=pd.Index(names, name="cell_line"),
                                      columns=[m.name for m in motifs]),
        "position": pd.Series(t, index=names, name="t"),
        "compatibility": compat,
        "enhancer_presence": e_pres,
        "promoter_presence": p_pres,
    }


def _pairs_for_cell(c, name, access, compat, e_pres, p_pres, sim, rng) -> pd.DataFrame:
    """Candidate pairs with accessibility-biased enhancers; labels from accessible compatible motif pairs."""
    n_pairs = sim.pairs_per_cell_line
    logits = sim.enhancer_bias * (e_pres @ access)
    w = np.exp(logits - logits.max())
    n_cand = 30 * n_pairs
    enh = rng.choice(len(e_pres), size=n_cand, p=w / w.sum())
    prom = rng.integers(0, len(p_pres), size=n_cand)
    e_acc = e_pres[enh] * access  # accessible motifs on each side
    p_acc = p_pres[prom] * access
    score = np.einsum("ni,ij,nj->n", e_acc.astype(np.float32), compat.astype(np.float32), p_acc.astype(np.float32))
    truth = score > 0
    key = np.unique(np.stack([enh, prom], 1), axis=0, return_index=True)[1]  # one draw per (enhancer, promoter)
    keep = np.zeros(n_cand, dtype=bool)
    keep[key] = True
    pos_idx = rng.permutation(np.nonzero(truth & keep)[0])
    neg_idx = rng.permutation(np.nonzero(~truth & keep)[0])
    n_pos = min(int(round(sim.positive_rate * n_pairs)), len(pos_idx))
    if n_pos < 2:
        raise DataError(f"simulator: cell line {name} has only {len(pos_idx)} positive candidates; raise "
                        "accessible_fraction, partners or motifs_per_region")
    chosen = np.concatenate([pos_idx[:n_pos], neg_idx[: n_pairs - n_pos]])
    labels = truth[chosen].astype(np.int64)
    flip = rng.random(len(chosen)) < sim.label_noise  # symmetric noise, restricted so both classes remain
    n_flip_pos = int((flip & (labels == 1)).sum())
    neg_pos = np.nonzero(labels == 0)[0]
    labels[np.nonzero(flip & (labels == 1))[0]] = 0
    labels[rng.choice(neg_pos, size=n_flip_pos, replace=False)] = 1  # keeps the positive rate fixed
    return pd.DataFrame({
        "enhancer": [f"enh{i:05d}" for i in enh[chosen]],
        "promoter": [f"prom{i:05d}" for i in prom[chosen]],
        "label": labels,
        "cell_line": name,
        "true_label": truth[chosen].astype(np.int64),
    })


def write_epi(sim_out: dict, directory: str | Path) -> dict[str, Path]:
    """Write the simulation in the real formats: pairs.csv, sequences.fa, cell_lines.csv, motifs.jaspar, truth."""
    from Bio import motifs as bio_motifs
    from Bio.motifs.jaspar import Motif as JMotif

    directory = Path(directory)
    paths = {name: directory / fname for name, fname in (
        ("pairs", "pairs.csv"), ("sequences", "sequences.fa"), ("cell_features", "cell_lines.csv"),
        ("motifs", "motifs.jaspar"), ("accessibility", "truth_accessibility.csv"))}
    pairs = sim_out["pairs"]
    atomic_write(paths["pairs"], lambda p: pairs[list(PAIR_COLUMNS)].to_csv(p, index=False))
    fasta = "".join(f">{k}\n{v}\n" for k, v in {**sim_out["enhancers"], **sim_out["promoters"]}.items())
    atomic_write(paths["sequences"], lambda p: p.write_text(fasta))
    atomic_write(paths["cell_features"], lambda p: sim_out["features"].to_csv(p))
    jm = [JMotif(m.matrix_id, m.name, counts={b: list(m.counts[i]) for i, b in enumerate(BASES)})
          for m in sim_out["motifs"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = bio_motifs.write(jm, "jaspar")
    atomic_write(paths["motifs"], lambda p: p.write_text(text))
    atomic_write(paths["accessibility"], lambda p: sim_out["accessibility"].to_csv(p))
    return paths


def simulate_and_load(sim: EpiSimulation, directory: str | Path) -> EpiData:
    """Simulate, write the real formats, read them back through the validated loaders, attach the truth."""
    out = simulate_epi(sim)
    paths = write_epi(out, directory)
    data = load_epi(paths["pairs"], paths["sequences"], cell_features=paths["cell_features"],
                    motifs=paths["motifs"], enhancer_len=sim.enhancer_len, promoter_len=sim.promoter_len)
    truth = pd.read_csv(paths["accessibility"], index_col="cell_line").loc[data.cell_lines]
    data.truth = {"accessibility": truth.to_numpy(np.int8), "motif_names": list(truth.columns),
                  "position": out["position"].loc[data.cell_lines].to_numpy(),
                  "true_label": out["pairs"]["true_label"].to_numpy()}
    return data
