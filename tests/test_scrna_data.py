"""Loaders of the R 3-file export and h5ad: round trips and every user-made error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from latentlab.h2 import data as scrna
from latentlab.h2.data import DataError


@pytest.fixture(scope="module")
def small():
    return scrna.simulate_counts(scrna.ScrnaSimulation(n_cells=120, n_genes=60, seed=1))


@pytest.fixture
def export(tmp_path, small):
    return scrna.write_three_file(small, tmp_path / "export")


def test_round_trip_keeps_counts_ids_and_labels(export, small):
    back = scrna.load_three_file(export)
    assert sp.isspmatrix_csr(back.X) or sp.issparse(back.X)
    assert (back.X != small.X).nnz == 0
    assert list(back.obs_names) == list(small.obs_names)
    assert list(back.var_names) == list(small.var_names)
    assert back.obs["Group"].dtype == "category" and back.obs["Sample"].dtype == "category"


def test_transposed_matrix_is_detected(export, small):
    scipy.io.mmwrite(str(export / "X.mtx"), sp.coo_matrix(small.X.T), field="integer")
    back = scrna.load_three_file(export)
    assert back.shape == small.shape and (back.X != small.X).nnz == 0


def test_two_column_genes_file(export, small):
    lines = [f"ENSMUSG{i:05d}\t{name}" for i, name in enumerate(small.var_names)]
    (export / "genes.tsv").write_text("\n".join(lines) + "\n")
    back = scrna.load_three_file(export)
    assert list(back.var_names) == list(small.var_names)
    assert back.var["gene_ids"].iloc[0] == "ENSMUSG00000"


def test_context_and_condition_names_are_parameters(export):
    meta = pd.read_csv(export / "meta.csv", index_col=0).rename(columns={"Group": "chip", "Sample": "mouse"})
    meta.to_csv(export / "meta.csv")
    back = scrna.load_three_file(export, context_key="chip", condition_key="mouse")
    assert set(back.obs["chip"]) == {"chip1", "chip2"}


def test_h5ad_round_trip(tmp_path, small):
    path = tmp_path / "cells.h5ad"
    small.write_h5ad(path)
    back = scrna.load_h5ad(path)
    assert back.shape == small.shape and sp.issparse(back.X)


def test_row_count_mismatch_names_both_files(export):
    meta = pd.read_csv(export / "meta.csv", index_col=0).iloc[:-3]
    meta.to_csv(export / "meta.csv")
    with pytest.raises(DataError, match=r"X\.mtx: shape \(120, 60\).*meta\.csv lists 117 cells.*genes\.tsv lists 60"):
        scrna.load_three_file(export)


def test_missing_context_column(export):
    with pytest.raises(DataError, match=r"no cell metadata column 'Batch' for context_key; set -p context_key to one of \['cell_type', 'Sample', 'Group'\]"):
        scrna.load_three_file(export, context_key="Batch")


def test_duplicate_cell_ids(export):
    meta = pd.read_csv(export / "meta.csv", index_col=0)
    meta.index = [meta.index[0]] + list(meta.index[:-1])
    meta.to_csv(export / "meta.csv")
    with pytest.raises(DataError, match=r"meta\.csv: duplicate cell id 'cell00000' in the first column \(lines 2 and 3"):
        scrna.load_three_file(export)


def _rewrite_matrix(export, small, value):
    dense = small.X.toarray().astype(float)
    dense[0, 0] = value
    scipy.io.mmwrite(str(export / "X.mtx"), sp.coo_matrix(dense), field="real")


def test_negative_counts(export, small):
    _rewrite_matrix(export, small, -2)
    with pytest.raises(DataError, match=r"X\.mtx: line 4 \(entry 1, row 1 = 'cell00000', column 1 = 'gene00000'\): negative value -2"):
        scrna.load_three_file(export)


def test_non_finite_counts(export, small):
    _rewrite_matrix(export, small, np.inf)
    with pytest.raises(DataError, match=r"X\.mtx: line 4 .*'cell00000'.*: value inf; expected finite"):
        scrna.load_three_file(export)


def test_non_integer_counts(export, small):
    _rewrite_matrix(export, small, 0.5)
    with pytest.raises(DataError, match=r"X\.mtx: line 4 .*'gene00000'.*: non-integer value 0\.5"):
        scrna.load_three_file(export)
    assert scrna.load_three_file(export, require_counts=False).X[0, 0] == 0.5


@pytest.mark.parametrize("name", ["X.mtx", "meta.csv", "genes.tsv"])
def test_empty_file(export, name):
    (export / name).write_text("")
    with pytest.raises(DataError, match=rf"{name}: file is empty"):
        scrna.load_three_file(export)


def test_missing_file(export):
    (export / "genes.tsv").unlink()
    with pytest.raises(DataError, match=r"export: no gene names file; expected one of \['genes\.tsv'"):
        scrna.load_three_file(export)


def test_header_only_meta(export):
    (export / "meta.csv").write_text(",cell_type,Sample,Group\n")
    with pytest.raises(DataError, match="header only"):
        scrna.load_three_file(export)


def test_garbage_matrix(export):
    (export / "X.mtx").write_text("this is not matrix market\n1 2 3\n")
    with pytest.raises(DataError, match="not a readable Matrix Market file"):
        scrna.load_three_file(export)


def test_single_valued_context(export):
    meta = pd.read_csv(export / "meta.csv", index_col=0).assign(Group="chip1")
    meta.to_csv(export / "meta.csv")
    with pytest.raises(DataError, match="'Group' \\(context_key\\) has a single value 'chip1'"):
        scrna.load_three_file(export)


def test_broken_h5ad(tmp_path):
    path = tmp_path / "broken.h5ad"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="not a readable .h5ad file"):
        scrna.load_h5ad(path)


def test_simulator_truth_knobs():
    sim = scrna.simulate_counts(scrna.ScrnaSimulation(n_cells=400, n_genes=100, chip_effect=0.0, seed=2))
    shares = pd.crosstab(sim.obs["Sample"], sim.obs["Group"], normalize="index")["chip1"]
    assert shares.between(0.2, 0.85).all()  # every sample has cells on both chips
    assert shares.max() - shares.min() > 0.15  # in unequal shares
    assert np.allclose(sim.var["chip_lfc"], 0.0)
    density = sim.X.nnz / np.prod(sim.shape)
    assert 0.02 < density < 0.3


def test_pbmc68k_is_real_and_bundled():
    adata = scrna.load_pbmc68k(context_key="phase")
    assert adata.n_obs == 700 and "bulk_labels" in adata.obs
    assert sp.issparse(adata.X)
