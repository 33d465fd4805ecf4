"""Single-cell counts: validated loaders (3-file R export, h5ad) and a simulator with truth.

The loaders return AnnData with sparse CSR counts in ``.X`` and categorical
``.obs`` columns, and raise ``DataError`` naming the file and the mismatch for
every input a user can get wrong.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from latentlab.io import atomic_write


class DataError(ValueError):
    """An input file does not have the shape or content the study needs."""


# --------------------------------------------------------------------------- loaders


def load_three_file(
    directory: str | Path,
    *,
    matrix: str = "X.mtx",
    meta: str = "meta.csv",
    genes: str = "genes.tsv",
    context_key: str = "Group",
    condition_key: str | None = "Sample",
    require_counts: bool = True,
) -> ad.AnnData:
    """Read the R export: ``X.mtx`` (cells × genes or genes × cells), ``meta.csv``, ``genes.tsv``.

    Orientation is decided by matching the matrix shape against the number of
    cells in meta.csv and genes in genes.tsv; a square ambiguity is read as
    cells × genes (the export's documented orientation).
    """
    directory = Path(directory)
    paths = {name: directory / fname for name, fname in (("matrix", matrix), ("meta", meta), ("genes", genes))}
    for path in paths.values():
        _require_nonempty(path)
    obs = _read_meta(paths["meta"])
    var = _read_genes(paths["genes"])
    counts = _read_matrix(paths["matrix"], n_cells=len(obs), n_genes=len(var), meta=paths["meta"], genes=paths["genes"])
    adata = ad.AnnData(X=counts, obs=obs, var=var)
    adata.var_names_make_unique()
    return validate_adata(adata, source=str(directory), context_key=context_key,
                          condition_key=condition_key, require_counts=require_counts)


def load_h5ad(
    path: str | Path,
    *,
    context_key: str = "Group",
    condition_key: str | None = "Sample",
    require_counts: bool = True,
) -> ad.AnnData:
    """Read an ``.h5ad`` file and hold it to the same rules as the 3-file export."""
    path = Path(path)
    _require_nonempty(path)
    try:
        adata = ad.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for a broken file
        raise DataError(f"{path}: not a readable .h5ad file ({exc})") from exc
    if not sp.issparse(adata.X):
        adata.X = sp.csr_matrix(adata.X)
    return validate_adata(adata, source=str(path), context_key=context_key,
                          condition_key=condition_key, require_counts=require_counts)


def validate_adata(
    adata: ad.AnnData,
    *,
    source: str,
    context_key: str,
    condition_key: str | None,
    require_counts: bool = True,
) -> ad.AnnData:
    """Check ids, label columns and counts; make labels categorical and X sparse CSR (in place)."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise DataError(f"{source}: empty data ({adata.n_obs} cells × {adata.n_vars} genes)")
    duplicated = adata.obs_names[adata.obs_names.duplicated()].unique()
    if len(duplicated):
        raise DataError(f"{source}: duplicate cell ids, e.g. {list(duplicated[:5])}")
    for key in (context_key, condition_key):
        if key is None:
            continue
        if key not in adata.obs.columns:
            raise DataError(
                f"{source}: no column {key!r} in the cell metadata; available: {list(adata.obs.columns)}"
            )
        if adata.obs[key].isna().any():
            raise DataError(f"{source}: column {key!r} has {int(adata.obs[key].isna().sum())} missing values")
        adata.obs[key] = pd.Categorical(adata.obs[key].astype(str))
    if adata.obs[context_key].nunique() < 2:
        raise DataError(f"{source}: context column {context_key!r} has a single value; nothing to probe")
    adata.X = sp.csr_matrix(adata.X)
    _check_values(adata.X, source, require_counts)
    return adata


def _require_nonempty(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")


def _read_meta(path: Path) -> pd.DataFrame:
    try:
        meta = pd.read_csv(path, index_col=0, dtype=str)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: no rows (expected one row per cell, first column the cell id)") from exc
    if len(meta) == 0:
        raise DataError(f"{path}: header only, no cell rows")
    duplicated = meta.index[meta.index.duplicated()].unique()
    if len(duplicated):
        raise DataError(f"{path}: duplicate cell ids in the first column, e.g. {list(duplicated[:5])}")
    meta.index = meta.index.astype(str)
    meta.index.name = None
    return meta


def _read_genes(path: Path) -> pd.DataFrame:
    rows = [line.rstrip("\n\r").split("\t") for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise DataError(f"{path}: no gene names")
    widths = {len(r) for r in rows}
    if widths == {1}:
        return pd.DataFrame(index=pd.Index([r[0] for r in rows], dtype=str))
    if min(widths) >= 2:
        frame = pd.DataFrame({"gene_ids": [r[0] for r in rows]}, index=pd.Index([r[1] for r in rows], dtype=str))
        return frame
    raise DataError(f"{path}: mixed 1- and 2-column lines; expected one gene name per line or id<TAB>name")


def _read_matrix(path: Path, *, n_cells: int, n_genes: int, meta: Path, genes: Path) -> sp.csr_matrix:
    try:
        matrix = scipy.io.mmread(path)
    except Exception as exc:  # scipy raises ValueError/IndexError/... for malformed files
        raise DataError(f"{path}: not a readable Matrix Market file ({exc})") from exc
    matrix = sp.csr_matrix(matrix)
    if matrix.shape == (n_cells, n_genes):
        return matrix
    if matrix.shape == (n_genes, n_cells):
        return sp.csr_matrix(matrix.T)
    raise DataError(
        f"{path}: shape {matrix.shape} matches neither cells × genes nor genes × cells: "
        f"{meta.name} lists {n_cells} cells and {genes.name} lists {n_genes} genes"
    )


def _check_values(matrix: sp.csr_matrix, source: str, require_counts: bool) -> None:
    data = matrix.data
    if not np.all(np.isfinite(data)):
        raise DataError(f"{source}: {int((~np.isfinite(data)).sum())} non-finite values in the matrix")
    if require_counts:
        if (data < 0).any():
            raise DataError(f"{source}: {int((data < 0).sum())} negative values; expected raw counts")
        if not np.all(data == np.round(data)):
            raise DataError(
                f"{source}: non-integer values (e.g. {data[data != np.round(data)][0]}); expected raw "
                "counts (pass require_counts=False for normalised data)"
            )


# --------------------------------------------------------------------------- writer


def write_three_file(adata: ad.AnnData, directory: str | Path, *, columns: list[str] | None = None) -> Path:
    """Write ``X.mtx`` (cells × genes, integer), ``meta.csv`` and ``genes.tsv`` atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = adata.obs[columns] if columns else adata.obs
    atomic_write(directory / "genes.tsv", lambda p: p.write_text("\n".join(adata.var_names) + "\n"))
    atomic_write(directory / "meta.csv", lambda p: meta.to_csv(p))
    counts = sp.coo_matrix(adata.X)
    field = "integer" if np.all(counts.data == np.round(counts.data)) else "real"
    atomic_write(directory / "X.mtx", lambda p: scipy.io.mmwrite(str(p), counts, field=field))
    return directory


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


def load_pbmc68k(*, context_key: str = "phase") -> ad.AnnData:
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
                          condition_key=None, require_counts=False)
