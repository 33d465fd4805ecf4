"""A small Study 3 dataset in the form a user brings it: bgzipped panel / targets / truth VCFs.

Built to differ from the built-in simulator everywhere a loader could lean on it: msprime
directly (constant Ne = 10,000, flat recombination rate — nothing downloads) instead of
stdpopsim's OutOfAfrica CEU; real nucleotides from the JC69 mutation model; chromosome
``chr20`` instead of ``22``; sample names ``REF…`` / ``ARR-…``; IDs, INFO (AC/AN) and a
contig length in the header; panel-monomorphic sites kept (a panel is rarely filtered on
itself); truth's samples in another order than the targets'; bgzip-compressed by htslib.

    python -m latentlab.recon.fixtures DIR   # writes DIR/panel.vcf.gz, targets.vcf.gz, truth.vcf.gz
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentlab.recon import vcf as vcf_io
from latentlab.recon.data import Haplotypes, ImputationData

CONTIG_LENGTH = {"chr20": 64_444_167}


def simulate_user_haplotypes(*, n_panel: int = 40, n_target: int = 8, length_bp: int = 100_000,
                             chrom: str = "chr20", start: int = 31_000_000, array_fraction: float = 0.3,
                             min_array_maf: float = 0.05, seed: int = 7) -> ImputationData:
    """Truth for the fixture: biallelic sites, VCF positions floor(pos) + 1 + start, unique."""
    import msprime

    ts = msprime.sim_ancestry(samples=n_panel + n_target, population_size=10_000, sequence_length=length_bp,
                              recombination_rate=1.2e-8, random_seed=seed)
    ts = msprime.sim_mutations(ts, rate=1.25e-8, random_seed=seed)  # JC69: alleles are nucleotides
    positions, refs, alts, rows = [], [], [], []
    for var in ts.variants():
        pos = int(np.floor(var.site.position)) + 1 + start
        if len(var.site.mutations) != 1 or len(var.alleles) != 2 or (positions and pos == positions[-1]):
            continue  # biallelic, one record per position
        positions.append(pos)
        refs.append(var.alleles[0])
        alts.append(var.alleles[1])
        rows.append(var.genotypes.astype(np.int8))
    haps = np.stack(rows).T.reshape(n_panel + n_target, 2, len(positions))
    pos = np.asarray(positions, dtype=np.int64)
    panel = Haplotypes([f"REF{i:04d}" for i in range(n_panel)], pos, refs, alts, haps[:n_panel], chrom)
    truth = Haplotypes([f"ARR-{i + 1:03d}" for i in range(n_target)], pos, refs, alts, haps[n_panel:], chrom)
    af = panel.flat().mean(axis=0)
    rng = np.random.default_rng(seed)
    array = (np.minimum(af, 1 - af) >= min_array_maf) & (rng.random(len(af)) < array_fraction)
    return ImputationData(panel, truth, array)


def _header(h: Haplotypes, source: str, info: bool) -> list[str]:
    length = CONTIG_LENGTH.get(h.chrom)
    lines = ["##fileformat=VCFv4.2", f"##source={source}",
             f"##contig=<ID={h.chrom}" + (f",length={length}>" if length else ">")]
    if info:
        lines += ['##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count in genotypes">',
                  '##INFO=<ID=AN,Number=1,Type=Integer,Description="Total number of alleles in called genotypes">']
    lines += ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(h.samples)]
    return lines


def _records(h: Haplotypes, info: bool) -> list[str]:
    gts = np.char.add(np.char.add(h.haps[:, 0, :].astype(str), "|"), h.haps[:, 1, :].astype(str))
    ac, an = h.haps.sum(axis=(0, 1)), 2 * len(h.samples)
    out = []
    for j, pos in enumerate(h.positions):
        site_id = f"{h.chrom}:{pos}:{h.ref[j]}:{h.alt[j]}"
        inf = f"AC={ac[j]};AN={an}" if info else "."
        out.append(f"{h.chrom}\t{pos}\t{site_id}\t{h.ref[j]}\t{h.alt[j]}\t.\tPASS\t{inf}\tGT\t" + "\t".join(gts[:, j]))
    return out


def write_user_dataset(directory: str | Path, *, suffix: str = ".vcf.gz", seed: int = 7,
                       **sizes) -> dict[str, Path]:
    """Write panel/targets/truth (bgzip by default) as a user would bring them; returns the paths."""
    data = simulate_user_haplotypes(seed=seed, **sizes)
    d = Path(directory)
    targets = data.truth.subset_sites(data.array)
    order = np.random.default_rng(seed + 1).permutation(len(data.truth.samples))
    truth = data.truth.subset_samples(order)  # a truth file need not list samples in the targets' order
    files = {"panel": (data.panel, "reference panel (msprime, fixture)", True),
             "targets": (targets, "array genotypes (fixture)", False),
             "truth": (truth, "sequenced truth (fixture)", False)}
    return {name: vcf_io.write_text(d / f"{name}{suffix}", _header(h, source, info), _records(h, info))
            for name, (h, source, info) in files.items()}


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m latentlab.recon.fixtures",
                                     description="Write a small Study 3 panel/targets/truth VCF set in a user's format.")
    parser.add_argument("out", help="the directory to write panel, targets and truth into")
    for name, path in write_user_dataset(parser.parse_args(argv).out).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
