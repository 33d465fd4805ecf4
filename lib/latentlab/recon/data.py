"""Phased haplotypes for genotype imputation: stdpopsim simulation with truth, VCF I/O, windows.

The default data is a coalescent simulation (stdpopsim HomSap ``OutOfAfrica_3G09``,
CEU, the contig's *flat* recombination rate — named genetic maps download and are
never used) through msprime. It is split into a reference panel and disjoint target
individuals; targets are observed only at an "array" subset of common sites. Both
are written as phased VCFs and read back through cyvcf2, the same validated loader a
user's files go through, so the imputer and Beagle see byte-identical inputs.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

from latentlab.recon import vcf as vcf_io
from latentlab.recon.vcf import VcfError

MASK = 2  # allele token for "not observed"


@dataclasses.dataclass
class Haplotypes:
    """Phased biallelic haplotypes: ``haps`` [n_samples, 2, n_sites] of 0/1 (int8)."""

    samples: list[str]
    positions: np.ndarray  # 1-based VCF positions, strictly increasing
    ref: list[str]
    alt: list[str]
    haps: np.ndarray
    chrom: str = "22"
    source: str = ""  # the file read ("" = built in memory)
    records: np.ndarray | None = None  # 1-based record number of each site in ``source``
    header_lines: int | None = None  # lines before record 1 (None: a BCF, which has no lines)

    @property
    def n_sites(self) -> int:
        return len(self.positions)

    def where(self, j: int) -> str:
        """Site j's origin for messages: 'file: line L (record R, chrom:pos)'; a BCF has record numbers only."""
        site = f"{self.chrom}:{self.positions[j]}"
        if self.records is None:
            return f"{self.source or 'haplotypes'}: site {j + 1} ({site})"
        rec = int(self.records[j])
        if self.header_lines is None:
            return f"{self.source}: record {rec} ({site})"
        return f"{self.source}: line {self.header_lines + rec} (record {rec}, {site})"

    def flat(self) -> np.ndarray:
        """[2 * n_samples, n_sites]: sample i's haplotypes are rows 2i and 2i + 1."""
        return self.haps.reshape(-1, self.n_sites)

    def subset_sites(self, keep: np.ndarray) -> Haplotypes:
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        records = None if self.records is None else self.records[idx]
        return Haplotypes(list(self.samples), self.positions[idx], [self.ref[i] for i in idx],
                          [self.alt[i] for i in idx], self.haps[:, :, idx], self.chrom, self.source, records,
                          self.header_lines)

    def subset_samples(self, idx: np.ndarray) -> Haplotypes:
        return Haplotypes([self.samples[i] for i in idx], self.positions, list(self.ref), list(self.alt),
                          self.haps[idx], self.chrom, self.source, self.records, self.header_lines)


@dataclasses.dataclass
class ImputationData:
    """Panel (all sites), targets (truth at all panel sites) and which sites the array observes."""

    panel: Haplotypes
    truth: Haplotypes
    array: np.ndarray  # bool [n_sites]: observed in targets

    @property
    def af(self) -> np.ndarray:
        """ALT allele frequency in the reference panel (the model's AF input; MAF bins)."""
        return self.panel.flat().mean(axis=0)

    @property
    def maf(self) -> np.ndarray:
        return np.minimum(self.af, 1 - self.af)


# --------------------------------------------------------------------------- simulation


def simulate(n_panel: int, n_target: int, length_bp: int, *, seed: int, start: int = 20_000_000) -> Haplotypes:
    """CEU haplotypes on a ``length_bp`` stretch of chr22 (flat map), biallelic sites only.

    tskit positions are 0-based floats: VCF positions are ``floor(pos) + 1`` and the
    first site at each position is kept, so positions are unique and increasing.
    """
    import stdpopsim

    species = stdpopsim.get_species("HomSap")
    model = species.get_demographic_model("OutOfAfrica_3G09")
    contig = species.get_contig("chr22", left=start, right=start + length_bp)  # flat map: offline
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # contig vs model mutation rate note
        ts = stdpopsim.get_engine("msprime").simulate(model, contig, {"CEU": n_panel + n_target}, seed=seed)
    gm = ts.genotype_matrix()  # [sites, 2 * n]
    n_alleles = np.array([len(site.mutations) for site in ts.sites()])
    pos = np.floor(ts.tables.sites.position).astype(np.int64) + 1
    keep = (n_alleles == 1) & (gm.max(axis=1) == 1)
    keep &= np.concatenate([[True], pos[1:] != pos[:-1]])  # unique VCF positions
    pos, gm = pos[keep], gm[keep].astype(np.int8)
    rng = np.random.default_rng(seed)
    bases = np.array(list("ACGT"))
    ref = rng.integers(0, 4, len(pos))
    alt = (ref + rng.integers(1, 4, len(pos))) % 4
    n = n_panel + n_target
    haps = gm.T.reshape(n, 2, len(pos))
    return Haplotypes([f"ind{i:04d}" for i in range(n)], pos, list(bases[ref]), list(bases[alt]), haps)


def split_panel_targets(h: Haplotypes, n_target: int, *, array_fraction: float, min_array_maf: float,
                        seed: int) -> ImputationData:
    """Disjoint panel/targets; keep panel-polymorphic sites; the array = a random share of common sites."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(h.samples))
    targets, panel = np.sort(order[:n_target]), np.sort(order[n_target:])
    panel_h = h.subset_samples(panel)
    ac = panel_h.flat().sum(axis=0)
    poly = (ac > 0) & (ac < panel_h.flat().shape[0])  # a site the panel cannot see is not imputable
    panel_h, truth = panel_h.subset_sites(poly), h.subset_samples(targets).subset_sites(poly)
    af = panel_h.flat().mean(axis=0)
    common = np.minimum(af, 1 - af) >= min_array_maf
    array = common & (rng.random(len(af)) < array_fraction)
    return ImputationData(panel_h, truth, array)


# --------------------------------------------------------------------------- VCF

DATASET_FILES = ("panel", "targets", "truth")
VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")


def write_vcf(path: str | Path, h: Haplotypes) -> Path:
    """Phased VCF 4.2 with GT only, written atomically; .vcf plain, .vcf.gz bgzip, .bcf BCF (by the name)."""
    header = ["##fileformat=VCFv4.2", f"##contig=<ID={h.chrom}>",
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(h.samples)]
    gts = np.char.add(np.char.add(h.haps[:, 0, :].astype(str), "|"), h.haps[:, 1, :].astype(str))  # [n, sites]
    records = [f"{h.chrom}\t{pos}\t.\t{h.ref[j]}\t{h.alt[j]}\t.\tPASS\t.\tGT\t" + "\t".join(gts[:, j])
               for j, pos in enumerate(h.positions)]
    return vcf_io.write_text(path, header, records)


def read_vcf(path: str | Path, *, role: str = "VCF") -> Haplotypes:
    """Read a phased, biallelic, single-contig VCF (plain/gzip/bgzip) or BCF with cyvcf2, validated.

    Anything else — multi-allelic or symbolic ALT, allele index > 1, haploid or missing or
    unphased calls, unsorted or duplicate positions, a second contig, malformed lines — is a
    ``VcfError`` naming the file, the line (text) or record (BCF), the sample and what was expected.
    ``role`` ("panel", "targets", "truth") only words the messages.
    """
    g = vcf_io.read_genotypes(path, role=role)
    return Haplotypes(g.samples, g.positions, g.ref, g.alt, g.haps, g.chrom, source=str(g.path),
                      records=np.arange(1, len(g.positions) + 1), header_lines=g.header_lines)


def align_targets(panel: Haplotypes, targets: Haplotypes, *, panel_name: str = "", target_name: str = "") -> np.ndarray:
    """Index of each target site in the panel, matched by contig, position and alleles; any mismatch errs.

    Samples must be disjoint (targets are imputed *from* the panel). A site is the same
    site only on the same contig, at the same position, with the same REF and ALT.
    """
    panel_name, target_name = panel_name or panel.source or "panel", target_name or targets.source or "targets"
    if panel.chrom != targets.chrom:
        hint = " (the same chromosome named two ways? rename with `bcftools annotate --rename-chrs`)" \
            if panel.chrom.removeprefix("chr") == targets.chrom.removeprefix("chr") else ""
        raise VcfError(f"{target_name}: chromosome {targets.chrom!r} but {panel_name} is on {panel.chrom!r}{hint}; "
                       "expected the same contig")
    overlap = [s for s in targets.samples if s in set(panel.samples)]
    if overlap:
        col = 10 + targets.samples.index(overlap[0])
        raise VcfError(f"{target_name}: sample(s) {overlap[:5]} (first in column {col}) are also in {panel_name}; "
                       "targets must be disjoint from the reference panel")
    idx = np.clip(np.searchsorted(panel.positions, targets.positions), 0, panel.n_sites - 1)
    bad = np.flatnonzero(panel.positions[idx] != targets.positions)
    if len(bad):
        raise VcfError(f"{targets.where(bad[0])}: position not in {panel_name} ({len(bad)} target site(s) "
                       "absent); expected target sites to be a subset of the panel's positions")
    for j, i in enumerate(idx):
        if (panel.ref[i], panel.alt[i]) != (targets.ref[j], targets.alt[j]):
            swapped = (panel.ref[i], panel.alt[i]) == (targets.alt[j], targets.ref[j])
            why = " (REF and ALT swapped: harmonise with `bcftools +fixref`)" if swapped else ""
            raise VcfError(f"{targets.where(j)}: REF/ALT {targets.ref[j]}/{targets.alt[j]} but {panel.where(i)} "
                           f"has {panel.ref[i]}/{panel.alt[i]}{why}; expected the same alleles")
    return idx


def align_truth(panel: Haplotypes, targets: Haplotypes, truth: Haplotypes, idx: np.ndarray) -> Haplotypes:
    """Truth on exactly the panel's sites, its samples put in the targets' order (stated handling).

    Truth must equal the targets at the array sites (phase included): the test windows are cut
    from the truth, so a disagreement would score the model on genotypes it was never given.
    """
    if truth.chrom != panel.chrom:
        raise VcfError(f"{truth.source}: chromosome {truth.chrom!r} but {panel.source} is on {panel.chrom!r}; "
                       "expected the same contig")
    if not np.array_equal(truth.positions, panel.positions):
        missing = np.flatnonzero(~np.isin(panel.positions, truth.positions))
        extra = np.flatnonzero(~np.isin(truth.positions, panel.positions))
        if len(missing):
            raise VcfError(f"{truth.source}: has no record for {panel.where(missing[0])} ({len(missing)} panel "
                           "site(s) missing); expected truth at every panel site")
        raise VcfError(f"{truth.where(extra[0])}: not a panel site ({len(extra)} extra site(s)); expected truth "
                       f"on exactly the sites of {panel.source} (`bcftools view -T` the panel's sites)")
    for j in np.flatnonzero((np.array(truth.ref) != np.array(panel.ref)) | (np.array(truth.alt) != np.array(panel.alt))):
        raise VcfError(f"{truth.where(j)}: REF/ALT {truth.ref[j]}/{truth.alt[j]} but {panel.where(j)} has "
                       f"{panel.ref[j]}/{panel.alt[j]}; expected the same alleles")
    absent = [s for s in targets.samples if s not in set(truth.samples)]
    if absent:
        raise VcfError(f"{truth.source}: no column for target sample(s) {absent[:5]} ({len(absent)} of "
                       f"{len(targets.samples)}) of {targets.source}; expected truth for every target")
    extra_samples = [s for s in truth.samples if s not in set(targets.samples)]
    if extra_samples:
        col = 10 + truth.samples.index(extra_samples[0])
        raise VcfError(f"{truth.source}: sample(s) {extra_samples[:5]} (first in column {col}) are not in "
                       f"{targets.source}; expected the targets' samples only")
    truth = truth.subset_samples(np.array([truth.samples.index(s) for s in targets.samples]))
    diff = truth.haps[:, :, idx] != targets.haps
    if diff.any():
        s, _, j = (int(v[0]) for v in np.nonzero(diff))
        phase_only = np.array_equal(np.sort(truth.haps[s, :, idx[j]]), np.sort(targets.haps[s, :, j]))
        what = "the same genotype phased differently" if phase_only else "a different genotype"
        a, b = truth.haps[s, :, idx[j]], targets.haps[s, :, j]
        raise VcfError(f"{truth.where(int(idx[j]))}: sample {targets.samples[s]!r} is {a[0]}|{a[1]} but "
                       f"{targets.where(j)} has {b[0]}|{b[1]} ({what}; {int(diff.any(axis=1).sum())} "
                       "genotype(s) differ); expected truth to equal the targets at the array sites")
    return truth


def find_dataset(directory: str | Path) -> dict[str, Path]:
    """panel / targets / truth in a directory, each as .vcf, .vcf.gz, .vcf.bgz or .bcf (exactly one of each)."""
    d = Path(directory)
    if not d.is_dir():
        where = "" if d.is_absolute() else f" (relative to the working directory {Path.cwd()})"
        raise VcfError(f"{d}: not a directory{where}; `data` must be 'simulated' or a directory holding "
                       "panel.vcf.gz, targets.vcf.gz and truth.vcf.gz (or .vcf / .bcf)")
    paths = {}
    for name in DATASET_FILES:
        found = [d / f"{name}{s}" for s in VCF_SUFFIXES if (d / f"{name}{s}").exists()]
        if not found:
            present = sorted(p.name for p in d.iterdir())[:10]
            raise VcfError(f"{d}: no {name}.vcf.gz (or {name}.vcf / {name}.vcf.bgz / {name}.bcf); found {present}")
        if len(found) > 1:
            raise VcfError(f"{d}: {[p.name for p in found]} are all '{name}'; keep exactly one")
        paths[name] = found[0]
    return paths


def beagle_readable(paths: dict[str, Path], work_dir: str | Path) -> dict[str, Path]:
    """The same files for Beagle, which reads VCF (plain or gzip) but not BCF: BCFs are copied as .vcf.gz."""
    out = dict(paths)
    for name, path in paths.items():
        if vcf_io.sniff(Path(path))[0] == "bcf":
            out[name] = write_vcf(Path(work_dir) / f"{name}.vcf.gz", read_vcf(path, role=name))
    return out


def write_dataset(data: ImputationData, directory: str | Path, suffix: str = ".vcf") -> dict[str, Path]:
    """panel (all sites), targets (array sites only: what Beagle gets), truth (all sites)."""
    d = Path(directory)
    return {"panel": write_vcf(d / f"panel{suffix}", data.panel),
            "targets": write_vcf(d / f"targets{suffix}", data.truth.subset_sites(data.array)),
            "truth": write_vcf(d / f"truth{suffix}", data.truth)}


def check_fits(data: ImputationData, paths: dict[str, Path], *, window: int, k: int) -> None:
    """Loaded files large enough for the model's window and retrieval — named before any training starts."""
    n = len(data.panel.samples)
    if data.panel.n_sites < window:
        raise VcfError(f"{paths['panel']}: {data.panel.n_sites} sites; window={window} needs at least that many "
                       "(lower `window` or bring more sites)")
    if n < 4:
        raise VcfError(f"{paths['panel']}: {n} individuals; expected at least 4 (training and validation are "
                       "split from the panel)")
    if 2 * n - 2 < k:
        raise VcfError(f"{paths['panel']}: {n} individuals ({2 * n} haplotypes, {2 * n - 2} once an individual's own "
                       f"two are excluded); k={k} retrieved haplotypes need at least {k // 2 + 1 + k % 2} individuals "
                       "(lower `k`)")


def hold_out_targets(panel_path: str | Path, directory: str | Path, *, n_target: int, array_fraction: float = 0.3,
                     min_array_maf: float = 0.05, seed: int = 0, suffix: str = ".vcf.gz") -> dict[str, Path]:
    """A panel without truth → panel / targets / truth: ``n_target`` individuals held out as targets.

    The held-out individuals are removed from the panel (targets must be disjoint), observed at
    a random ``array_fraction`` of the sites common (MAF ≥ ``min_array_maf``) in the remaining
    panel, and their full genotypes become the truth. Sites monomorphic in the remaining panel
    are dropped (nothing can impute them) — the same split the simulated default uses.
    """
    h = read_vcf(panel_path, role="panel")
    if not 2 <= n_target <= len(h.samples) - 10:
        raise VcfError(f"{panel_path}: {len(h.samples)} samples; n_target={n_target} must leave at least 10 in the "
                       "panel and hold out at least 2")
    data = split_panel_targets(h, n_target, array_fraction=array_fraction, min_array_maf=min_array_maf, seed=seed)
    if not data.array.any():
        raise VcfError(f"{panel_path}: no site has panel MAF ≥ {min_array_maf} after holding out {n_target}; "
                       "lower min_array_maf")
    return write_dataset(data, directory, suffix=suffix)


def load_dataset(paths: dict[str, Path]) -> ImputationData:
    """Read the three files, check they describe the same sites and samples, rebuild the array mask."""
    panel = read_vcf(paths["panel"], role="panel")
    targets = read_vcf(paths["targets"], role="targets")
    idx = align_targets(panel, targets)
    if len(idx) == panel.n_sites:
        raise VcfError(f"{paths['targets']}: observes all {panel.n_sites} sites of {paths['panel']}; expected the "
                       "targets to lack some panel sites (the ones to impute)")
    truth = align_truth(panel, targets, read_vcf(paths["truth"], role="truth"), idx)
    array = np.zeros(panel.n_sites, dtype=bool)
    array[idx] = True
    return ImputationData(panel, truth, array)


# --------------------------------------------------------------------------- windows + retrieval


def window_starts(n_sites: int, length: int) -> np.ndarray:
    """Non-overlapping windows of ``length`` sites; the last one is shifted back to end at the last site."""
    if n_sites < length:
        raise ValueError(f"window length {length} exceeds the {n_sites} sites available")
    starts = np.arange(0, n_sites - length + 1, length)
    if starts[-1] + length < n_sites:
        starts = np.append(starts, n_sites - length)
    return starts


def retrieve(query: np.ndarray, observed: np.ndarray, reference: np.ndarray, k: int,
             exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices [n_query, k] of the reference haplotypes nearest (Hamming) to each query on observed sites.

    ``exclude`` [n_query, m] lists reference rows a query may not retrieve (its own
    haplotypes, when panel haplotypes are used for training). Ties break by index.
    """
    q = query[:, observed].astype(np.float32)
    r = reference[:, observed].astype(np.float32)
    dist = q @ (1 - r).T + (1 - q) @ r.T  # Hamming distance via two matmuls
    if exclude is not None:
        np.put_along_axis(dist, exclude, np.inf, axis=1)
    if k > reference.shape[0]:
        raise ValueError(f"k={k} exceeds the {reference.shape[0]} reference haplotypes")
    return np.argsort(dist, axis=1, kind="stable")[:, :k]
