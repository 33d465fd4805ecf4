"""Study 3 data: VCF/BCF round trips, simulation invariants, retrieval truth."""

from __future__ import annotations

import numpy as np
import pytest

from latentlab.recon import data as hp


@pytest.fixture(scope="module")
def sim() -> hp.Haplotypes:
    return hp.simulate(20, 5, 60_000, seed=3)


@pytest.fixture(scope="module")
def dataset(sim) -> hp.ImputationData:
    return hp.split_panel_targets(sim, 5, array_fraction=0.5, min_array_maf=0.05, seed=0)


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


# Bad input (every class, with file and line/record asserted) lives in tests/test_vcf_bad_input.py.


def test_bgzip_and_bcf_datasets_load_like_plain_vcf(tmp_path, dataset):
    plain = hp.load_dataset(hp.write_dataset(dataset, tmp_path / "plain"))
    for suffix in (".vcf.gz", ".bcf"):
        back = hp.load_dataset(hp.write_dataset(dataset, tmp_path / suffix[1:], suffix=suffix))
        np.testing.assert_array_equal(back.truth.haps, plain.truth.haps)
        np.testing.assert_array_equal(back.array, plain.array)


def test_beagle_gets_vcf_for_a_bcf_dataset(tmp_path, dataset):
    paths = hp.write_dataset(dataset, tmp_path / "bcf", suffix=".bcf")
    readable = hp.beagle_readable(paths, tmp_path / "work")
    assert all(str(p).endswith(".vcf.gz") for p in readable.values())
    np.testing.assert_array_equal(hp.read_vcf(readable["panel"]).haps, dataset.panel.haps)


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
