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
import gzip
import warnings
from pathlib import Path

import numpy as np

MASK = 2  # allele token for "not observed"


class VcfError(ValueError):
    """A VCF is not a phased, biallelic, complete genotype file of the expected shape."""


@dataclasses.dataclass
class Haplotypes:
    """Phased biallelic haplotypes: ``haps`` [n_samples, 2, n_sites] of 0/1 (int8)."""

    samples: list[str]
    positions: np.ndarray  # 1-based VCF positions, strictly increasing
    ref: list[str]
    alt: list[str]
    haps: np.ndarray
    chrom: str = "22"

    @property
    def n_sites(self) -> int:
        return len(self.positions)

    def flat(self) -> np.ndarray:
        """[2 * n_samples, n_sites]: sample i's haplotypes are rows 2i and 2i + 1."""
        return self.haps.reshape(-1, self.n_sites)

    def subset_sites(self, keep: np.ndarray) -> Haplotypes:
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        return Haplotypes(list(self.samples), self.positions[idx], [self.ref[i] for i in idx],
                          [self.alt[i] for i in idx], self.haps[:, :, idx], self.chrom)

    def subset_samples(self, idx: np.ndarray) -> Haplotypes:
        return Haplotypes([self.samples[i] for i in idx], self.positions, list(self.ref), list(self.alt),
                          self.haps[idx], self.chrom)


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


def write_vcf(path: str | Path, h: Haplotypes) -> Path:
    """Phased VCF 4.2 with GT only (plain text, or bgzip-free gzip when the name ends in .gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID={h.chrom}>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(h.samples)]
    gts = np.char.add(np.char.add(h.haps[:, 0, :].astype(str), "|"), h.haps[:, 1, :].astype(str))  # [n, sites]
    for j, pos in enumerate(h.positions):
        lines.append(f"{h.chrom}\t{pos}\t.\t{h.ref[j]}\t{h.alt[j]}\t.\tPASS\t.\tGT\t" + "\t".join(gts[:, j]))
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def read_vcf(path: str | Path) -> Haplotypes:
    """Read a phased biallelic VCF with cyvcf2; any other kind of record is a ``VcfError`` naming it."""
    from cyvcf2 import VCF

    path = Path(path)
    if not path.exists():
        raise VcfError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VcfError(f"{path}: empty file (expected a VCF header and records)")
    _check_header_samples(path)  # htslib rejects duplicate names with an opaque header error
    try:
        vcf = VCF(str(path))
    except (OSError, Exception) as exc:  # cyvcf2 raises bare Exception on unparsable headers
        raise VcfError(f"{path}: not a readable VCF ({exc})") from exc
    samples = list(vcf.samples)
    if not samples:
        raise VcfError(f"{path}: no sample columns")
    dupes = sorted({s for s in samples if samples.count(s) > 1})
    if dupes:
        raise VcfError(f"{path}: duplicate sample name(s) {dupes}")
    positions, refs, alts, rows, chrom = [], [], [], [], None
    for rec in vcf:
        where = f"{path}: record {rec.CHROM}:{rec.POS}"
        if len(rec.ALT) != 1:
            raise VcfError(f"{where} has {len(rec.ALT)} ALT alleles {rec.ALT}; expected one (biallelic)")
        gt = rec.genotype.array()  # [n, 3]: allele1, allele2, phased flag; -1 = missing
        if gt.shape[1] != 3:
            raise VcfError(f"{where}: expected diploid genotypes")
        missing = np.flatnonzero((gt[:, :2] < 0).any(axis=1))
        if len(missing):
            raise VcfError(f"{where}: missing genotype for sample {samples[missing[0]]!r} "
                           f"({len(missing)} sample(s)); impute or drop the record first")
        unphased = np.flatnonzero(gt[:, 2] == 0)
        if len(unphased):
            raise VcfError(f"{where}: unphased genotype for sample {samples[unphased[0]]!r}; "
                           "this imputer needs phased haplotypes (phase with Beagle/SHAPEIT first)")
        if positions and positions[-1] >= rec.POS:
            raise VcfError(f"{where}: positions must be strictly increasing and unique "
                           f"(previous {positions[-1]})")
        chrom = chrom or rec.CHROM
        if chrom != rec.CHROM:
            raise VcfError(f"{where}: a second chromosome; expected one contig ({chrom})")
        positions.append(rec.POS)
        refs.append(rec.REF)
        alts.append(rec.ALT[0])
        rows.append(gt[:, :2].astype(np.int8))
    vcf.close()
    if not rows:
        raise VcfError(f"{path}: no variant records")
    haps = np.stack(rows, axis=-1)  # [n, 2, sites]
    return Haplotypes(samples, np.asarray(positions, dtype=np.int64), refs, alts, haps, str(chrom))


def _check_header_samples(path: Path) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            for line in fh:
                if line.startswith("#CHROM"):
                    samples = line.rstrip("\n").split("\t")[9:]
                    dupes = sorted({s for s in samples if samples.count(s) > 1})
                    if dupes:
                        raise VcfError(f"{path}: duplicate sample name(s) {dupes}")
                    return
                if not line.startswith("#"):
                    break
    except (OSError, UnicodeDecodeError) as exc:
        raise VcfError(f"{path}: not a readable VCF ({exc})") from exc
    raise VcfError(f"{path}: no #CHROM header line (expected a VCF)")


def align_targets(panel: Haplotypes, targets: Haplotypes, *, panel_name: str = "panel",
                  target_name: str = "targets") -> np.ndarray:
    """Index of each target site in the panel; a target site absent from the panel or with other alleles errs."""
    overlap = sorted(set(panel.samples) & set(targets.samples))
    if overlap:
        raise VcfError(f"{target_name}: sample(s) {overlap[:5]} are also in {panel_name}; "
                       "targets must be disjoint from the reference panel")
    idx = np.searchsorted(panel.positions, targets.positions)
    idx = np.clip(idx, 0, panel.n_sites - 1)
    bad = np.flatnonzero(panel.positions[idx] != targets.positions)
    if len(bad):
        raise VcfError(f"{target_name}: position {targets.positions[bad[0]]} ({len(bad)} site(s)) is not in "
                       f"{panel_name}; target sites must be a subset of the panel's positions")
    for j, i in enumerate(idx):
        if (panel.ref[i], panel.alt[i]) != (targets.ref[j], targets.alt[j]):
            raise VcfError(f"{target_name}: position {targets.positions[j]} has REF/ALT "
                           f"{targets.ref[j]}/{targets.alt[j]} but {panel_name} has {panel.ref[i]}/{panel.alt[i]}")
    return idx


def write_dataset(data: ImputationData, directory: str | Path) -> dict[str, Path]:
    """panel.vcf (all sites), targets.vcf (array sites only: what Beagle gets), truth.vcf (all sites)."""
    d = Path(directory)
    return {"panel": write_vcf(d / "panel.vcf", data.panel),
            "targets": write_vcf(d / "targets.vcf", data.truth.subset_sites(data.array)),
            "truth": write_vcf(d / "truth.vcf", data.truth)}


def load_dataset(paths: dict[str, Path]) -> ImputationData:
    """Read the three VCFs back, validate that they describe the same sites, rebuild the array mask."""
    panel, targets = read_vcf(paths["panel"]), read_vcf(paths["targets"])
    idx = align_targets(panel, targets, panel_name=str(paths["panel"]), target_name=str(paths["targets"]))
    array = np.zeros(panel.n_sites, dtype=bool)
    array[idx] = True
    truth = read_vcf(paths["truth"])
    if not np.array_equal(truth.positions, panel.positions):
        raise VcfError(f"{paths['truth']}: positions differ from {paths['panel']} (truth must cover every panel site)")
    if truth.samples != targets.samples:
        raise VcfError(f"{paths['truth']}: samples differ from {paths['targets']}")
    if not np.array_equal(truth.haps[:, :, idx], targets.haps):
        raise VcfError(f"{paths['truth']}: genotypes at array sites differ from {paths['targets']}")
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
