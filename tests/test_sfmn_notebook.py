"""Study 2's notebook on files in the formats a user brings, run through papermill as a user would.

1. The shipped real-format example (``epi.write_example``): genome-coordinate pairs on a bgzip genome,
   cell-line features and a truth table, other cell-line names and counts than the simulator's, every
   parameter at its ``quick`` default: the run must report gate recovery from the truth.
2. Named regions (FASTA) of varied lengths, no truth, no features, no motif file: the run must finish,
   say what it cannot check, and report no gate recovery.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from latentlab.sfmn import data as epi

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_sfmn.ipynb"
PAPERMILL = Path(sys.executable).with_name("papermill")

pytestmark = pytest.mark.slow


def run_notebook(tmp_path: Path, *args: str) -> tuple[dict, str]:
    out_nb = tmp_path / "out.ipynb"
    cmd = [str(PAPERMILL), str(NOTEBOOK), str(out_nb), "-k", "python3", "--cwd", str(ROOT / "notebooks"),
           "-p", "output_dir", str(tmp_path / "run"), "-p", "progress", "False", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    text = "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     + "".join(o.get("data", {}).get("text/markdown", ""))  # the conclusions display as Markdown
                     for c in json.loads(out_nb.read_text())["cells"] for o in c.get("outputs", []))
    return json.loads((tmp_path / "run" / "metrics.json").read_text()), text


def test_coordinate_example_with_truth_reports_gate_recovery(tmp_path):
    paths = epi.write_example(tmp_path / "data", n_cell_lines=6, pairs_per_cell_line=70, seed=3)
    metrics, text = run_notebook(
        tmp_path, "-p", "pairs", str(paths["pairs"]), "-p", "genome", str(paths["genome"]),
        "-p", "cell_features", str(paths["cell_features"]), "-p", "truth", str(paths["truth"]))
    assert metrics["truth_given"] is True
    assert 0.0 <= metrics["gate_recovery_unseen"] <= 1.0
    assert "genome coordinates" in metrics["data"]["pairs"]
    assert set(metrics["folds"]) <= {"GM12878", "K562", "HeLa-S3", "IMR-90", "HUVEC", "NHEK"}
    assert "gate recovery AUROC" in text and "Gate recovery on the unseen cell line(s): AUROC" in text
    assert any(c.startswith("Scope: 2 held-out cell line(s) of 6") for c in metrics["conclusions"])


def test_named_fasta_without_truth_says_what_it_cannot_check(tmp_path):
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    paths = epi.write_example(tmp_path / "coord", n_cell_lines=4, pairs_per_cell_line=80, seed=5)
    genome = epi.open_genome(paths["genome"])
    coords = pd.read_csv(paths["pairs"], sep="\t")
    named, records = [], {}
    for r in coords.itertuples():
        e, p = f"enh_{r.enhancer_chrom}_{r.enhancer_start}", f"prom_{r.promoter_chrom}_{r.promoter_start}"
        records[e] = genome[r.enhancer_chrom][r.enhancer_start:r.enhancer_end].seq
        records[p] = genome[r.promoter_chrom][r.promoter_start:r.promoter_end].seq
        named.append({"cell_line": r.cell_line, "promoter": p, "label": r.label, "enhancer": e})
    pairs = tmp_path / "my_pairs.csv"
    pd.DataFrame(named).to_csv(pairs, index=False)
    fasta = tmp_path / "regions.fasta"
    SeqIO.write([SeqRecord(Seq(s), id=k, description="") for k, s in records.items()], fasta, "fasta")
    metrics, text = run_notebook(tmp_path, "-p", "pairs", str(pairs), "-p", "sequences", str(fasta),
                                 "-y", "models: [sfmn, erm]", "-p", "ablations", "False")
    assert metrics["truth_given"] is False and metrics["gate_recovery_unseen"] is None
    assert "No truth table was given" in text and "gate recovery: not checked (no truth table given)" in text
    assert "cell_encoder = 'support'" in text  # no feature table: the support set reads each cell line
    assert "n_val_cell_lines 2 → 1" in text  # 4 cell lines: one test, one validation, two training
    verdicts = {row["criterion"]: row["verdict"] for row in metrics["success"]}
    assert verdicts["gate recovery AUROC ≥ 0.8 (unseen cell lines)"].startswith("not tested")
