"""Enhancer–promoter interaction data: validated loaders and a simulator with ground truth.

Real formats (every path is a parameter; column order is free, extra columns are ignored):

* pairs, either **named** ``enhancer, promoter, cell_line, label`` (region names looked up in a
  sequence file: FASTA read by Biopython ``SeqIO`` or a ``region, sequence`` table), or **genome
  coordinates** ``enhancer_chrom, enhancer_start, enhancer_end, promoter_chrom, promoter_start,
  promoter_end, cell_line, label`` (TargetFinder/BENGI style) cut from a genome FASTA, plain or
  bgzip, through a pyfaidx index. Coordinates are BED-like (0-based, half-open) by default;
  ``coordinates="one_based"`` reads 1-based inclusive ones. CSV or TSV (the header decides), plain
  or gzip.
* an optional cell-line feature table (a ``cell_line`` column plus numeric columns);
* optional motifs (JASPAR or MEME-minimal, read by ``Bio.motifs``); without a file the motifs come
  from pyjaspar's bundled JASPAR CORE vertebrates (no network);
* an optional truth table cell line × motif (0/1 accessibility) used only to score the gates.

Every input a user can get wrong raises ``DataError`` naming the file, the line/record or column,
what was found and what was expected. Sequences keep their own lengths unless ``max_len`` asks for
a crop, which is announced (``EpiWarning``) with how many regions it cut; shorter regions are padded
with N (all-zero columns) and the PWM scan never scores a window that overlaps padding.

The simulator plants real JASPAR motifs into random background. Each cell line sits at a point
``t_c`` on a circular manifold; motif ``i`` is accessible in cell lines whose ``t_c`` lies within an
arc around the motif's centre (sparse, continuous truth ``a_c``). A pair interacts when it carries a
compatible (enhancer motif, promoter motif) pair whose two motifs are both accessible in that cell
line. Enhancers are sampled per cell line with a bias towards accessible motifs (as candidate
enhancers in real data come from that cell line's open chromatin), so an unlabelled support set of
a cell line carries information about its gates. ``write_example`` embeds a small simulation in a
synthetic genome and writes it in the coordinate format a user brings.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io as _io
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from latentlab.io import atomic_write

BASES = "ACGT"
PAIR_COLUMNS = ("enhancer", "promoter", "label", "cell_line")
COORD_COLUMNS = ("enhancer_chrom", "enhancer_start", "enhancer_end", "promoter_chrom", "promoter_start",
                 "promoter_end", "cell_line", "label")
COORDINATE_SYSTEMS = ("bed", "one_based")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Distinct TF families (no two from the same family) from JASPAR CORE vertebrates, bundled with pyjaspar.
MOTIF_IDS = (  # ordered by how reliably a planted site is found by the scan (long, high-information first)
    "MA0139.2", "MA0079.5", "MA0105.4", "MA0112.4", "MA0144.3", "MA0154.5", "MA0003.5", "MA0028.3",
    "MA0069.1", "MA0083.3", "MA0113.4", "MA0162.5", "MA0093.4", "MA0131.3", "MA0099.4", "MA0135.2",
    "MA0117.3", "MA0102.5", "MA0090.4", "MA0018.5", "MA0043.4", "MA0065.3", "MA0114.5", "MA0095.4",
    "MA0148.5", "MA0036.4", "MA0077.2", "MA0108.3",
)


class DataError(ValueError):
    """An input file does not have the shape or content the study needs."""


class EpiWarning(UserWarning):
    """Something the loader changed or dropped on purpose (a crop, exact duplicate rows): said out loud."""


@dataclasses.dataclass
class Motif:
    """A position frequency matrix; ``pwm`` is the (4, L) log2-odds matrix against a uniform background."""

    matrix_id: str
    name: str
    counts: np.ndarray  # (4, L) in ACGT order
    source: str = "JASPAR (pyjaspar)"

    @property
    def probabilities(self) -> np.ndarray:
        c = self.counts + 0.25  # pseudocount keeps log-odds finite
        return c / c.sum(axis=0, keepdims=True)

    @property
    def pwm(self) -> np.ndarray:
        return np.log2(self.probabilities / 0.25).astype(np.float32)

    @property
    def width(self) -> int:
        return int(self.counts.shape[1])


@dataclasses.dataclass
class Regions:
    """One role's regions (enhancers or promoters): one-hot once, with true lengths and pad offsets."""

    names: list[str]
    onehot: np.ndarray  # (n, 4, L) uint8, each region centred, N/padding = all-zero columns
    lengths: np.ndarray  # (n,) bases kept per region
    offsets: np.ndarray  # (n,) first kept base's column
    origin: list[str]  # where each region comes from, for error messages ("pairs.tsv line 7")

    def __len__(self) -> int:
        return len(self.names)


@dataclasses.dataclass
class EpiData:
    """Pairs plus cached one-hot sequences and cell-line context.

    ``pairs`` has the four public columns plus ``line`` (its line in the pairs file) and integer
    ``enh``, ``prom`` (rows of ``enh_onehot``/``prom_onehot``) and ``cell`` (index into ``cell_lines``).
    ``truth`` (simulated data, or a user's truth table) holds ``accessibility`` (cell line × motif,
    NaN where unknown) and ``motif_names``; the simulator adds ``position`` and ``true_label``.
    ``notes`` lists what the loader decided for the user (defaults taken, regions cropped).
    """

    pairs: pd.DataFrame
    enhancers: Regions
    promoters: Regions
    cell_lines: list[str]
    cell_features: np.ndarray | None = None  # (C, m) float32, standardised
    motifs: list[Motif] = dataclasses.field(default_factory=list)
    truth: dict | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    sources: dict = dataclasses.field(default_factory=dict)
    _scans: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def enh_onehot(self) -> np.ndarray:
        return self.enhancers.onehot

    @property
    def prom_onehot(self) -> np.ndarray:
        return self.promoters.onehot

    def scans(self, motifs: list[Motif] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Max PWM score per (region, motif) on both strands, computed once and cached."""
        motifs = motifs or self.motifs
        if not motifs:
            raise DataError("no motifs: the pwm encoder needs motifs (a motif file, or JASPAR's by default)")
        key = tuple(m.matrix_id for m in motifs)
        if key not in self._scans:
            for regions in (self.enhancers, self.promoters):
                check_motif_fits(motifs, regions)
            self._scans[key] = tuple(scan_max(r.onehot, [m.pwm for m in motifs], r.lengths, r.offsets)
                                     for r in (self.enhancers, self.promoters))
        return self._scans[key]

    def summary(self) -> pd.DataFrame:
        g = self.pairs.groupby("cell_line", sort=False)["label"]
        return pd.DataFrame({"pairs": g.size(), "positives": g.sum(), "positive rate": g.mean().round(4)})

    def describe(self) -> str:
        """One paragraph: what was read, from where, at which lengths."""
        e, p = self.enhancers, self.promoters
        lines = [f"{len(self.pairs)} pairs, {len(self.cell_lines)} cell lines",
                 f"{len(e.names)} enhancers {_length_range(e.lengths)}, "
                 f"{len(p.names)} promoters {_length_range(p.lengths)}",
                 f"{len(self.motifs)} motifs: " + ", ".join(m.name for m in self.motifs)]
        lines += [f"{k}: {v}" for k, v in self.sources.items()]
        return "\n".join(lines + self.notes)


def _length_range(lengths: np.ndarray) -> str:
    lo, hi = int(lengths.min()), int(lengths.max())
    return f"× {lo} bp" if lo == hi else f"× {lo}–{hi} bp (median {int(np.median(lengths))})"


# --------------------------------------------------------------------------- encoding


def one_hot(sequences: list[str], length: int | None = None) -> np.ndarray:
    """(n, 4, length) uint8: each sequence centred; longer ones centre-cropped (callers announce it)."""
    return encode(sequences, length)[0]


def encode(sequences: list[str], length: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-hot ``sequences`` into (n, 4, L), L = ``length`` or the longest; returns (onehot, kept, offsets)."""
    lens = np.array([len(s) for s in sequences], dtype=np.int64)
    width = int(length if length is not None else (lens.max() if len(lens) else 0))
    out = np.zeros((len(sequences), 4, width), dtype=np.uint8)
    kept = np.minimum(lens, width)
    offsets = (width - kept) // 2
    lookup = np.full(256, 4, dtype=np.int64)
    for i, b in enumerate(BASES):
        lookup[ord(b)] = i
    for row, seq in enumerate(sequences):
        codes = lookup[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
        if len(codes) > width:
            start = (len(codes) - width) // 2
            codes = codes[start : start + width]
        pos = np.nonzero(codes < 4)[0]
        out[row, codes[pos], pos + offsets[row]] = 1
    return out, kept, offsets


def scan_max(onehot: np.ndarray, pwms: list[np.ndarray], lengths: np.ndarray | None = None,
             offsets: np.ndarray | None = None, chunk: int = 256) -> np.ndarray:
    """Best log-odds match of each PWM on either strand over windows fully inside each region.

    (n_regions, n_motifs) float32. ``lengths``/``offsets`` say where each region sits in its padded
    row (default: the whole row); a window that overlaps padding is never scored.
    """
    import torch

    n, _, width_l = onehot.shape
    lengths = np.full(n, width_l) if lengths is None else np.asarray(lengths)
    offsets = np.zeros(n, dtype=np.int64) if offsets is None else np.asarray(offsets)
    widths = np.array([p.shape[1] for p in pwms])
    w_max = int(widths.max())
    bank = np.zeros((len(pwms), 4, w_max), dtype=np.float32)
    for i, p in enumerate(pwms):
        bank[i, :, : p.shape[1]] = p
    weight = torch.from_numpy(bank)
    reverse = torch.flip(weight, dims=(1, 2))  # complement (ACGT -> TGCA) and reverse: motif sits at the right
    pad = w_max - 1
    k = torch.arange(width_l + pad)[None, None, :]  # window start in padded coordinates
    w = torch.as_tensor(widths)[None, :, None]
    out = []
    with torch.no_grad():
        for start in range(0, n, chunk):
            x = torch.from_numpy(onehot[start : start + chunk].astype(np.float32))
            x = torch.nn.functional.pad(x, (pad, pad))
            lo = torch.as_tensor(offsets[start : start + chunk] + pad)[:, None, None]
            hi = lo + torch.as_tensor(lengths[start : start + chunk])[:, None, None]
            fwd_ok = (k >= lo) & (k + w <= hi)
            rev_ok = (k + w_max - w >= lo) & (k + w_max <= hi)
            fwd = torch.nn.functional.conv1d(x, weight).masked_fill(~fwd_ok, -math.inf).amax(dim=2)
            rev = torch.nn.functional.conv1d(x, reverse).masked_fill(~rev_ok, -math.inf).amax(dim=2)
            out.append(torch.maximum(fwd, rev).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(pwms)), dtype=np.float32)


def check_motif_fits(motifs: list[Motif], regions: Regions) -> None:
    """A motif wider than a region cannot be scored on it: name both, and where each came from."""
    if not len(regions.lengths):
        return
    shortest = int(np.argmin(regions.lengths))
    widest = max(motifs, key=lambda m: m.width)
    if widest.width > regions.lengths[shortest]:
        raise DataError(
            f"motif {widest.matrix_id} {widest.name} ({widest.source}) is {widest.width} bp wide, but region "
            f"{regions.names[shortest]!r} ({regions.origin[shortest]}) is only {int(regions.lengths[shortest])} bp: "
            "a motif must fit inside every region; drop the motif or give longer regions"
        )


# --------------------------------------------------------------------------- reading text files


def _require_file(path: Path, what: str = "file") -> None:
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected a {what}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")


def read_text(path: str | Path) -> str:
    """The file's text: gzip (or bgzip) is decompressed by its magic bytes; bytes that are not UTF-8
    are an error naming the line and byte, never a silent replacement."""
    path = Path(path)
    _require_file(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: starts like gzip but does not decompress ({exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"{path}: line {line}, byte {column}: {raw[exc.start:exc.start + 1]!r} is not UTF-8 text; "
                        "expected a UTF-8 (or ASCII) text file, plain or gzip") from exc
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(f"{path}: line {line}: NUL byte; expected a text file (is this a binary file?)")
    if not text.strip():
        raise DataError(f"{path}: file has no content (only whitespace)")
    return text


def read_table(path: str | Path) -> pd.DataFrame:
    """CSV or TSV (tab if the header has a tab), all cells as stripped strings, plus ``line`` (1-based).

    Every record must have exactly the header's number of fields; a row with more or fewer is an
    error naming its line (pandas would shift or pad it silently)."""
    path = Path(path)
    text = read_text(path)
    lines = text.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.strip())
    sep = "\t" if "\t" in lines[first] else ","
    reader = csv.reader(_io.StringIO(text), delimiter=sep)
    header: list[str] | None = None
    rows, numbers = [], []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [c.strip().lstrip("#").strip() for c in row]
                _check_header(path, header, reader.line_num)
                continue
            if len(row) != len(header):
                raise DataError(f"{path}: line {reader.line_num}: {len(row)} field(s), expected {len(header)} "
                                f"as in the header {header} (separator {sep!r})")
            rows.append([c.strip() for c in row])
            numbers.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: not readable as CSV/TSV ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: header only, no records")
    frame = pd.DataFrame(rows, columns=header, dtype=str)
    frame["line"] = numbers
    return frame


def _check_header(path: Path, header: list[str], line: int) -> None:
    if any(not h for h in header):
        raise DataError(f"{path}: line {line}: empty column name in the header {header}")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DataError(f"{path}: line {line}: column(s) {dup} appear more than once in the header")
    if "line" in header:
        raise DataError(f"{path}: line {line}: a column may not be called 'line' (reserved for line numbers)")


def _fail(path: Path, frame: pd.DataFrame, mask: np.ndarray | pd.Series, message: str) -> None:
    """Raise for the first row where ``mask`` holds, naming its line; ``message`` says what and what was expected."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        row = int(np.nonzero(mask)[0][0])
        extra = f" ({int(mask.sum())} such row(s))" if mask.sum() > 1 else ""
        raise DataError(f"{path}: line {frame['line'].iat[row]}: {message}{extra}")


# --------------------------------------------------------------------------- pairs


def load_pairs(path: str | Path, coordinates: str = "bed") -> pd.DataFrame:
    """Pairs, named or as genome coordinates (see module docstring); labels 0/1, both classes per cell line.

    Returns ``enhancer, promoter, label, cell_line, line`` and, for coordinates, ``enhancer_chrom,
    enhancer_start, enhancer_end, promoter_chrom, ...`` as 0-based half-open integers; region names
    are then ``chrom:start-end`` in that convention.
    """
    if coordinates not in COORDINATE_SYSTEMS:
        raise DataError(f"coordinates must be one of {COORDINATE_SYSTEMS}, got {coordinates!r}")
    path = Path(path)
    frame = read_table(path)
    frame.columns = [c if c == "line" else c.strip().lower() for c in frame.columns]
    if set(COORD_COLUMNS) <= set(frame.columns):
        frame = _coordinate_pairs(path, frame, coordinates)
    elif set(PAIR_COLUMNS) <= set(frame.columns):
        frame = frame[[*PAIR_COLUMNS, "line"]].copy()
        for col in ("enhancer", "promoter"):
            _fail(path, frame, frame[col] == "", f"empty {col!r}")
    else:
        named = [c for c in PAIR_COLUMNS if c not in frame.columns]
        coord = [c for c in COORD_COLUMNS if c not in frame.columns]
        raise DataError(
            f"{path}: not a pairs table: for named regions it lacks {named} (expected {list(PAIR_COLUMNS)}); "
            f"for genome coordinates it lacks {coord} (expected {list(COORD_COLUMNS)}); "
            f"columns found: {[c for c in frame.columns if c != 'line']}")
    _fail(path, frame, frame.cell_line == "", "empty 'cell_line'")
    labels = frame["label"].str.lower().map({"0": 0, "1": 1, "0.0": 0, "1.0": 1})
    if labels.isna().any():
        _fail(path, frame, labels.isna(), f"column 'label': {frame['label'][labels.isna()].iat[0]!r}; "
              "expected 0 or 1")
    frame["label"] = labels.astype(np.int64)
    frame = _drop_duplicate_pairs(path, frame)
    classes = frame.groupby("cell_line", sort=False)["label"].agg(["nunique", "first", "size"])
    single = classes[classes["nunique"] < 2]
    if len(single):
        name = single.index[0]
        raise DataError(f"{path}: cell line {name!r} has a single class (all {int(single['size'].iat[0])} labels "
                        f"{int(single['first'].iat[0])}); AUPR and validation need both 0 and 1 in every cell line")
    return frame.reset_index(drop=True)


def _coordinate_pairs(path: Path, frame: pd.DataFrame, coordinates: str) -> pd.DataFrame:
    out = frame[[*COORD_COLUMNS, "line"]].copy()
    for role in ("enhancer", "promoter"):
        chrom = f"{role}_chrom"
        _fail(path, out, out[chrom] == "", f"empty {chrom!r}")
        for end in ("start", "end"):
            col = f"{role}_{end}"
            numeric = out[col].str.fullmatch(r"[0-9]+")
            if not numeric.all():
                bad = out[col][~numeric].iat[0]
                _fail(path, out, ~numeric, f"column {col!r}: {bad!r}; expected a non-negative whole number")
            out[col] = out[col].astype(np.int64)
        start, end = out[f"{role}_start"], out[f"{role}_end"]
        if coordinates == "one_based":
            _fail(path, out, start < 1, f"column '{role}_start' is 0; 1-based coordinates start at 1 "
                  "(use coordinates='bed' for 0-based)")
            _fail(path, out, end < start, f"{role} end < start (1-based inclusive coordinates need start <= end)")
            out[f"{role}_start"] = start - 1  # to 0-based half-open
        else:
            _fail(path, out, end <= start, f"{role} start >= end; BED coordinates are 0-based half-open, "
                  "start < end (use coordinates='one_based' for 1-based inclusive)")
        out[role] = (out[chrom] + ":" + out[f"{role}_start"].astype(str) + "-" + out[f"{role}_end"].astype(str))
    return out


def _drop_duplicate_pairs(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Conflicting labels for one (enhancer, promoter, cell line) are an error; exact repeats are dropped, loudly."""
    key = ["enhancer", "promoter", "cell_line"]
    dup = frame.duplicated(key, keep=False)
    if not dup.any():
        return frame
    groups = frame[dup].groupby(key, sort=False)
    for (enh, prom, cell), group in groups:
        if group.label.nunique() > 1:
            lines = group["line"].tolist()
            raise DataError(f"{path}: lines {lines[0]} and {lines[group.label.ne(group.label.iat[0]).argmax()]}: "
                            f"pair (enhancer {enh!r}, promoter {prom!r}, cell line {cell!r}) has conflicting labels "
                            f"{sorted(group.label.unique().tolist())}; expected one label per pair and cell line")
    repeats = frame.duplicated(key, keep="first")
    warnings.warn(f"{path}: {int(repeats.sum())} exact duplicate pair row(s) dropped (same enhancer, promoter, "
                  f"cell line and label; first at line {frame['line'][repeats].iat[0]})", EpiWarning, stacklevel=3)
    return frame[~repeats]


# --------------------------------------------------------------------------- sequences


def _check_bases(seq: str, where: str) -> str:
    """Upper-cased sequence of A, C, G, T, N only; anything else (or nothing, or only N) names ``where``."""
    seq = seq.upper()
    if not seq:
        raise DataError(f"{where}: empty sequence")
    bad = set(seq) - set("ACGTN")
    if bad:
        pos = next(i for i, ch in enumerate(seq) if ch in bad)
        raise DataError(f"{where}: character(s) {sorted(bad)} (first at position {pos + 1}); "
                        "expected only A, C, G, T, N")
    if seq.count("N") == len(seq):
        raise DataError(f"{where}: sequence is all N ({len(seq)} bp): no bases to score")
    return seq


def _is_fasta(path: Path, text: str) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    return any(s in FASTA_SUFFIXES for s in suffixes) or text.lstrip().startswith(">")


def load_sequences(path: str | Path) -> dict[str, str]:
    """Region → sequence from FASTA (Biopython ``SeqIO``, plain or gzip) or a ``region, sequence`` table."""
    from Bio import SeqIO

    path = Path(path)
    text = read_text(path)
    seqs: dict[str, str] = {}
    if _is_fasta(path, text):
        try:
            records = [(r.id, str(r.seq)) for r in SeqIO.parse(_io.StringIO(text), "fasta")]
        except ValueError as exc:
            raise DataError(f"{path}: not readable as FASTA ({str(exc).splitlines()[0]})") from exc
        where = [f"{path}: record {i + 1} ({name!r})" for i, (name, _) in enumerate(records)]
    else:
        frame = read_table(path)
        missing = [c for c in ("region", "sequence") if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected a FASTA file or a table with columns "
                            f"'region, sequence', got {[c for c in frame.columns if c != 'line']}")
        records = list(zip(frame["region"], frame["sequence"], strict=True))
        where = [f"{path}: line {n} (region {r!r})" for n, r in zip(frame["line"], frame["region"], strict=True)]
    if not records:
        raise DataError(f"{path}: no sequences (expected FASTA records '>name' or a 'region, sequence' table)")
    for (name, seq), loc in zip(records, where, strict=True):
        if not name:
            raise DataError(f"{loc}: record without a region name")
        if name in seqs:
            raise DataError(f"{loc}: duplicate region {name!r}")
        seqs[name] = _check_bases(seq, loc)
    return seqs


def open_genome(path: str | Path, index_dir: str | Path | None = None):
    """A pyfaidx ``Fasta`` over a plain or bgzip genome; the index goes beside it, or into ``index_dir``
    when that folder is not writable (a read-only data directory)."""
    import pyfaidx

    path = Path(path)
    _require_file(path, "genome FASTA")
    head = path.read_bytes()[:2]
    if head == b"\x1f\x8b" and path.read_bytes()[3:4] != b"\x04":  # gzip without BGZF's extra field
        raise DataError(f"{path}: gzip-compressed, but not bgzip (BGZF); pyfaidx needs random access: "
                        "recompress with `bgzip` (htslib) or Bio.bgzf, or give the plain FASTA")
    kwargs = {}
    fai = Path(str(path) + ".fai")
    if not fai.exists() and not os.access(path.parent, os.W_OK):
        if index_dir is None:
            raise DataError(f"{path}: no index {fai.name} beside it and its folder is read-only; "
                            "give a writable index folder")
        index_dir = Path(index_dir)
        index_dir.mkdir(parents=True, exist_ok=True)
        kwargs = {"indexname": str(index_dir / fai.name), "gzi_indexname": str(index_dir / (path.name + ".gzi"))}
    try:
        return pyfaidx.Fasta(str(path), sequence_always_upper=True, **kwargs)
    except pyfaidx.UnsupportedCompressionFormat as exc:
        raise DataError(f"{path}: compressed, but not with bgzip; recompress with `bgzip` or give the plain "
                        "FASTA") from exc
    except (pyfaidx.FastaIndexingError, ValueError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: not an indexable FASTA genome ({exc})") from exc


def genome_sequences(pairs: pd.DataFrame, genome, pairs_path: Path, genome_path: Path) -> dict[str, str]:
    """Cut every distinct region out of the genome; unknown contigs and regions past a contig's end name the line."""
    contigs = {name: len(record) for name, record in genome.records.items()}
    seqs: dict[str, str] = {}
    for role in ("enhancer", "promoter"):
        chrom, start, end = pairs[f"{role}_chrom"], pairs[f"{role}_start"], pairs[f"{role}_end"]
        unknown = ~chrom.isin(list(contigs))
        if unknown.any():
            shown = list(contigs)[:8]
            _fail(pairs_path, pairs, unknown, f"{role}_chrom {chrom[unknown].iat[0]!r} is not a contig of "
                  f"{genome_path} (it has {len(contigs)}: {shown}{' …' if len(contigs) > 8 else ''})")
        past = end.to_numpy() > chrom.map(contigs).to_numpy()
        if past.any():
            row = int(np.nonzero(past)[0][0])
            _fail(pairs_path, pairs, past, f"{role} {chrom.iat[row]}:{start.iat[row]}-{end.iat[row]} ends past the "
                  f"end of contig {chrom.iat[row]!r} ({contigs[chrom.iat[row]]} bp in {genome_path})")
        first = pairs.drop_duplicates(role)
        for name, c, s, e, line in zip(first[role], first[f"{role}_chrom"], first[f"{role}_start"],
                                       first[f"{role}_end"], first["line"], strict=True):
            if name not in seqs:
                seq = genome[c][int(s):int(e)].seq
                seqs[name] = _check_bases(seq, f"{pairs_path}: line {line}: {role} {name} (from {genome_path})")
    return seqs


# --------------------------------------------------------------------------- cell features, motifs, truth


def load_cell_features(path: str | Path) -> pd.DataFrame:
    """Cell line × feature table: a ``cell_line`` column (anywhere) plus numeric columns; all finite in float32."""
    path = Path(path)
    frame = read_table(path).rename(columns=lambda c: "cell_line" if c.strip().lower() == "cell_line" else c)
    if "cell_line" not in frame.columns:
        raise DataError(f"{path}: no 'cell_line' column; expected 'cell_line' plus numeric feature columns, "
                        f"got {[c for c in frame.columns if c != 'line']}")
    feats = [c for c in frame.columns if c not in ("cell_line", "line")]
    if not feats:
        raise DataError(f"{path}: no feature columns besides 'cell_line'")
    _fail(path, frame, frame.cell_line == "", "empty 'cell_line'")
    dup = frame.cell_line.duplicated()
    _fail(path, frame, dup, f"cell line {frame.cell_line[dup].iat[0] if dup.any() else ''!r} appears twice")
    values = np.empty((len(frame), len(feats)))
    for j, col in enumerate(feats):
        number = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(number) | (np.abs(np.nan_to_num(number)) > FLOAT32_MAX)
        if bad.any():
            row = int(np.nonzero(bad)[0][0])
            raise DataError(f"{path}: line {frame['line'].iat[row]} (cell line {frame.cell_line.iat[row]!r}), column "
                            f"{col!r}: {frame[col].iat[row]!r}; expected a finite number (|x| <= {FLOAT32_MAX:.3g})")
        values[:, j] = number
    return pd.DataFrame(values.astype(np.float32), index=pd.Index(frame.cell_line, name="cell_line"), columns=feats)


def load_motifs(path: str | Path) -> list[Motif]:
    """Motifs in JASPAR format (``.jaspar``, as from jaspar.elixir.no / Bio.motifs) or MEME minimal (``.meme``)."""
    from Bio import motifs as bio_motifs

    path = Path(path)
    text = read_text(path)
    fmt = "minimal" if path.suffix.lower() in (".meme", ".txt") or text.lstrip().startswith("MEME version") \
        else "jaspar"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = list(bio_motifs.parse(_io.StringIO(text), fmt))
    except Exception as exc:  # Biopython raises ValueError/KeyError/IndexError for malformed matrices
        raise DataError(f"{path}: not a readable {fmt} motif file ({type(exc).__name__}: {exc}); expected JASPAR "
                        "('>ID name' then 'A [ ... ]' rows for A, C, G, T) or MEME minimal") from exc
    if not parsed:
        raise DataError(f"{path}: no motifs found; expected JASPAR ('>ID name' then rows 'A [ ... ]' for A, C, G, T, "
                        "all of one width) or MEME minimal")
    out, seen = [], set()
    for number, m in enumerate(parsed, start=1):
        matrix_id = getattr(m, "matrix_id", None) or m.name or f"motif{number}"
        where = f"{path}: motif {number} ({matrix_id} {m.name})"
        try:
            counts = np.array([list(m.counts[b]) for b in BASES], dtype=np.float64)
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{where}: counts not readable as 4 numeric rows A, C, G, T ({exc})") from exc
        if counts.shape[1] == 0:
            raise DataError(f"{where}: zero width; expected at least one position")
        bad = ~np.isfinite(counts) | (counts < 0)
        if bad.any():
            b, pos = (int(v[0]) for v in np.nonzero(bad))
            raise DataError(f"{where}: base {BASES[b]}, position {pos + 1}: count {counts[b, pos]!r}; "
                            "expected a finite number >= 0")
        if matrix_id in seen:
            raise DataError(f"{where}: duplicate motif id {matrix_id!r}")
        seen.add(matrix_id)
        out.append(Motif(matrix_id, m.name or matrix_id, counts, source=str(path)))
    return out


def jaspar_motifs(n: int) -> list[Motif]:
    """The first ``n`` of ``MOTIF_IDS`` from pyjaspar's bundled JASPAR database (no network)."""
    if not 1 <= n <= len(MOTIF_IDS):
        raise ValueError(f"n_motifs must be in 1..{len(MOTIF_IDS)}, got {n}")
    return jaspar_lookup(list(MOTIF_IDS[:n]), where="the built-in motif list")


def jaspar_lookup(keys: list[str], where: str) -> list[Motif]:
    """JASPAR CORE vertebrate motifs by matrix id (``MA0139.2``), base id (``MA0139``: latest version) or
    TF name (``CTCF``, case-insensitive: latest version), from pyjaspar's bundled database."""
    from pyjaspar import jaspardb

    db = jaspardb()
    out = []
    for key in keys:
        with warnings.catch_warnings():  # pyjaspar warns on an empty match; the miss is reported below
            warnings.simplefilter("ignore")
            found = _jaspar_fetch(db, key)
        if found is None:
            raise DataError(f"{where}: motif {key!r} is not in pyjaspar's bundled JASPAR ({db.release}); "
                            "expected a matrix id (MA0139.2), a base id (MA0139) or a TF name (CTCF)")
        out.append(Motif(found.matrix_id, found.name, np.array([found.counts[b] for b in BASES], dtype=np.float64)))
    return out


def _jaspar_fetch(db, key: str):
    if "." in key or (key.upper().startswith(("MA", "PB", "PF", "UN")) and key[2:].isdigit()):
        return db.fetch_motif_by_id(key)
    named = [m for m in (db.fetch_motifs_by_name(key) or []) if m.collection == "CORE"]
    vertebrate = [m for m in named if m.tax_group == "vertebrates"] or named  # GATA1 is also a plant matrix
    return max(vertebrate, key=lambda m: (m.base_id, m.version)) if vertebrate else None


def _truth_frame(path: Path) -> pd.DataFrame:
    """Truth as a cell line × motif frame of strings (either orientation: a ``cell_line`` or ``motif`` column);
    ``where`` says for each row where it sits in the file."""
    frame = read_table(path)
    lower = {c.lower(): c for c in frame.columns}
    if "cell_line" in lower:
        out = frame.set_index(lower["cell_line"]).drop(columns="line")
        where = [f"line {n}" for n in frame["line"]]
    elif "motif" in lower:
        out = frame.drop(columns="line").set_index(lower["motif"]).T
        where = [f"column {c!r}" for c in out.index]
    else:
        raise DataError(f"{path}: a truth table needs a 'cell_line' column (rows = cell lines, columns = motifs) "
                        f"or a 'motif' column (rows = motifs); got {[c for c in frame.columns if c != 'line']}")
    out.index.name = "cell_line"
    dup = out.index.duplicated()
    if dup.any():
        raise DataError(f"{path}: cell line {out.index[dup][0]!r} appears twice")
    out.attrs["where"] = where
    return out


def truth_motif_names(path: str | Path) -> list[str]:
    """The motif columns a truth table names (read before the motif set is fixed)."""
    return list(_truth_frame(Path(path)).columns)


def load_truth(path: str | Path, motifs: list[Motif], cell_lines: list[str]) -> tuple[dict, list[str]]:
    """Truth accessibility (0/1) aligned to (cell_lines × motifs), NaN where the table says nothing.

    A truth column matches a motif by matrix id, base id or name (case-insensitive). Returns the truth
    dict and notes on what could not be matched (motifs without truth, cell lines without truth).
    """
    path = Path(path)
    frame = _truth_frame(path)
    columns = list(frame.columns)
    acc = np.full((len(cell_lines), len(motifs)), np.nan)
    matched, unmatched = [], []
    for col in columns:
        j = _match_motif(col, motifs)
        if j is None:
            unmatched.append(col)
            continue
        text = frame[col].str.strip().str.lower()
        values = text.map({"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "true": 1.0, "false": 0.0})
        unknown = text.isin(["", "na", "nan"])  # said to be unknown: kept as NaN, never scored
        if (values.isna() & ~unknown).any():
            values = values.where(~unknown, 0.0)
            row = int(np.nonzero(values.isna().to_numpy())[0][0])
            raise DataError(f"{path}: {frame.attrs['where'][row]} (cell line {frame.index[row]!r}), motif {col!r}: "
                            f"{frame[col].iat[row]!r}; "
                            "expected 0 or 1 (accessible), or blank / NA for unknown")
        values = values.where(~unknown, np.nan)
        for cell, v in zip(frame.index, values, strict=True):
            if cell in cell_lines:
                acc[cell_lines.index(cell), j] = v
        matched.append(col)
    if not matched:
        raise DataError(f"{path}: none of the truth's motif columns {columns[:10]} matches a motif of the run "
                        f"({[m.matrix_id + ' ' + m.name for m in motifs][:10]}); name columns by matrix id or TF name")
    known = [c for c in cell_lines if c in frame.index]
    if not known:
        raise DataError(f"{path}: none of its cell lines {list(frame.index)[:10]} is in the pairs "
                        f"({cell_lines[:10]})")
    notes = []
    if unmatched:
        notes.append(f"truth: motif column(s) {unmatched} match no motif of the run: their gates cannot be scored")
    missing = [c for c in cell_lines if c not in frame.index]
    if missing:
        notes.append(f"truth: no row for cell line(s) {missing}: their gates cannot be scored")
    extra = [c for c in frame.index if c not in cell_lines]
    if extra:
        notes.append(f"truth: cell line(s) {extra} are not in the pairs and are ignored")
    return {"accessibility": acc, "motif_names": [m.name for m in motifs], "source": str(path)}, notes


def _match_motif(key: str, motifs: list[Motif]) -> int | None:
    k = key.strip().lower()
    for pick in (lambda m: m.matrix_id.lower() == k, lambda m: m.matrix_id.lower().split(".")[0] == k,
                 lambda m: m.name.lower() == k):
        hits = [j for j, m in enumerate(motifs) if pick(m)]
        if len(hits) == 1:
            return hits[0]
    return None


# --------------------------------------------------------------------------- assembling a data set


def load_epi(
    pairs: str | Path,
    sequences: str | Path | list[str | Path] | None = None,
    *,
    genome: str | Path | None = None,
    cell_features: str | Path | None = None,
    motifs: str | Path | None = None,
    truth: str | Path | None = None,
    coordinates: str = "bed",
    max_len: int = 0,
    n_default_motifs: int = 12,
    index_dir: str | Path | None = None,
    enhancer_len: int | None = None,
    promoter_len: int | None = None,
) -> EpiData:
    """Read and cross-validate every input; one-hot once.

    Named pairs take their sequences from ``sequences`` (one or several files); coordinate pairs from
    ``genome``. ``max_len`` > 0 centre-crops longer regions to that many bases and says so
    (``EpiWarning``); 0 keeps every region whole. ``enhancer_len``/``promoter_len`` (the simulator's)
    fix each role's width instead. Without ``motifs`` the first ``n_default_motifs`` of ``MOTIF_IDS``
    plus every motif the truth table names come from pyjaspar's bundled JASPAR.
    """
    pairs_path = Path(pairs)
    frame = load_pairs(pairs_path, coordinates)
    is_coord = "enhancer_chrom" in frame.columns
    sources = {"pairs": f"{pairs_path} ({'genome coordinates, ' + coordinates if is_coord else 'named regions'})"}
    if is_coord:
        if genome is None:
            raise DataError(f"{pairs_path}: pairs are genome coordinates, so a genome FASTA is needed "
                            "(parameter 'genome'); a named-sequence file cannot serve coordinates")
        seqs = genome_sequences(frame, open_genome(genome, index_dir), pairs_path, Path(genome))
        sources["genome"] = str(genome)
    else:
        if sequences is None:
            raise DataError(f"{pairs_path}: pairs name their regions, so a sequence file is needed (parameter "
                            "'sequences': FASTA or a 'region, sequence' table)")
        seqs = _named_sequences(frame, sequences, pairs_path)
        sources["sequences"] = ", ".join(map(str, sequences if isinstance(sequences, list) else [sequences]))
    cells = list(dict.fromkeys(frame.cell_line))
    notes: list[str] = []
    features = None
    if cell_features is not None:
        features = _aligned_features(cell_features, cells, pairs_path)
        sources["cell features"] = str(cell_features)
    motif_list, motif_note = _motif_set(motifs, truth, n_default_motifs)
    notes.append(motif_note)
    sources["motifs"] = str(motifs) if motifs is not None else "pyjaspar's bundled JASPAR CORE vertebrates"
    enh = _encode_role(frame, "enhancer", seqs, pairs_path, max_len, enhancer_len, notes)
    prom = _encode_role(frame, "promoter", seqs, pairs_path, max_len, promoter_len, notes)
    frame["enh"] = frame.enhancer.map({r: i for i, r in enumerate(enh.names)}).astype(np.int64)
    frame["prom"] = frame.promoter.map({r: i for i, r in enumerate(prom.names)}).astype(np.int64)
    frame["cell"] = frame.cell_line.map({c: i for i, c in enumerate(cells)}).astype(np.int64)
    truth_dict = None
    if truth is not None:
        truth_dict, truth_notes = load_truth(truth, motif_list, cells)
        notes += truth_notes
        sources["truth"] = str(truth)
    return EpiData(pairs=frame, enhancers=enh, promoters=prom, cell_lines=cells, cell_features=features,
                   motifs=motif_list, truth=truth_dict, notes=notes, sources=sources)


def _named_sequences(frame: pd.DataFrame, sequences, pairs_path: Path) -> dict[str, str]:
    seqs: dict[str, str] = {}
    for source in sequences if isinstance(sequences, list) else [sequences]:
        for name, seq in load_sequences(source).items():
            if name in seqs:
                raise DataError(f"{source}: region {name!r} also defined in an earlier sequence file")
            seqs[name] = seq
    for col in ("enhancer", "promoter"):
        unknown = ~frame[col].isin(seqs.keys())
        if unknown.any():
            _fail(pairs_path, frame, unknown, f"{col} {frame[col][unknown].iat[0]!r} is not in the sequence file(s)")
    return seqs


def _aligned_features(path, cells: list[str], pairs_path: Path) -> np.ndarray:
    table = load_cell_features(path)
    missing = [c for c in cells if c not in table.index]
    if missing:
        raise DataError(f"{path}: no features for cell line(s) {missing} that appear in {pairs_path} "
                        f"(the table has {list(table.index)[:10]})")
    values = table.loc[cells].to_numpy(np.float64)
    sd = values.std(axis=0)
    return ((values - values.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def _motif_set(motifs, truth, n_default: int) -> tuple[list[Motif], str]:
    if motifs is not None:
        found = load_motifs(motifs)
        return found, f"motifs: {len(found)} from {motifs}"
    found = jaspar_motifs(n_default)
    named, unknown = [], []
    if truth is not None:
        have = {m.matrix_id for m in found}
        for key in truth_motif_names(truth):
            if _match_motif(key, found) is not None:
                continue
            try:
                extra = jaspar_lookup([key], where=f"{truth}: truth column {key!r}")[0]
            except DataError:
                unknown.append(key)  # load_truth reports it as unmatched, or fails if nothing matches
                continue
            if extra.matrix_id not in have:
                found.append(extra)
                have.add(extra.matrix_id)
                named.append(key)
    note = (f"motifs: no motif file given, so the first {n_default} of the built-in list of distinct JASPAR CORE "
            "vertebrate families (pyjaspar, bundled)")
    if named:
        note += f", plus {named} named by the truth table (so their gates can be scored)"
    if unknown:
        note += f"; truth column(s) {unknown} are not JASPAR names or ids known to pyjaspar"
    return found, note


def _encode_role(frame: pd.DataFrame, role: str, seqs: dict[str, str], pairs_path: Path, max_len: int,
             fixed: int | None, notes: list[str]) -> Regions:
    first = frame.drop_duplicates(role)
    names = first[role].tolist()
    origin = [f"{pairs_path} line {n}" for n in first["line"]]
    chosen = [seqs[r] for r in names]
    lengths = np.array([len(s) for s in chosen])
    width = fixed or (min(int(lengths.max()), max_len) if max_len > 0 else int(lengths.max()))
    cut = lengths > width
    if cut.any():
        message = (f"{role}s: {int(cut.sum())} of {len(names)} regions ({int(lengths[cut].min())}–"
                   f"{int(lengths[cut].max())} bp) centre-cropped to {width} bp because "
                   f"{'max_region_len' if not fixed else role + '_len'} = {width}; "
                   f"set it to 0 to keep whole regions")
        warnings.warn(message, EpiWarning, stacklevel=3)
        notes.append(message)
    onehot, kept, offsets = encode(chosen, width)
    return Regions(names, onehot, kept, offsets, origin)


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
    motif_ids: tuple = ()  # JASPAR matrix ids to plant; () = the first n_motifs of MOTIF_IDS
    cell_names: tuple = ()  # () = CL00, CL01, ...
    seed: int = 0


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
    motifs = jaspar_lookup(list(sim.motif_ids), "EpiSimulation.motif_ids") if sim.motif_ids \
        else jaspar_motifs(sim.n_motifs)
    n_m, n_c = len(motifs), sim.n_cell_lines
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
    names = list(sim.cell_names) or [f"CL{c:02d}" for c in range(n_c)]
    if len(names) != n_c:
        raise ValueError(f"EpiSimulation.cell_names: {len(names)} names for {n_c} cell lines")
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
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    records = [SeqRecord(Seq(v), id=k, description="") for k, v in {**sim_out["enhancers"], **sim_out["promoters"]}.items()]
    atomic_write(paths["sequences"], lambda p: SeqIO.write(records, p, "fasta"))
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
    data.truth = {"accessibility": truth.to_numpy(np.float64), "motif_names": list(truth.columns),
                  "position": out["position"].loc[data.cell_lines].to_numpy(),
                  "true_label": out["pairs"]["true_label"].to_numpy(), "source": "the simulator"}
    data.sources = {"data": "simulated, written in the real formats (" + ", ".join(p.name for p in paths.values())
                    + ") and read back through the loaders", "truth": "the simulator (accessibility, manifold position)"}
    data.notes = []
    return data


# --------------------------------------------------------------------------- a real-format example


def write_example(directory: str | Path, *, n_cell_lines: int = 5, pairs_per_cell_line: int = 100,
                  n_enhancers: int = 240, n_promoters: int = 80, positive_rate: float = 0.1,
                  motif_ids: tuple = MOTIF_IDS[:6], flank: tuple[int, int] = (50, 250), bgzip: bool = True,
                  seed: int = 0) -> dict[str, Path]:
    """A small data set in the coordinate format real EPI benchmarks ship, with its truth.

    A simulation (``simulate_epi``) is embedded in a synthetic genome: each enhancer/promoter core
    gets random flanks (so regions have their own, varied lengths) and is placed on one of three
    contigs between random background. Writes ``pairs.tsv`` (TargetFinder/BENGI-style BED
    coordinates, columns in an unusual order plus an extra ``distance`` column), ``genome.fa.gz``
    (bgzip through Bio.bgzf; ``genome.fa`` if ``bgzip=False``), ``cell_features.csv`` (``cell_line``
    not first) and ``truth_accessibility.csv`` (cell line × motif by TF name). No motif file: the
    study takes pyjaspar's bundled JASPAR.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = ("GM12878", "K562", "HeLa-S3", "IMR-90", "HUVEC", "NHEK", "HepG2", "A549")[:n_cell_lines]
    names = names + tuple(f"line{i}" for i in range(len(names), n_cell_lines))
    sim = EpiSimulation(n_cell_lines=n_cell_lines, n_enhancers=n_enhancers, n_promoters=n_promoters,
                        pairs_per_cell_line=pairs_per_cell_line, enhancer_len=200, promoter_len=150,
                        positive_rate=positive_rate, motif_ids=tuple(motif_ids), cell_names=names, seed=seed)
    out = simulate_epi(sim)
    rng = np.random.default_rng([seed, 99])
    contigs = {"chr1": [], "chr2": [], "chrX": []}
    where: dict[str, tuple[str, int, int]] = {}
    lengths = dict.fromkeys(contigs, 0)
    for name, core in {**out["enhancers"], **out["promoters"]}.items():
        chrom = list(contigs)[rng.integers(len(contigs))]
        gap = _background(int(rng.integers(100, 400)), rng)
        left, right = (_background(int(rng.integers(*flank)), rng) for _ in range(2))
        start = lengths[chrom] + len(gap)
        region = left + core + right
        contigs[chrom] += [gap, region]
        lengths[chrom] += len(gap) + len(region)
        where[name] = (chrom, start, start + len(region))
    for chrom in contigs:
        contigs[chrom].append(_background(300, rng))
    pairs = out["pairs"]
    e = np.array([where[n] for n in pairs.enhancer], dtype=object)
    p = np.array([where[n] for n in pairs.promoter], dtype=object)
    table = pd.DataFrame({
        "label": pairs.label, "promoter_chrom": p[:, 0], "promoter_start": p[:, 1], "promoter_end": p[:, 2],
        "cell_line": pairs.cell_line, "enhancer_chrom": e[:, 0], "enhancer_start": e[:, 1],
        "enhancer_end": e[:, 2], "distance": np.abs(p[:, 1].astype(int) - e[:, 1].astype(int)),
    })
    paths = {"pairs": directory / "pairs.tsv", "genome": directory / ("genome.fa.gz" if bgzip else "genome.fa"),
             "cell_features": directory / "cell_features.csv", "truth": directory / "truth_accessibility.csv"}
    atomic_write(paths["pairs"], lambda f: table.to_csv(f, sep="\t", index=False))
    fasta = "".join(f">{c}\n" + _wrap("".join(parts)) for c, parts in contigs.items())
    atomic_write(paths["genome"], lambda f: _write_fasta_bytes(f, fasta, bgzip))
    features = out["features"].reset_index()
    features = features[[*features.columns[1:], "cell_line"]]
    atomic_write(paths["cell_features"], lambda f: features.to_csv(f, index=False))
    atomic_write(paths["truth"], lambda f: out["accessibility"].to_csv(f))
    for stale in (".fai", ".gzi"):  # an index from an earlier genome must not be reused
        Path(str(paths["genome"]) + stale).unlink(missing_ok=True)
    return paths


def _background(n: int, rng: np.random.Generator, gc: float = 0.42) -> str:
    probs = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return "".join(np.array(list(BASES))[rng.choice(4, size=n, p=probs)])


def _wrap(seq: str, width: int = 60) -> str:
    return "".join(seq[i : i + width] + "\n" for i in range(0, len(seq), width))


def _write_fasta_bytes(path: Path, text: str, bgzip: bool) -> None:
    if not bgzip:
        path.write_text(text)
        return
    from Bio import bgzf

    with bgzf.BgzfWriter(str(path), "wb") as handle:
        handle.write(text.encode("ascii"))
