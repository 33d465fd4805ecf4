"""Study 3 data: VCF round trip, bad-input errors, simulation invariants, retrieval truth."""

from __future__ import annotations

import numpy as np
import pytest

from latentlab.data import haplotypes as hp


@pytest.fixture(scope="module")
def sim() -> hp.Haplotypes:
    return hp.simulate(20, 5, 60_000, seed=3)


@pytest.fixture(scope="module")
def dataset(sim) -> hp.ImputationData:
    return hp.split_panel_targets(sim, 5, array_fraction=0.5, min_array_maf=0.05, seed=0)


def _vcf(tmp_path, records: list[str], samples=("s1", "s2"), name="x.vcf"):
    header = ["##fileformat=VCFv4.2", "##contig=<ID=22>",
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)]
    path = tmp_path / name
    path.write_text("\n".join(header + records) + "\n")
    return path


def test_simulation_positions_unique_biallelic(sim):
    assert np.all(np.diff(sim.positions) > 0), "VCF positions must be unique and increasing"
    assert sim.positions.min() >= 1
    assert set(np.unique(sim.haps)) <= {0, 1}
    assert sim.haps.shape == (25, 2, len(sim.positions))


def test_split_is_disjoint_and_array_is_common(dataset):
    assert not set(dataset.panel.samples) & set(dataset.truth.samples)
    assert dataset.array.any() and (~dataset.array).any()
    assert np.all(dataset.maf[dataset.array] >= 0.05), "array sites must be common in the panel"
    ac = dataset.panel.flat().sum(axis=0)
    assert np.all((ac > 0) & (ac < dataset.panel.flat().shape[0])), "every kept site is panel-polymorphic"


def test_vcf_round_trip(tmp_path, dataset):
    paths = hp.write_dataset(dataset, tmp_path)
    back = hp.load_dataset(paths)
    assert back.panel.samples == dataset.panel.samples
    np.testing.assert_array_equal(back.panel.positions, dataset.panel.positions)
    np.testing.assert_array_equal(back.panel.haps, dataset.panel.haps)
    np.testing.assert_array_equal(back.truth.haps, dataset.truth.haps)
    np.testing.assert_array_equal(back.array, dataset.array)
    assert back.panel.ref == dataset.panel.ref and back.panel.alt == dataset.panel.alt


def test_gzip_round_trip(tmp_path, sim):
    back = hp.read_vcf(hp.write_vcf(tmp_path / "p.vcf.gz", sim))
    np.testing.assert_array_equal(back.haps, sim.haps)


@pytest.mark.parametrize("record, message", [
    ("22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0|0", "unphased genotype for sample 's1'"),
    ("22\t10\t.\tA\tG,T\t.\tPASS\t.\tGT\t0|2\t0|0", "2 ALT alleles"),
    ("22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t.|.\t0|0", "missing genotype for sample 's1'"),
])
def test_bad_records_are_named(tmp_path, record, message):
    with pytest.raises(hp.VcfError, match=message) as err:
        hp.read_vcf(_vcf(tmp_path, [record]))
    assert "22:10" in str(err.value)


def test_duplicate_samples(tmp_path):
    with pytest.raises(hp.VcfError, match=r"duplicate sample name\(s\) \['s1'\]"):
        hp.read_vcf(_vcf(tmp_path, ["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0"], samples=("s1", "s1")))


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.vcf"
    empty.write_text("")
    with pytest.raises(hp.VcfError, match="empty file"):
        hp.read_vcf(empty)
    with pytest.raises(hp.VcfError, match="file not found"):
        hp.read_vcf(tmp_path / "nope.vcf")
    with pytest.raises(hp.VcfError, match="no variant records"):
        hp.read_vcf(_vcf(tmp_path, []))


def test_unsorted_positions(tmp_path):
    recs = ["22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0", "22\t20\t.\tC\tT\t.\tPASS\t.\tGT\t0|1\t0|0"]
    with pytest.raises(hp.VcfError, match="strictly increasing"):
        hp.read_vcf(_vcf(tmp_path, recs))


def test_mismatched_positions_and_alleles(tmp_path):
    panel = hp.read_vcf(_vcf(tmp_path, ["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0",
                                        "22\t30\t.\tC\tT\t.\tPASS\t.\tGT\t0|1\t0|0"], name="panel.vcf"))
    off = hp.read_vcf(_vcf(tmp_path, ["22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1"], samples=("t1",), name="t.vcf"))
    with pytest.raises(hp.VcfError, match="position 20 .* is not in panel"):
        hp.align_targets(panel, off)
    swapped = hp.read_vcf(_vcf(tmp_path, ["22\t30\t.\tC\tA\t.\tPASS\t.\tGT\t0|1"], samples=("t1",), name="u.vcf"))
    with pytest.raises(hp.VcfError, match="REF/ALT C/A but panel has C/T"):
        hp.align_targets(panel, swapped)
    same = hp.read_vcf(_vcf(tmp_path, ["22\t30\t.\tC\tT\t.\tPASS\t.\tGT\t0|1"], samples=("s2",), name="v.vcf"))
    with pytest.raises(hp.VcfError, match="also in panel"):
        hp.align_targets(panel, same)
    ok = hp.read_vcf(_vcf(tmp_path, ["22\t30\t.\tC\tT\t.\tPASS\t.\tGT\t0|1"], samples=("t1",), name="w.vcf"))
    assert hp.align_targets(panel, ok).tolist() == [1]


def test_retrieval_finds_the_copied_haplotype():
    rng = np.random.default_rng(0)
    panel = rng.integers(0, 2, (40, 30))
    observed = rng.random(30) < 0.4
    query = panel[[7, 19]].copy()
    near = hp.retrieve(query, observed, panel, 3)
    assert near[:, 0].tolist() == [7, 19]
    excluded = hp.retrieve(query, observed, panel, 3, exclude=np.array([[7], [19]]))
    assert 7 not in excluded[0] and 19 not in excluded[1]


def test_windows_cover_every_site():
    starts = hp.window_starts(100, 32)
    covered = np.zeros(100, bool)
    for s in starts:
        covered[s:s + 32] = True
    assert covered.all() and starts[-1] == 68
    with pytest.raises(ValueError, match="exceeds"):
        hp.window_starts(10, 32)
