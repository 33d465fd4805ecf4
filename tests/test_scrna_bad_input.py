"""Bad input for the scRNA loaders (10x-style Matrix Market directory, R export, h5ad).

Every case asserts the error type AND that the message names the file and the
record (line, entry, cell/gene) or column — and nothing is silently accepted.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from latentlab.h2 import data as scrna
from latentlab.h2 import fixtures as scrna_fixtures
from latentlab.h2.data import DataError

KEYS = dict(context_key="chip_id", condition_key="donor", biology_key="celltype")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return scrna_fixtures.write_10x_dataset(tmp_path_factory.mktemp("tenx") / "tenx", n_cells=60, n_genes=30,
                                            chip_effect=0.5, library_shift=0.3)


@pytest.fixture
def tenx(tmp_path, pristine) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "tenx"))


def read_gz(path: Path) -> str:
    return gzip.decompress(path.read_bytes()).decode()


def write_gz(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode()))


def matrix_lines(tenx: Path) -> list[str]:
    return read_gz(tenx / "matrix.mtx.gz").splitlines()


def set_matrix_lines(tenx: Path, lines: list[str]) -> None:
    write_gz(tenx / "matrix.mtx.gz", "\n".join(lines) + "\n")


def first_entry(lines: list[str]) -> int:
    """0-based index of the first entry line (after the banner, comments and the size line)."""
    size = next(i for i, line in enumerate(lines) if not line.startswith("%"))
    return size + 1


def load(tenx: Path, **kwargs):
    return scrna.load_three_file(tenx, **{**KEYS, **kwargs})


def raises(match: str, *names: str):
    """pytest.raises(DataError) whose message must contain every name (file, line, column) and match."""
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(DataError, match=match)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            for name in names:
                assert name in str(self.info.value), f"{name!r} not named in: {self.info.value}"
            return handled
    return Check()


def test_the_pristine_fixture_loads(tenx):
    adata = load(tenx)
    assert adata.shape == (60, 30) and adata.obs["chip_id"].dtype == "category"
    assert np.all(adata.X.data == np.round(adata.X.data)) and sp.isspmatrix_csr(adata.X)


# --------------------------------------------------------------------------- Matrix Market entries


def test_duplicate_coordinates_are_refused_not_summed(tenx):
    lines = matrix_lines(tenx)
    k = first_entry(lines)
    lines.insert(k + 3, lines[k])  # the first entry listed again, three entries later
    size = lines[k - 1].split()
    lines[k - 1] = f"{size[0]} {size[1]} {int(size[2]) + 1}"
    set_matrix_lines(tenx, lines)
    with raises(rf"line {k + 4} \(entry 4, .*the same coordinate as line {k + 1}", "matrix.mtx.gz"):
        load(tenx)


def test_a_value_beyond_float32_is_refused_not_made_inf(tenx):
    lines = matrix_lines(tenx)
    lines[0] = lines[0].replace("integer", "real")
    k = first_entry(lines) + 5
    r, c, _ = lines[k].split()
    lines[k] = f"{r} {c} 1e300"
    set_matrix_lines(tenx, lines)
    with raises(rf"line {k + 1} .*value 1e\+300 exceeds float32", "matrix.mtx.gz", f"row {r} = "):
        load(tenx)


@pytest.mark.parametrize("token, message", [("nan", "value nan; expected finite counts"),
                                            ("-3", "negative value -3; expected raw counts")])
def test_nan_and_negative_entries_name_their_line_gene_and_cell(tenx, token, message):
    lines = matrix_lines(tenx)
    lines[0] = lines[0].replace("integer", "real")
    k = first_entry(lines) + 2
    r, c, _ = lines[k].split()
    lines[k] = f"{r} {c} {token}"
    set_matrix_lines(tenx, lines)
    with raises(rf"line {k + 1} \(entry 3, row {r} = 'Gm\d+', column {c} = '[ACGT]+-1'\): {re.escape(message)}",
                "matrix.mtx.gz"):
        load(tenx)


def test_an_extra_field_on_a_matrix_line_is_refused_not_ignored(tenx):
    lines = matrix_lines(tenx)
    k = first_entry(lines) + 7
    lines[k] += " 9"
    set_matrix_lines(tenx, lines)
    with raises(rf"line {k + 1} .*more than 3 fields", "matrix.mtx.gz"):
        load(tenx)


def test_a_fraction_in_an_integer_matrix_is_refused_not_truncated(tenx):
    lines = matrix_lines(tenx)
    k = first_entry(lines) + 1
    r, c, _ = lines[k].split()
    lines[k] = f"{r} {c} 2.5"
    set_matrix_lines(tenx, lines)
    with raises(rf"line {k + 1} .*non-integer value in a file declared 'integer'", "matrix.mtx.gz"):
        load(tenx)


def test_a_pattern_matrix_has_no_counts(tenx):
    lines = matrix_lines(tenx)
    lines[0] = lines[0].replace("integer", "pattern")
    k = first_entry(lines)
    lines[k:] = [" ".join(line.split()[:2]) for line in lines[k:]]
    set_matrix_lines(tenx, lines)
    with raises("'pattern' Matrix Market file has no values", "matrix.mtx.gz"):
        load(tenx)


def test_a_truncated_matrix_names_the_file(tenx):
    set_matrix_lines(tenx, matrix_lines(tenx)[:-5])
    with raises("not a readable Matrix Market file .*Truncated", "matrix.mtx.gz"):
        load(tenx)


# --------------------------------------------------------------------------- text files


def test_non_utf8_bytes_in_the_metadata_name_file_and_line(tenx):
    path = tenx / "cell_annotations.csv"
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b"chipA", b"chip\xe9A").replace(b"chipB", b"chip\xe9B")
    path.write_bytes(b"\n".join(lines))
    with raises(r"line 5: byte 0xe9 is not UTF-8", "cell_annotations.csv"):
        load(tenx)


def test_gzip_bytes_in_a_file_not_named_gz_are_read_as_gzip(tenx):
    reference = load(tenx)
    path = tenx / "cell_annotations.csv"
    path.write_bytes(gzip.compress(path.read_bytes()))  # same name, gzip content
    back = load(tenx)
    assert list(back.obs["chip_id"]) == list(reference.obs["chip_id"])


def test_a_truncated_gzip_text_file_names_the_file(tenx):
    path = tenx / "features.tsv.gz"
    path.write_bytes(path.read_bytes()[:40])
    with raises("starts like gzip but is not a complete gzip stream", "features.tsv.gz"):
        load(tenx)


def test_a_metadata_row_with_an_extra_field_names_its_line(tenx):
    path = tenx / "cell_annotations.csv"
    lines = path.read_text().splitlines()
    lines[6] += ",extra"
    path.write_text("\n".join(lines) + "\n")
    with raises(r"line 7 has 5 fields, the other rows 4", "cell_annotations.csv"):
        load(tenx)


def test_features_with_mixed_widths_name_the_line(tenx):
    path = tenx / "features.tsv.gz"
    lines = read_gz(path).splitlines()
    lines[9] = lines[9].split("\t")[0]
    write_gz(path, "\n".join(lines) + "\n")
    with raises(r"line 10 has 1 tab-separated fields, line 1 has 3", "features.tsv.gz"):
        load(tenx)


# --------------------------------------------------------------------------- ids and counts across files


def test_duplicate_barcodes_name_both_lines(tenx):
    path = tenx / "barcodes.tsv.gz"
    lines = read_gz(path).splitlines()
    lines[7] = lines[2]
    write_gz(path, "\n".join(lines) + "\n")
    with raises(rf"duplicate barcode '{lines[2]}' \(lines 3 and 8\)", "barcodes.tsv.gz"):
        load(tenx)


def test_fewer_barcodes_than_matrix_columns_names_the_files_and_counts(tenx):
    path = tenx / "barcodes.tsv.gz"
    lines = read_gz(path).splitlines()
    write_gz(path, "\n".join(lines[:-2]) + "\n")
    meta = pd.read_csv(tenx / "cell_annotations.csv", index_col=0).iloc[:-2]
    meta.to_csv(tenx / "cell_annotations.csv")
    with raises(r"shape \(30, 60\) matches neither .*barcodes\.tsv\.gz lists 58 cells and features\.tsv\.gz "
                r"lists 30 genes", "matrix.mtx.gz"):
        load(tenx)


def test_a_barcode_without_metadata_is_named(tenx):
    meta = pd.read_csv(tenx / "cell_annotations.csv", index_col=0)
    dropped = meta.index[5]
    meta.drop(index=dropped).to_csv(tenx / "cell_annotations.csv")
    with raises(rf"no row for 1 of the 60 barcodes in barcodes\.tsv\.gz, e\.g\. \['{dropped}'\]",
                "cell_annotations.csv"):
        load(tenx)


def test_a_missing_label_names_column_and_cell(tenx):
    meta = pd.read_csv(tenx / "cell_annotations.csv", index_col=0)
    meta.iloc[4, meta.columns.get_loc("donor")] = ""
    meta.to_csv(tenx / "cell_annotations.csv")
    with raises(rf"column 'donor' \(condition_key\) has 1 missing values, first at cell '{meta.index[4]}'", "tenx"):
        load(tenx)


def test_a_missing_column_names_the_parameter_and_the_columns_there_are(tenx):
    with raises(r"no cell metadata column 'cell_type' for biology_key; set -p biology_key to one of "
                r"\['chip_id', 'donor', 'celltype'\] \(or \"\" for none\)", "tenx"):
        load(tenx, biology_key="cell_type")


def test_two_metadata_files_are_ambiguous(tenx):
    shutil.copy(tenx / "cell_annotations.csv", tenx / "other.csv")
    with raises(r"more than one cell metadata file \['cell_annotations\.csv', 'other\.csv'\]", "tenx"):
        load(tenx)
    assert load(tenx, meta="other.csv").n_obs == 60  # naming it resolves it


# --------------------------------------------------------------------------- h5ad


@pytest.fixture
def h5ad(tmp_path) -> Path:
    return scrna_fixtures.write_h5ad_dataset(tmp_path / "cells.h5ad", n_cells=60, n_genes=30, chip_effect=0.5,
                                             library_shift=0.3)


def test_h5ad_counts_come_from_the_counts_layer(h5ad):
    adata = scrna.load_h5ad(h5ad, **KEYS)
    assert adata.uns["loader"]["counts_from"] == "layers['counts']"
    assert np.all(adata.X.data == np.round(adata.X.data))


def test_h5ad_missing_obs_column_names_file_parameter_and_columns(h5ad):
    with raises(r"no cell metadata column 'Group' for context_key; set -p context_key to one of "
                r"\['chip_id', 'donor', 'celltype'\]", "cells.h5ad"):
        scrna.load_h5ad(h5ad, context_key="Group", condition_key="donor")


def test_h5ad_stored_genes_by_cells_is_called_transposed(tmp_path, h5ad):
    import anndata as ad

    adata = ad.read_h5ad(h5ad)
    flipped = tmp_path / "flipped.h5ad"
    adata.T.write_h5ad(flipped)
    with raises(r"no cell metadata column 'chip_id' .*the matrix looks transposed", "flipped.h5ad"):
        scrna.load_h5ad(flipped, **KEYS)


def test_h5ad_nan_in_counts_names_cell_and_gene(tmp_path, h5ad):
    import anndata as ad

    adata = ad.read_h5ad(h5ad)
    counts = adata.layers["counts"].toarray()
    counts[3, 5] = np.nan
    adata.layers["counts"] = sp.csr_matrix(counts)
    adata.write_h5ad(h5ad)
    with raises(rf"first at row 4 = cell '{adata.obs_names[3]}', column 6 = gene '{adata.var_names[5]}'",
                "cells.h5ad"):
        scrna.load_h5ad(h5ad, **KEYS)


def test_h5ad_normalised_without_counts_is_refused(tmp_path, h5ad):
    import anndata as ad

    adata = ad.read_h5ad(h5ad)
    del adata.layers["counts"]
    adata.write_h5ad(h5ad)
    with raises(r"non-integer values; expected raw counts \(or raw counts in layers\['counts'\]", "cells.h5ad",
                "first at row"):
        scrna.load_h5ad(h5ad, **KEYS)


def test_h5ad_counts_in_raw_are_used_when_x_is_normalised(h5ad):
    import anndata as ad

    adata = ad.read_h5ad(h5ad)
    adata.raw = ad.AnnData(adata.layers["counts"], obs=adata.obs, var=adata.var)
    del adata.layers["counts"]
    adata.write_h5ad(h5ad)
    back = scrna.load_h5ad(h5ad, **KEYS)
    assert back.uns["loader"]["counts_from"] == "raw.X" and np.all(back.X.data == np.round(back.X.data))
