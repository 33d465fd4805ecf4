"""Small real-format Study 1 datasets, generated (never downloaded), as a stranger would bring them.

Both formats the README documents, with column names, sample names, cell ids and
gene names that are *not* the study's defaults, so a test that runs the notebook
on them exercises every parameter a user must set:

* ``10x``: ``matrix.mtx.gz`` (genes × cells) + ``barcodes.tsv.gz`` + ``features.tsv.gz``
  and a ``cell_annotations.csv`` keyed by barcode;
* ``h5ad``: log-normalised ``.X`` with raw counts in ``.layers["counts"]`` (scanpy's habit).

Cell metadata columns: ``chip_id`` (context), ``donor`` (condition), ``celltype`` (biology).
The simulator's truth travels in ``.uns`` of the h5ad and in ``truth.json`` beside either.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc

from latentlab.h2 import data as scrna
from latentlab.io import atomic_write

COLUMNS = {"Group": "chip_id", "Sample": "donor", "cell_type": "celltype"}
DONORS = ("D1", "D2", "D3")
HOLDOUT = "D3"


def user_dataset(n_cells: int = 600, n_genes: int = 400, *, chip_effect: float, library_shift: float,
                 seed: int = 0) -> ad.AnnData:
    """Simulated counts relabelled the way a lab would: barcodes, gene symbols, its own column names."""
    sim = scrna.ScrnaSimulation(n_cells=n_cells, n_genes=n_genes, n_types=4, samples=DONORS,
                                chip1_share=(0.4, 0.65, 0.5), chip_effect=chip_effect,
                                library_shift=library_shift, seed=seed)
    adata = scrna.simulate_counts(sim)
    rng = np.random.default_rng(seed + 100)
    adata.obs_names = [_barcode(rng) + "-1" for _ in range(adata.n_obs)]
    adata.var["gene_ids"] = [f"ENSMUSG{i:011d}" for i in range(adata.n_vars)]
    adata.var_names = [f"Gm{i + 1000}" for i in range(adata.n_vars)]
    adata.obs["Group"] = adata.obs["Group"].map({"chip1": "chipA", "chip2": "chipB"}).astype("category")
    adata.obs = adata.obs.rename(columns=COLUMNS)[list(COLUMNS.values())]
    del adata.var["chip_lfc"]  # the truth stays out of the file a user would bring
    adata.uns["truth"] = {"chip_effect": chip_effect, "library_shift": library_shift, "seed": seed,
                          "simulation": json.loads(json.dumps(dataclasses.asdict(sim)))}
    return adata


def write_10x_dataset(directory: str | Path, **kwargs) -> Path:
    """A 10x-style Matrix Market directory with a cell annotation CSV (``cell_annotations.csv``)."""
    adata = user_dataset(**kwargs)
    directory = scrna.write_10x(adata, directory, metadata="cell_annotations.csv",
                                columns={c: c for c in COLUMNS.values()})
    _write_truth(directory / "truth.json", adata)
    return directory


def write_h5ad_dataset(path: str | Path, **kwargs) -> Path:
    """An ``.h5ad`` as scanpy users save them: normalised ``.X``, raw counts in ``layers['counts']``."""
    adata = user_dataset(**kwargs)
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: adata.write_h5ad(p))
    _write_truth(path.with_suffix(".truth.json"), adata)
    return path


def _write_truth(path: Path, adata: ad.AnnData) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(adata.uns["truth"], indent=1)))


def _barcode(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("ACGT"), 16))


def main(argv: list[str] | None = None) -> None:
    """``python -m latentlab.h2.fixtures OUT [--format 10x|h5ad] [--chip-effect X] …``"""
    import argparse

    parser = argparse.ArgumentParser(description="Write a small Study 1 dataset in a format a user brings.")
    parser.add_argument("out", help="a directory (10x) or a .h5ad path")
    parser.add_argument("--format", choices=["10x", "h5ad"], default="10x")
    parser.add_argument("--chip-effect", type=float, default=0.8)
    parser.add_argument("--library-shift", type=float, default=0.5)
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--genes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write = write_10x_dataset if args.format == "10x" else write_h5ad_dataset
    path = write(args.out, n_cells=args.cells, n_genes=args.genes, chip_effect=args.chip_effect,
                 library_shift=args.library_shift, seed=args.seed)
    print(f"wrote {path}: columns chip_id (context), donor (condition; hold out {HOLDOUT}), celltype (biology)")


if __name__ == "__main__":
    main()
