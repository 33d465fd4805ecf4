"""Single-cell counts: validated loaders (3-file R export, h5ad) and a simulator with truth.

The loaders return AnnData with sparse CSR counts in ``.X`` and categorical
``.obs`` columns, and raise ``DataError`` naming the file and the mismatch for
every input a user can get wrong.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import warnings
import zlib
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from latentlab.io import atomic_write


class DataError(ValueError):
    """An input file does not have the shape or content the study needs."""


MATRIX_NAMES = ("X.mtx", "X.mtx.gz", "matrix.mtx", "matrix.mtx.gz")
GENE_NAMES = ("genes.tsv", "genes.tsv.gz", "features.tsv", "features.tsv.gz")
BARCODE_NAMES = ("barcodes.tsv", "barcodes.tsv.gz")
META_NAMES = ("meta.csv", "meta.csv.gz", "metadata.csv", "metadata.csv.gz", "cells.csv", "cells.csv.gz")
FLOAT32_MAX = float(np.finfo(np.float32).max)
GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------- loaders


def load_three_file(
    directory: str | Path,
    *,
    matrix: str | None = None,
    meta: str | Path | None = None,
    genes: str | None = None,
    barcodes: str | None = None,
    context_key: str = "Group",
    condition_key: str | None = "Sample",
    biology_key: str | None = None,
    require_counts: bool = True,
) -> ad.AnnData:
    """Read a Matrix Market directory: the R export or a 10x-style one, plus a cell metadata CSV.

    * R export: ``X.mtx`` (cells × genes or genes × cells), ``meta.csv`` (first
      column the cell id), ``genes.tsv`` (one name per line, or id<TAB>name).
    * 10x-style: ``matrix.mtx[.gz]`` (genes × cells), ``barcodes.tsv[.gz]``,
      ``features.tsv[.gz]`` or ``genes.tsv[.gz]``, plus a cell metadata CSV keyed by barcode.

    File names are found in ``directory`` unless given; ``meta`` may be a path
    anywhere. Orientation is decided by matching the matrix shape against the
    number of cells and genes; a square matrix follows the file's convention
    (``X.mtx`` cells × genes, ``matrix.mtx`` genes × cells).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory (expected X.mtx/meta.csv/genes.tsv or a 10x-style "
                        "matrix.mtx.gz/barcodes.tsv.gz/features.tsv.gz with a cell metadata CSV, or a .h5ad file)")
    matrix_path = _pick(directory, matrix, MATRIX_NAMES, "matrix")
    genes_path = _pick(directory, genes, GENE_NAMES, "gene names")
    barcodes_path = _pick(directory, barcodes, BARCODE_NAMES, "cell barcodes", required=False)
    meta_path = Path(meta) if meta and Path(meta).exists() else (
        _pick(directory, str(meta) if meta else None, META_NAMES, "cell metadata", fallback_glob="*.csv*"))
    for path in (matrix_path, genes_path, barcodes_path, meta_path):
        if path is not None:
            _require_nonempty(path)
    obs = _read_meta(meta_path)
    if barcodes_path is not None:
        obs = _align_meta_to_barcodes(obs, _read_barcodes(barcodes_path), meta_path, barcodes_path)
    var = _read_genes(genes_path)
    counts = _read_matrix(matrix_path, n_cells=len(obs), n_genes=len(var), cells_file=barcodes_path or meta_path,
                          genes_file=genes_path, cell_ids=obs.index, gene_names=var.index,
                          require_counts=require_counts)
    adata = ad.AnnData(X=counts, obs=obs, var=var)
    _make_gene_names_unique(adata, genes_path)
    adata.uns["loader"] = {"files": [str(p) for p in (matrix_path, barcodes_path, genes_path, meta_path) if p]}
    return validate_adata(adata, source=str(directory), context_key=context_key, condition_key=condition_key,
                          biology_key=biology_key, require_counts=require_counts, values_checked=True)


def load_h5ad(
    path: str | Path,
    *,
    context_key: str = "Group",
    condition_key: str | None = "Sample",
    biology_key: str | None = None,
    require_counts: bool = True,
) -> ad.AnnData:
    """Read an ``.h5ad`` file (anndata) and hold it to the same rules as the Matrix Market export.

    Counts are taken from ``.X``, or — when ``.X`` holds normalised values — from
    ``.layers["counts"]`` or ``.raw.X`` (scanpy's habits); the choice is recorded in ``.uns["loader"]``.
    """
    path = Path(path)
    _require_nonempty(path)
    try:
        adata = ad.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for a broken file
        raise DataError(f"{path}: not a readable .h5ad file ({type(exc).__name__}: {exc})") from exc
    if adata.X is None:
        raise DataError(f"{path}: .X is empty (no expression matrix); expected counts, cells × genes")
    source = "X"
    if require_counts and not _is_integer_valued(adata.X):
        if "counts" in adata.layers:
            adata.X, source = adata.layers["counts"], "layers['counts']"
        elif adata.raw is not None and _is_integer_valued(adata.raw.X):
            adata, source = adata.raw.to_adata(), "raw.X"
    adata.X = sp.csr_matrix(adata.X)
    adata.uns["loader"] = {"files": [str(path)], "counts_from": source}
    return validate_adata(adata, source=str(path), context_key=context_key, condition_key=condition_key,
                          biology_key=biology_key, require_counts=require_counts)


def validate_adata(
    adata: ad.AnnData,
    *,
    source: str,
    context_key: str,
    condition_key: str | None,
    biology_key: str | None = None,
    require_counts: bool = True,
    values_checked: bool = False,
) -> ad.AnnData:
    """Check ids, every label column the run needs, and the counts; make labels categorical, X sparse CSR.

    Each column is named by the parameter that chose it, so the error says what to set.
    """
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise DataError(f"{source}: empty data ({adata.n_obs} cells × {adata.n_vars} genes)")
    duplicated = adata.obs_names[adata.obs_names.duplicated()].unique()
    if len(duplicated):
        raise DataError(f"{source}: duplicate cell ids, e.g. {list(duplicated[:5])}")
    for parameter, key in (("context_key", context_key), ("condition_key", condition_key),
                           ("biology_key", biology_key)):
        if key:
            _check_column(adata, source, parameter, key)
    n_context = adata.obs[context_key].nunique()
    if n_context < 2:
        raise DataError(f"{source}: context column {context_key!r} (context_key) has a single value "
                        f"{adata.obs[context_key].iloc[0]!r}; nothing to probe")
    adata.X = sp.csr_matrix(adata.X)
    if not values_checked:
        _check_csr_values(adata.X, source, adata.obs_names, adata.var_names, require_counts)
    return adata


def _check_column(adata: ad.AnnData, source: str, parameter: str, key: str) -> None:
    """One label column: present (else name the parameter and the columns there are), complete, categorical."""
    if key not in adata.obs.columns:
        hint = ""
        if key in adata.var.columns:
            hint = (" It is a column of .var (per gene): the matrix looks transposed — cells must be the rows "
                    "(obs) and genes the columns (var); fix with adata = adata.T before writing.")
        raise DataError(
            f"{source}: no cell metadata column {key!r} for {parameter}; set -p {parameter} to one of "
            f"{list(map(str, adata.obs.columns))}"
            + (" (or \"\" for none)" if parameter != "context_key" else "") + "." + hint
        )
    column = adata.obs[key]
    missing = column.isna() | column.astype(str).str.strip().isin(["", "nan", "NA", "None"])
    if missing.any():
        first = adata.obs_names[np.flatnonzero(missing.to_numpy())[0]]
        raise DataError(f"{source}: column {key!r} ({parameter}) has {int(missing.sum())} missing values, "
                        f"first at cell {first!r}; every cell needs a label")
    adata.obs[key] = pd.Categorical(column.astype(str))


def _pick(directory: Path, given: str | None, names: tuple[str, ...], what: str, *, required: bool = True,
          fallback_glob: str | None = None) -> Path | None:
    """The one file of a kind in ``directory``: the given name, else the one known name present."""
    if given:
        path = Path(given) if Path(given).is_absolute() else directory / given
        if not path.exists():
            raise DataError(f"{path}: file not found ({what})")
        return path
    present = [directory / n for n in names if (directory / n).exists()]
    if not present and fallback_glob:
        present = sorted(p for p in directory.glob(fallback_glob) if p.is_file())
    if len(present) > 1:
        raise DataError(f"{directory}: more than one {what} file {[p.name for p in present]}; keep one "
                        f"or name it with a parameter")
    if not present:
        if not required:
            return None
        raise DataError(f"{directory}: no {what} file; expected one of {list(names)} "
                        f"(the directory holds {sorted(p.name for p in directory.iterdir())})")
    return present[0]


def _require_nonempty(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")


def _read_text(path: Path) -> str:
    """A text file's content, gzip or plain (by its bytes, not its name), strictly UTF-8."""
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: starts like gzip but is not a complete gzip stream ({exc})") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8 text; expected a UTF-8 "
                        "text file (plain or gzip) — re-save it as UTF-8") from exc


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based line numbers."""
    return [(i, line.rstrip("\r")) for i, line in enumerate(_read_text(path).split("\n"), start=1) if line.strip()]


def _read_meta(path: Path) -> pd.DataFrame:
    """One row per cell, first column the cell id (CSV; tab-separated when named .tsv/.txt)."""
    text = _read_text(path)
    sep = "\t" if path.name.removesuffix(".gz").endswith((".tsv", ".txt")) else ","
    try:
        meta = pd.read_csv(io.StringIO(text), index_col=0, dtype=str, sep=sep, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: no rows (expected one row per cell, first column the cell id)") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {_first_bad_row(text, sep)} ({str(exc).strip()})") from exc
    if len(meta) == 0:
        raise DataError(f"{path}: header only, no cell rows")
    ids = meta.index.astype(str)
    duplicated = ids[ids.duplicated()].unique()
    if len(duplicated):
        first = duplicated[0]
        lines = [n + 2 for n in np.flatnonzero(ids == first)[:2]]
        raise DataError(f"{path}: duplicate cell id {first!r} in the first column (lines {lines[0]} and "
                        f"{lines[1]}; {len(duplicated)} ids repeated); cell ids must be unique")
    meta.index = pd.Index(ids, name=None)
    meta.columns = [str(c) for c in meta.columns]
    return meta.replace({"": np.nan, "NA": np.nan})


def _first_bad_row(text: str, sep: str) -> str:
    """Where a table's field count departs from the usual row width, for the error message."""
    rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text), delimiter=sep), start=1) if row]
    widths = pd.Series([len(row) for _, row in rows[1:]])
    usual = int(widths.mode().iloc[0]) if len(widths) else 0
    for number, row in rows[1:]:
        if len(row) != usual:
            return f"line {number} has {len(row)} fields, the other rows {usual} (header: {len(rows[0][1])})"
    return "rows of unequal length"


def _read_barcodes(path: Path) -> pd.Index:
    ids = []
    for number, line in _lines(path):
        fields = line.split("\t")
        if len(fields) != 1:
            raise DataError(f"{path}: line {number} has {len(fields)} tab-separated fields; expected one cell "
                            "barcode per line")
        ids.append(fields[0].strip())
    if not ids:
        raise DataError(f"{path}: no cell barcodes")
    index = pd.Index(ids, dtype=str)
    if index.duplicated().any():
        first = index[index.duplicated()][0]
        lines = [n for (n, _), i in zip(_lines(path), ids, strict=True) if i == first][:2]
        raise DataError(f"{path}: duplicate barcode {first!r} (lines {lines[0]} and {lines[1]}); barcodes must be "
                        "unique")
    return index


def _align_meta_to_barcodes(meta: pd.DataFrame, barcodes: pd.Index, meta_path: Path, barcodes_path: Path
                            ) -> pd.DataFrame:
    """Metadata rows in barcode order; every barcode needs a row and every row a barcode (no silent subset)."""
    unknown = barcodes.difference(meta.index, sort=False)
    if len(unknown):
        raise DataError(f"{meta_path}: no row for {len(unknown)} of the {len(barcodes)} barcodes in "
                        f"{barcodes_path.name}, e.g. {list(unknown[:3])}; the first column must be the barcode")
    extra = meta.index.difference(barcodes, sort=False)
    if len(extra):
        raise DataError(f"{meta_path}: {len(extra)} rows name cells that are not in {barcodes_path.name}, "
                        f"e.g. {list(extra[:3])}; subset the metadata to the matrix's cells")
    return meta.loc[barcodes]


def _read_genes(path: Path) -> pd.DataFrame:
    """One name per line, or 10x ``id<TAB>name[<TAB>type…]``; names become var_names, ids ``gene_ids``."""
    rows = [(n, line.split("\t")) for n, line in _lines(path)]
    if not rows:
        raise DataError(f"{path}: no gene names")
    width = len(rows[0][1])
    for number, fields in rows:
        if len(fields) != width:
            raise DataError(f"{path}: line {number} has {len(fields)} tab-separated fields, line {rows[0][0]} has "
                            f"{width}; expected one gene name per line or id<TAB>name[<TAB>type] on every line")
    if width == 1:
        return pd.DataFrame(index=pd.Index([f[0] for _, f in rows], dtype=str))
    frame = pd.DataFrame({"gene_ids": [f[0] for _, f in rows]}, index=pd.Index([f[1] for _, f in rows], dtype=str))
    if width >= 3:
        frame["feature_types"] = [f[2] for _, f in rows]
    return frame


def _make_gene_names_unique(adata: ad.AnnData, genes_path: Path) -> None:
    """Repeated gene names get scanpy's ``-1`` suffixes, and the run says how many (ids stay in gene_ids)."""
    repeated = int(adata.var_names.duplicated().sum())
    if repeated:
        adata.var_names_make_unique()
        warnings.warn(f"{genes_path}: {repeated} repeated gene names made unique with '-1', '-2' suffixes "
                      "(anndata's var_names_make_unique)", stacklevel=3)


def _open_binary(path: Path):
    """A binary handle, decompressing gzip by content (a .mtx that is really gzip still reads)."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def _mtx_source(path: Path) -> str | io.BytesIO:
    """What scipy's reader takes: the path (it decompresses ``.gz`` names itself), or the decompressed
    bytes of a gzip file not named ``.gz``. (It aborts the process on some open file handles.)"""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == GZIP_MAGIC and not path.name.endswith(".gz"):
        with gzip.open(path, "rb") as handle:
            return io.BytesIO(handle.read())
    return str(path)


def _read_matrix(path: Path, *, n_cells: int, n_genes: int, cells_file: Path, genes_file: Path,
                 cell_ids: pd.Index, gene_names: pd.Index, require_counts: bool) -> sp.csr_matrix:
    """scipy's Matrix Market reader, then checks it does not make: each entry's line, fields and value."""
    try:
        rows, cols, _, layout, field, _ = scipy.io.mminfo(_mtx_source(path))
        matrix = scipy.io.mmread(_mtx_source(path))
    except (ValueError, OverflowError, OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable Matrix Market file ({type(exc).__name__}: {exc})") from exc
    if field == "pattern":
        raise DataError(f"{path}: a 'pattern' Matrix Market file has no values; expected counts "
                        "(field integer or real)")
    if field == "complex":
        raise DataError(f"{path}: complex values; expected counts (field integer or real)")
    transpose = _orientation(path, (rows, cols), n_cells, n_genes, cells_file, genes_file)
    names = (gene_names, cell_ids) if transpose else (cell_ids, gene_names)
    if layout == "coordinate":
        coo = sp.coo_matrix(matrix)
        _check_entries(path, coo, field, names, require_counts)
        matrix = coo
    else:
        _check_csr_values(sp.csr_matrix(matrix), str(path), *names, require_counts)
    matrix = sp.csr_matrix(matrix.T if transpose else matrix, dtype=np.float32)
    return matrix


def _orientation(path: Path, shape: tuple[int, int], n_cells: int, n_genes: int, cells_file: Path,
                 genes_file: Path) -> bool:
    """True when the file is genes × cells; a square file follows its name's convention."""
    cells_by_genes, genes_by_cells = shape == (n_cells, n_genes), shape == (n_genes, n_cells)
    if cells_by_genes and genes_by_cells:
        return path.name.startswith("matrix")
    if cells_by_genes or genes_by_cells:
        return genes_by_cells
    raise DataError(
        f"{path}: shape {shape} matches neither cells × genes nor genes × cells: "
        f"{cells_file.name} lists {n_cells} cells and {genes_file.name} lists {n_genes} genes"
    )


def _check_entries(path: Path, coo: sp.coo_matrix, field: str, names: tuple[pd.Index, pd.Index],
                   require_counts: bool) -> None:
    """Per entry (in file order): field count, integer tokens, duplicates, finite, float32 range, counts."""
    extra, fractional = _scan_tokens(path, coo, field)
    data = coo.data.astype(np.float64)

    def fail(k: int, what: str) -> None:
        row, col = int(coo.row[k]), int(coo.col[k])
        raise DataError(f"{path}: line {_entry_line(path, k)} (entry {k + 1}, row {row + 1} = {names[0][row]!r}, "
                        f"column {col + 1} = {names[1][col]!r}): {what}")

    if extra is not None:
        fail(extra, "more than 3 fields; expected 'row column value'")
    if fractional is not None:
        fail(fractional, "a non-integer value in a file declared 'integer' (scipy would truncate it)")
    order = np.lexsort((coo.col, coo.row))
    same = (np.diff(coo.row[order]) == 0) & (np.diff(coo.col[order]) == 0)
    if same.any():
        i = int(np.flatnonzero(same)[0])
        first, second = sorted((int(order[i]), int(order[i + 1])))
        fail(second, f"the same coordinate as line {_entry_line(path, first)}; a value must be listed once "
                     "(a reader would silently add them)")
    bad = ~np.isfinite(data)
    if bad.any():
        fail(int(np.flatnonzero(bad)[0]), f"value {data[bad][0]}; expected finite counts")
    big = np.abs(data) > FLOAT32_MAX
    if big.any():
        fail(int(np.flatnonzero(big)[0]), f"value {data[big][0]:g} exceeds float32 (max {FLOAT32_MAX:.3g})")
    if require_counts:
        negative = data < 0
        if negative.any():
            fail(int(np.flatnonzero(negative)[0]), f"negative value {data[negative][0]:g}; expected raw counts")
        fraction = data != np.round(data)
        if fraction.any():
            fail(int(np.flatnonzero(fraction)[0]), f"non-integer value {data[fraction][0]:g}; expected raw counts "
                 "(pass require_counts=False for normalised data)")


def _scan_tokens(path: Path, coo: sp.coo_matrix, field: str) -> tuple[int | None, int | None]:
    """What scipy's reader hides: an extra field on a line, and a fraction in an 'integer' file.

    Reads the entries again with pandas' C parser in chunks, so memory stays bounded.
    """
    with _open_binary(path) as handle:
        header = 0
        for raw in handle:
            header += 1
            if not raw.lstrip().startswith(b"%") and raw.strip():
                break
    offset, extra, fractional = 0, None, None
    # each value token is checked only when some byte of the entries could make one a fraction
    check_tokens = field == "integer" and not _only_integer_characters(path, header)
    try:
        with _open_binary(path) as handle:
            chunks = pd.read_csv(handle, sep=r"\s+", header=None, names=["r", "c", "v", "x"], comment="%",
                                 skiprows=header, dtype={"r": np.float64, "c": np.float64,
                                                         "v": str if check_tokens else np.float64, "x": str},
                                 chunksize=1_000_000)
            for chunk in chunks:
                if extra is None and chunk["x"].notna().any():
                    extra = offset + int(np.flatnonzero(chunk["x"].notna().to_numpy())[0])
                if fractional is None and check_tokens:
                    tokens = chunk["v"].astype(str)
                    odd = ~tokens.str.fullmatch(r"[+-]?\d+")
                    if odd.any():
                        fractional = offset + int(np.flatnonzero(odd.to_numpy())[0])
                offset += len(chunk)
    except pd.errors.ParserError:
        extra = _first_wide_entry(path)
    return extra, fractional


_INTEGER_BYTES = np.zeros(256, dtype=bool)
_INTEGER_BYTES[list(b"0123456789+- \t\r\n")] = True


def _only_integer_characters(path: Path, header_lines: int) -> bool:
    """True when the entries hold only digits, signs and whitespace, so no value can be a fraction.

    One table lookup per byte instead of a regex per value token: the per-token scan cost ~0.5 s per
    million entries (~2 of Study 1's 8 s load at `full`, 4.6 M entries); it runs only when this says no.
    """
    with _open_binary(path) as handle:
        for _ in range(header_lines):
            handle.readline()
        while block := handle.read(1 << 24):
            if not _INTEGER_BYTES[np.frombuffer(block, dtype=np.uint8)].all():
                return False
    return True


def _first_wide_entry(path: Path) -> int:
    """Index of the first entry with more than three fields (pandas stopped on it)."""
    k = -1
    for _, line in _entry_lines(path):
        k += 1
        if len(line.split()) > 3:
            return k
    return k


def _entry_lines(path: Path):
    """(line number, text) of each data entry of a coordinate Matrix Market file, after the size line."""
    seen_size = False
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.decode("utf-8", "replace").strip()
            if not line or line.startswith("%"):
                continue
            if not seen_size:
                seen_size = True
                continue
            yield number, line


def _entry_line(path: Path, k: int) -> int:
    """The file line of entry ``k`` (0-based, file order); counted only on the error path."""
    for i, (number, _) in enumerate(_entry_lines(path)):
        if i == k:
            return number
    return -1


def _is_integer_valued(matrix) -> bool:
    data = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    return bool(np.all(np.isfinite(data)) and np.all(data == np.round(data)))


def _check_csr_values(matrix: sp.csr_matrix, source: str, row_names: pd.Index, col_names: pd.Index,
                      require_counts: bool) -> None:
    """Values of an in-memory matrix (h5ad, dense .mtx): duplicates, finite, float32 range, counts."""
    canonical = matrix.copy()
    canonical.sum_duplicates()
    if canonical.nnz != matrix.nnz:
        row = int(np.flatnonzero(np.diff(canonical.indptr) != np.diff(matrix.indptr))[0])
        raise DataError(f"{source}: row {row + 1} ({row_names[row]!r}) stores the same column twice; "
                        "a sparse matrix must list each value once")
    data = matrix.data.astype(np.float64)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))

    def fail(mask: np.ndarray, what: str) -> None:
        k = int(np.flatnonzero(mask)[0])
        row, col = int(rows[k]), int(matrix.indices[k])
        raise DataError(f"{source}: {int(mask.sum())} {what}, first at row {row + 1} = cell {row_names[row]!r}, "
                        f"column {col + 1} = gene {col_names[col]!r} (value {data[k]:g})")

    if not np.all(np.isfinite(data)):
        fail(~np.isfinite(data), "non-finite values (NaN/inf); expected finite counts")
    if (np.abs(data) > FLOAT32_MAX).any():
        fail(np.abs(data) > FLOAT32_MAX, f"values beyond float32 (max {FLOAT32_MAX:.3g})")
    if require_counts:
        if (data < 0).any():
            fail(data < 0, "negative values; expected raw counts")
        if not np.all(data == np.round(data)):
            fail(data != np.round(data), "non-integer values; expected raw counts (or raw counts in "
                 "layers['counts'] or .raw of an .h5ad; pass require_counts=False for normalised data)")


# --------------------------------------------------------------------------- writer


def write_three_file(adata: ad.AnnData, directory: str | Path, *, columns: list[str] | None = None) -> Path:
    """Write the R export: ``X.mtx`` (cells × genes, integer), ``meta.csv`` and ``genes.tsv`` atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = adata.obs[columns] if columns else adata.obs
    atomic_write(directory / "genes.tsv", lambda p: p.write_text("\n".join(adata.var_names) + "\n"))
    atomic_write(directory / "meta.csv", lambda p: meta.to_csv(p))
    counts = sp.coo_matrix(adata.X)
    atomic_write(directory / "X.mtx", lambda p: scipy.io.mmwrite(str(p), counts, field=_mtx_field(counts)))
    return directory


def write_10x(adata: ad.AnnData, directory: str | Path, *, metadata: str = "cells.csv",
              columns: dict[str, str] | None = None) -> Path:
    """Write a 10x-style directory: gzipped ``matrix.mtx`` (genes × cells), ``barcodes.tsv``,
    ``features.tsv`` (id, name, type), plus a cell metadata CSV keyed by barcode.

    ``columns`` renames ``.obs`` columns on the way out (``{"Group": "chip_id"}``); only those are written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    counts = sp.coo_matrix(adata.X).T
    ids = adata.var["gene_ids"] if "gene_ids" in adata.var else pd.Series(
        [f"ENSG{i:011d}" for i in range(adata.n_vars)], index=adata.var_names)
    features = "".join(f"{gid}\t{name}\tGene Expression\n" for gid, name in zip(ids, adata.var_names, strict=True))
    barcodes = "".join(f"{b}\n" for b in adata.obs_names)
    meta = adata.obs[list(columns)].rename(columns=columns) if columns else adata.obs
    meta = meta.rename_axis("barcode")

    def gz_text(text: str):
        return lambda p: p.write_bytes(gzip.compress(text.encode(), mtime=0))

    def gz_matrix(p: Path) -> None:
        buffer = io.BytesIO()
        scipy.io.mmwrite(buffer, counts, field=_mtx_field(counts))
        p.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))

    atomic_write(directory / "features.tsv.gz", gz_text(features))
    atomic_write(directory / "barcodes.tsv.gz", gz_text(barcodes))
    atomic_write(directory / "matrix.mtx.gz", gz_matrix)
    atomic_write(directory / metadata, lambda p: meta.to_csv(p))
    return directory


def _mtx_field(counts: sp.coo_matrix) -> str:
    return "integer" if np.all(counts.data == np.round(counts.data)) else "real"


# --------------------------------------------------------------------------- simulator


@dataclasses.dataclass(frozen=True)
class ScrnaSimulation:
    """Ground truth of a simulated experiment: types × samples crossed with chips."""

    n_cells: int = 2418
    n_genes: int = 2000
    n_types: int = 5
    samples: tuple[str, ...] = ("27", "30", "34", "36")
    chip1_share: tuple[float, ...] = (0.35, 0.6, 0.45, 0.7)
    chip_effect: float = 0.5
    library_shift: float = 0.3
    type_effect: float = 2.0
    marker_fraction: float = 0.1
    sample_effect: float = 0.3
    base_log_mean: float = -3.3
    base_log_sd: float = 1.2
    dispersion: float = 2.0
    seed: int = 0


def simulate_counts(sim: ScrnaSimulation, *, chunk: int = 512) -> ad.AnnData:
    """Negative-binomial counts with cell types, crossed samples × chips, and a tunable chip effect.

    The chip effect is a gene-wise multiplicative factor ``exp(chip_effect · N(0,1))``
    on chip2 plus a library-size shift; with ``chip_effect = 0`` and
    ``library_shift = 0`` chip carries no signal at all, so any probe must
    report chance. Counts are generated in chunks of cells so memory stays
    bounded by the chunk, not the matrix.
    """
    if len(sim.chip1_share) != len(sim.samples):
        raise ValueError("ScrnaSimulation: chip1_share needs one share per sample")
    rng = np.random.default_rng(sim.seed)
    n, g = sim.n_cells, sim.n_genes
    base = rng.normal(sim.base_log_mean, sim.base_log_sd, g)
    type_lfc = np.zeros((sim.n_types, g))
    n_markers = max(1, int(sim.marker_fraction * g))
    for t in range(sim.n_types):
        markers = rng.choice(g, n_markers, replace=False)
        type_lfc[t, markers] = rng.normal(sim.type_effect, 0.3 * sim.type_effect + 1e-12, n_markers)
    sample_lfc = rng.normal(0.0, sim.sample_effect, (len(sim.samples), g)) * (rng.random(g) < 0.1)
    chip_lfc = sim.chip_effect * rng.normal(0.0, 1.0, g)

    sample = rng.integers(0, len(sim.samples), n)
    chip2 = rng.random(n) >= np.asarray(sim.chip1_share)[sample]
    cell_type = rng.integers(0, sim.n_types, n)
    log_lib = rng.normal(0.0, 0.3, n) + sim.library_shift * chip2

    blocks = []
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        log_mean = (base + type_lfc[cell_type[rows]] + sample_lfc[sample[rows]]
                    + np.outer(chip2[rows], chip_lfc) + log_lib[rows, None])
        mean = np.exp(log_mean)
        rate = rng.gamma(sim.dispersion, mean / sim.dispersion)
        blocks.append(sp.csr_matrix(rng.poisson(rate).astype(np.float32)))
    counts = sp.vstack(blocks, format="csr")

    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type{t}" for t in cell_type]),
            "Sample": pd.Categorical(np.asarray(sim.samples)[sample]),
            "Group": pd.Categorical(np.where(chip2, "chip2", "chip1")),
        },
        index=[f"cell{i:05d}" for i in range(n)],
    )
    var = pd.DataFrame(index=[f"gene{j:05d}" for j in range(g)])
    var["chip_lfc"] = chip_lfc
    adata = ad.AnnData(X=counts, obs=obs, var=var)
    adata.uns["simulation"] = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(sim).items()}
    return adata


def load_pbmc68k(*, context_key: str = "phase", biology_key: str | None = "bulk_labels") -> ad.AnnData:
    """scanpy's bundled ``pbmc68k_reduced`` (real cells; ships with scanpy, no download).

    It carries log-normalised values, not counts, so the study skips
    normalisation for it. Biology labels are its ``bulk_labels`` column.
    """
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    expression = adata.raw.to_adata() if adata.raw is not None else adata
    expression.obs = adata.obs.copy()
    expression.X = sp.csr_matrix(expression.X)
    return validate_adata(expression, source="pbmc68k_reduced", context_key=context_key,
                          condition_key=None, biology_key=biology_key, require_counts=False)
