"""Study 3 on a user's own files: a bgzipped chr20 panel/targets/truth fixture, through the loader and papermill."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentlab.recon import data as hp
from latentlab.recon import fixtures as vcf_fixture
from latentlab.recon import pipeline as recon

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_recon.ipynb"
SIZES = dict(n_panel=40, n_target=8, length_bp=100_000)
HAS_BEAGLE = shutil.which("beagle") is not None


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("my_study3_data")
    vcf_fixture.write_user_dataset(d, seed=7, **SIZES)
    return d


def test_fixture_is_what_a_user_brings(user_dir):
    for name in hp.DATASET_FILES:
        raw = (user_dir / f"{name}.vcf.gz").read_bytes()
        assert raw[:2] == b"\x1f\x8b" and raw[12:14] == b"BC", f"{name} is not bgzip"
    header = [line for line in gzip.decompress((user_dir / "truth.vcf.gz").read_bytes()).decode().splitlines()
              if line.startswith("#CHROM")][0].split("\t")[9:]
    assert header != sorted(header), "truth lists samples in another order than the targets"


def test_loader_returns_exactly_the_simulated_truth(user_dir):
    truth = vcf_fixture.simulate_user_haplotypes(seed=7, **SIZES)
    data = hp.load_dataset(hp.find_dataset(user_dir))
    assert data.panel.chrom == "chr20" and data.panel.samples[0] == "REF0000"
    assert data.truth.samples == truth.truth.samples  # put back in the targets' order
    np.testing.assert_array_equal(data.panel.positions, truth.panel.positions)
    np.testing.assert_array_equal(data.panel.haps, truth.panel.haps)
    np.testing.assert_array_equal(data.truth.haps, truth.truth.haps)
    np.testing.assert_array_equal(data.array, truth.array)
    assert data.panel.ref == truth.panel.ref and set(data.panel.ref) <= set("ACGT")
    assert (data.maf == 0).any(), "the fixture keeps panel-monomorphic sites, as real panels can"


@pytest.mark.skipif(not HAS_BEAGLE, reason="beagle not on PATH (Debian package `beagle`)")
def test_beagle_imputes_a_bcf_dataset_through_the_study(tmp_path):
    vcf_fixture.write_user_dataset(tmp_path / "bcf", suffix=".bcf", seed=7, **SIZES)
    params = recon.ReconParams.from_preset("quick", data=str(tmp_path / "bcf"), output_dir=str(tmp_path / "out"))
    data, paths = recon.load(params)
    assert all(p.name.endswith(".vcf.gz") for p in paths.values()), "Beagle cannot read BCF"
    res = recon.run_beagle(paths, recon.prepare(data, params), tmp_path / "beagle")
    # aligned correctly, Beagle imputes common variants well; misaligned sites would sink this
    assert res["available"] and res["metrics"]["f1_common"] > 0.8, res["metrics"]


def _papermill(out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(out / "run.ipynb"), "-k", "python3",
           "--cwd", str(NOTEBOOK.parent), "-p", "output_dir", str(out / "run"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def test_notebook_runs_on_the_users_files(user_dir, tmp_path):
    proc = _papermill(tmp_path, "-p", "data", str(user_dir), "-p", "epochs", "1", "-y", "arms: [A, C]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    table = pd.read_csv(tmp_path / "run" / "ablation.csv")
    assert {"A", "C", recon.VOTE} <= set(table["arm"])
    assert metrics["params"]["data"] == str(user_dir)
    assert metrics["beagle"]["available"] is HAS_BEAGLE
    if HAS_BEAGLE:
        beagle = table[table["arm"] == "Beagle 5.4"]
        assert len(beagle) == 1 and beagle["f1_common"].iloc[0] > 0.8
    arms = table[table["arm"].isin(["A", "C"])]
    assert arms["f1_overall"].between(0, 1).all() and arms["concordance"].between(0, 1).all()


def test_a_bad_user_file_fails_the_notebook_naming_file_and_line(user_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(user_dir, bad)
    lines = gzip.decompress((bad / "panel.vcf.gz").read_bytes()).decode().splitlines()
    n = next(i for i, line in enumerate(lines) if not line.startswith("#")) + 3  # a record a few lines in
    fields = lines[n].split("\t")
    fields[9] = "0|2"  # an allele index the biallelic site does not have
    lines[n] = "\t".join(fields)
    (bad / "panel.vcf.gz").unlink()
    (bad / "panel.vcf").write_text("\n".join(lines) + "\n")
    proc = _papermill(tmp_path, "-p", "data", str(bad), "-p", "epochs", "1")
    assert proc.returncode != 0
    assert f"{bad / 'panel.vcf'}: line {n + 1} (record 4, chr20:{fields[1]})" in proc.stderr, proc.stderr[-3000:]
    assert "sample 'REF0000' (column 10) has GT '0|2'" in proc.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_panel_without_truth_can_hold_out_its_own_targets(user_dir, tmp_path):
    paths = hp.hold_out_targets(user_dir / "panel.vcf.gz", tmp_path / "held", n_target=6, seed=1)
    data = hp.load_dataset(hp.find_dataset(tmp_path / "held"))
    panel = hp.read_vcf(user_dir / "panel.vcf.gz")
    assert len(data.truth.samples) == 6 and len(data.panel.samples) == len(panel.samples) - 6
    assert not set(data.truth.samples) & set(data.panel.samples)
    cols = [panel.samples.index(s) for s in data.truth.samples]
    sites = np.searchsorted(panel.positions, data.panel.positions)
    np.testing.assert_array_equal(data.truth.haps, panel.haps[cols][:, :, sites])  # truth is the held-out data
    assert data.array.any() and (~data.array).any() and paths["truth"].name == "truth.vcf.gz"
    with pytest.raises(hp.VcfError, match=r"panel.vcf.gz: 40 samples; n_target=35 must leave at least 10"):
        hp.hold_out_targets(user_dir / "panel.vcf.gz", tmp_path / "x", n_target=35)


@pytest.mark.parametrize("n_panel, overrides, what", [
    (3, {}, r"panel.vcf.gz: 3 individuals; expected at least 4"),
    (6, {"k": 12}, r"panel.vcf.gz: 6 individuals .*k=12 retrieved haplotypes need at least 7 individuals"),
    (6, {"window": 4096}, r"panel.vcf.gz: \d+ sites; window=4096 needs at least that many"),
])
def test_files_too_small_for_the_model_are_named_before_training(tmp_path, n_panel, overrides, what):
    vcf_fixture.write_user_dataset(tmp_path / "small", n_panel=n_panel, n_target=2, length_bp=100_000, seed=3)
    params = recon.ReconParams.from_preset("quick", data=str(tmp_path / "small"), output_dir=str(tmp_path / "o"),
                                           **overrides)
    with pytest.raises(hp.VcfError, match=what):
        recon.load(params)
