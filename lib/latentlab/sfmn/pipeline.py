"""Study 2 — SFMN: sparse feature modulation for EPI prediction on unseen cell lines.

Step functions, in the order the notebook calls them:
``load`` → ``contract_demo`` → ``loco_splits`` → ``run_loco`` (every model ×
seed × held-out cell line, each trained by ``train_model`` through
``train.fit``) → ``summarise`` / ``success_table`` → ``ablations`` →
``write_outputs``.

Model selection follows DomainBed's training-domain validation: the
held-out test cell line is never used for early stopping or for the
decision threshold; ``n_val_cell_lines`` of the training cell lines are.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

from latentlab import io, train
from latentlab.params import ParameterError, StudyParams
from latentlab.sfmn import baselines
from latentlab.sfmn import data as epi
from latentlab.sfmn import losses as L
from latentlab.sfmn import model as M
from latentlab.sfmn.losses import DEFAULT_WEIGHTS, ENTROPY_SIGNS
from latentlab.sweep import results as sweeps

MODELS = ("sfmn", "erm", "energy", "dann", "film")
ACTIVE = 0.1  # a gate entry counts as active when g > ACTIVE


class GateWarning(UserWarning):
    """A degenerate gate (all ≈ 1, identical across cell lines, or not sparse) during training."""


@dataclasses.dataclass(frozen=True)
class SFMNParams(StudyParams):
    output_dir: str = "runs/sfmn"
    data: str = ""  # "" = simulated unless `pairs` is given; "simulated" or "files" to insist
    pairs: str = ""  # pairs table: named (enhancer, promoter, cell_line, label) or genome coordinates
    sequences: str = ""  # named regions: FASTA (plain/gzip) or a region, sequence table
    genome: str = ""  # coordinate pairs: genome FASTA, plain or bgzip (indexed with pyfaidx)
    cell_features: str = ""  # optional cell_line × numeric features table
    motifs: str = ""  # optional JASPAR / MEME motif file; "" = pyjaspar's bundled JASPAR CORE vertebrates
    truth: str = ""  # optional cell_line × motif 0/1 accessibility table: only used to score the gates
    coordinates: str = "bed"  # "bed" (0-based half-open) or "one_based" (1-based inclusive)
    max_region_len: int = 0  # 0 = every region at its own length; > 0 = centre-crop longer ones (announced)
    n_cell_lines: int = 12
    n_motifs: int = 12
    n_enhancers: int = 3000
    n_promoters: int = 1000
    pairs_per_cell_line: int = 2000
    enhancer_len: int = 300
    promoter_len: int = 200
    positive_rate: float = 0.05
    accessible_fraction: float = 0.3
    encoder: str = "pwm"
    cell_encoder: str = ""  # "" = "features" when a feature table exists, else "support"
    gate: str = "sigmoid"
    task_loss: str = "immax"
    align_form: str = "mse"
    entropy_sign: str = "spread"
    alpha: float = DEFAULT_WEIGHTS["align"]  # the seed's α=0.5, β=0.1, γ=0.05, δ=0.1
    beta: float = DEFAULT_WEIGHTS["sparse"]
    gamma: float = DEFAULT_WEIGHTS["entropy"]
    delta: float = DEFAULT_WEIGHTS["smooth"]
    domain_weight: float = 0.3
    cells_per_batch: int = 4
    samples_per_cell: int = 32
    support_k: int = 32
    budget: float = 0.3
    hidden: int = 64
    epochs: int = 20
    phase2_epochs: int = 3
    patience: int = 6
    lr: float = 3e-3
    n_val_cell_lines: int = 2
    region_holdout: float = 0.3
    models: list = dataclasses.field(default_factory=lambda: list(MODELS))
    seeds: list = dataclasses.field(default_factory=lambda: [0, 1, 2])
    test_cell_lines: list = dataclasses.field(default_factory=list)  # names; [] = chosen by n_test_cell_lines
    n_test_cell_lines: int = 0  # with test_cell_lines []: 0 = every cell line (full LOCO), k = k spread out
    ablations: bool = True
    device: str = "auto"  # where models train: "auto" (CUDA when available, else CPU), "cpu", "cuda:1", "mps"
    progress: bool = True
    sweep_results: str = ""  # a sweep directory or its results.csv: the notebook's last section reads it

    PRESETS = {
        "quick": dict(output_dir="runs/quick/sfmn", n_cell_lines=8, n_enhancers=1200, n_promoters=400,
                      pairs_per_cell_line=600, epochs=6, phase2_epochs=2, patience=4, seeds=[0],
                      n_test_cell_lines=2, ablations=True),
        "standard": dict(),
        "full": dict(output_dir="runs/full/sfmn", n_cell_lines=6, n_motifs=24, n_enhancers=12000, n_promoters=4000,
                     pairs_per_cell_line=8400, enhancer_len=3000, promoter_len=2000, epochs=30, hidden=128),
    }

    def check(self) -> None:
        super().check()
        self.require(self.n_cell_lines >= 3, "n_cell_lines", "must be >= 3 (train, validation and test cell lines)")
        self.require(1 <= self.n_motifs <= len(epi.MOTIF_IDS), "n_motifs", f"must be in 1..{len(epi.MOTIF_IDS)}")
        self.require(0 < self.positive_rate < 0.5, "positive_rate", "must be in (0, 0.5)")
        self.require(0 < self.accessible_fraction < 1, "accessible_fraction", "must be in (0, 1)")
        self.require(self.encoder in ("pwm", "cnn"), "encoder", "must be 'pwm' or 'cnn'")
        problem = train.device_problem(self.device)
        self.require(problem is None, "device", problem or "")
        self.require(self.cell_encoder in ("", "features", "support"), "cell_encoder",
                     "must be 'features', 'support' or '' (features when a table is given)")
        self.require(bool(self.data.strip()) or self.data == "", "data",
                     "must be '' (auto), 'simulated', 'files' or a directory; give files with -p pairs/genome/sequences")
        self.require(not (self.data == "simulated" and self.pairs), "data",
                     "is 'simulated' but `pairs` names a file; drop one of them")
        self.require(not (self.data == "files" and not self.pairs), "data", "is 'files' but `pairs` is empty")
        self.require(self.coordinates in epi.COORDINATE_SYSTEMS, "coordinates", f"must be one of {epi.COORDINATE_SYSTEMS}")
        self.require(self.max_region_len >= 0, "max_region_len", "must be >= 0 (0 = keep every region whole)")
        self.require(self.n_test_cell_lines >= 0, "n_test_cell_lines", "must be >= 0 (0 = every cell line)")
        if self.pairs:
            self.require(bool(self.genome) != bool(self.sequences), "genome",
                         "give exactly one of `genome` (coordinate pairs) and `sequences` (named pairs)")
        self.require(self.gate in M.GATES, "gate", f"must be one of {M.GATES}")
        self.require(self.task_loss in L.TASK_LOSSES, "task_loss", f"must be one of {L.TASK_LOSSES}")
        self.require(self.align_form in ("mse", "contrastive"), "align_form", "must be 'mse' or 'contrastive'")
        self.require(self.entropy_sign in ENTROPY_SIGNS, "entropy_sign", f"must be one of {ENTROPY_SIGNS}")
        for name in ("alpha", "beta", "gamma", "delta", "domain_weight"):
            self.require(getattr(self, name) >= 0, name, "loss weights must be >= 0")
        self.require(self.cells_per_batch >= 2, "cells_per_batch", "must be >= 2 (alignment needs two cell lines)")
        self.require(self.samples_per_cell >= 2, "samples_per_cell", "must be >= 2")
        self.require(self.epochs > self.phase2_epochs >= 1, "phase2_epochs", "must be >= 1 and < epochs")
        self.require(1 <= self.n_val_cell_lines <= self.n_cell_lines - 2, "n_val_cell_lines",
                     "must leave at least one training cell line")
        self.require(0 <= self.region_holdout < 0.9, "region_holdout", "must be in [0, 0.9)")
        self.require(set(self.models) <= set(MODELS) and bool(self.models), "models", f"choose from {MODELS}")
        self.require(bool(self.seeds), "seeds", "need at least one seed")
        self.require(self.lr > 0, "lr", "must be > 0")

    @property
    def uses_files(self) -> bool:
        return bool(self.pairs) or self.data not in ("", "simulated", "files")

    @property
    def weights(self) -> dict[str, float]:
        return {"align": self.alpha, "sparse": self.beta, "entropy": self.gamma, "smooth": self.delta}


# --------------------------------------------------------------------------- data


def load(params: SFMNParams) -> epi.EpiData:
    """Simulated data (written in the real formats and read back), or the user's files (every path a parameter)."""
    if not params.uses_files:
        sim = epi.EpiSimulation(
            n_cell_lines=params.n_cell_lines, n_motifs=params.n_motifs, n_enhancers=params.n_enhancers,
            n_promoters=params.n_promoters, pairs_per_cell_line=params.pairs_per_cell_line,
            enhancer_len=params.enhancer_len, promoter_len=params.promoter_len,
            positive_rate=params.positive_rate, accessible_fraction=params.accessible_fraction, seed=params.seed,
        )
        return epi.simulate_and_load(sim, params.output_path / "data")
    if params.data not in ("", "simulated", "files"):
        params = discover_files(params)
    path = {name: resolve_input(params, name) for name in INPUTS}
    return epi.load_epi(path["pairs"], path["sequences"], genome=path["genome"],
                        cell_features=path["cell_features"], motifs=path["motifs"], truth=path["truth"],
                        coordinates=params.coordinates, max_len=params.max_region_len,
                        n_default_motifs=params.n_motifs, index_dir=params.output_path / "data" / "genome_index")


INPUTS = ("pairs", "sequences", "genome", "cell_features", "motifs", "truth")
# `-p data DIR`: a convenience for a folder of files with these names; any path parameter given wins.
FOLDER_NAMES = {
    "pairs": ("pairs.csv", "pairs.tsv", "pairs.txt", "pairs.csv.gz", "pairs.tsv.gz"),
    "genome": ("genome.fa", "genome.fa.gz", "genome.fasta", "genome.fasta.gz", "genome.fna", "genome.fna.gz"),
    "sequences": ("sequences.fa", "sequences.fasta", "sequences.fa.gz", "sequences.fna", "sequences.csv",
                  "sequences.tsv"),
    "cell_features": ("cell_lines.csv", "cell_lines.tsv", "cell_features.csv", "cell_features.tsv"),
    "motifs": ("motifs.jaspar", "motifs.meme"),
    "truth": ("truth_accessibility.csv", "truth_accessibility.tsv", "truth.csv", "truth.tsv"),
}


def discover_files(params: SFMNParams) -> SFMNParams:
    """`data` names a folder: fill every empty path parameter from the file names in ``FOLDER_NAMES``."""
    folder = Path(params.data).expanduser()
    if not folder.is_absolute() and not folder.exists():
        from latentlab.params import project_root

        folder = project_root() / folder
    if not folder.is_dir():
        raise epi.DataError(f"SFMNParams.data = {params.data!r}: not a folder (nor 'simulated'/'files'); give a "
                            "folder of files, or each file with -p pairs/genome/sequences/...")
    found = {}
    for name, candidates in FOLDER_NAMES.items():
        if not getattr(params, name):
            hit = next((folder / c for c in candidates if (folder / c).exists()), None)
            if hit is not None:
                found[name] = str(hit)
    chosen = {**{n: getattr(params, n) for n in INPUTS}, **found}
    if not chosen["pairs"]:
        raise epi.DataError(f"{folder}: no pairs table (looked for {list(FOLDER_NAMES['pairs'])}); name it with "
                            "-p pairs")
    if chosen["genome"] and chosen["sequences"] and "genome" in found and "sequences" in found:
        raise epi.DataError(f"{folder}: holds both a genome and a sequence file; say which with -p genome or "
                            "-p sequences")
    return dataclasses.replace(params, **found)


def resolve_input(params: SFMNParams, name: str) -> Path | None:
    """A path parameter as given (relative to the working directory), else relative to the project root
    (papermill often runs the kernel in notebooks/); a missing file names the parameter."""
    from latentlab.params import project_root

    value = getattr(params, name)
    if not value:
        return None
    path = Path(value).expanduser()
    candidate = path if path.exists() or path.is_absolute() else project_root() / path
    if not candidate.exists():
        raise epi.DataError(f"SFMNParams.{name} = {value!r}: file not found (looked in {Path.cwd()} and "
                            f"{project_root()}); give an absolute path")
    return candidate


def fit_to_data(params: SFMNParams, data: epi.EpiData) -> tuple[SFMNParams, list[str]]:
    """Settings the data decides: the cell encoder when none was named, fewer validation lines when the
    data has few cell lines. Each change is returned as a sentence for the notebook to print."""
    notes, changes = [], {}
    n = len(data.cell_lines)
    if n < 3:
        raise epi.DataError(f"{data.sources.get('pairs', 'pairs')}: {n} cell line(s) {data.cell_lines}; leaving "
                            "one out needs at least 3 (test, validation, training)")
    if not params.cell_encoder:
        changes["cell_encoder"] = "features" if data.cell_features is not None else "support"
        notes.append(f"cell_encoder = {changes['cell_encoder']!r} ("
                     + ("a cell-line feature table was given)" if data.cell_features is not None else
                        "no cell-line feature table: each cell line is read from its unlabelled pairs)"))
    elif params.cell_encoder == "features" and data.cell_features is None:
        raise ParameterError("SFMNParams.cell_encoder = 'features' needs a cell-line feature table: set "
                             "cell_features, or cell_encoder 'support'")
    n_val = max(1, min(params.n_val_cell_lines, n - 3))  # keep two training lines where the data allows
    if n_val != params.n_val_cell_lines:
        changes["n_val_cell_lines"] = n_val
        notes.append(f"n_val_cell_lines {params.n_val_cell_lines} → {n_val}: the data has {n} cell lines and each "
                     "fold needs one test line and, for the alignment and smoothness terms, two training lines")
    if n - 1 - n_val < 2:
        off = [k for k in ("alpha", "delta") if getattr(params, k) > 0]
        changes.update(dict.fromkeys(off, 0.0))
        if off:
            notes.append(f"{' and '.join(off)} → 0: with {n} cell lines each fold trains on one cell line, so the "
                         "alignment and smoothness terms (which compare cell lines) have nothing to compare")
    if params.uses_files and params.encoder == "pwm" and not data.motifs:
        raise ParameterError("SFMNParams.encoder = 'pwm' needs motifs")
    return dataclasses.replace(params, **changes), notes


@dataclasses.dataclass
class Split:
    """One LOCO fold: a test cell line, validation cell lines, training cell lines and their pair rows."""

    test: int
    val: list[int]
    train: list[int]
    train_rows: np.ndarray
    val_rows: np.ndarray
    test_rows: np.ndarray
    disjoint_rows: np.ndarray  # test rows whose enhancer and promoter never occur in training/validation


def loco_splits(data: epi.EpiData, params: SFMNParams) -> list[Split]:
    """Leave one cell line out; validation lines drawn from the rest; a held-out region set for disjointness."""
    names = data.cell_lines
    tests = test_cell_lines(names, params)
    unknown = [t for t in tests if t not in names]
    if unknown:
        raise ParameterError(f"SFMNParams.test_cell_lines: unknown cell line(s) {unknown}; data has {names}")
    pairs = data.pairs
    rng = np.random.default_rng([params.seed, 7])
    held_e = rng.random(len(data.enhancers)) < params.region_holdout
    held_p = rng.random(len(data.promoters)) < params.region_holdout
    region_ok = ~held_e[pairs.enh.to_numpy()] & ~held_p[pairs.prom.to_numpy()]
    cell = pairs.cell.to_numpy()
    splits = []
    for name in tests:
        t = names.index(name)
        rest = [c for c in range(len(names)) if c != t]
        val = sorted(np.random.default_rng([params.seed, t]).choice(rest, params.n_val_cell_lines, replace=False).tolist())
        tr = [c for c in rest if c not in val]
        train_rows = np.nonzero(np.isin(cell, tr) & region_ok)[0]
        val_rows = np.nonzero(np.isin(cell, val) & region_ok)[0]
        test_rows = np.nonzero(cell == t)[0]
        seen_e = set(pairs.enh.to_numpy()[np.concatenate([train_rows, val_rows])])
        seen_p = set(pairs.prom.to_numpy()[np.concatenate([train_rows, val_rows])])
        disjoint = np.array([r for r in test_rows if pairs.enh.iat[r] not in seen_e and pairs.prom.iat[r] not in seen_p],
                            dtype=np.int64)
        splits.append(Split(t, val, tr, train_rows, val_rows, test_rows, disjoint))
    return splits


def test_cell_lines(names: list[str], params: SFMNParams) -> list[str]:
    """The held-out cell lines: as named, else ``n_test_cell_lines`` spread evenly over the data's order
    (0 or more than there are = every one, the full leave-one-out)."""
    if params.test_cell_lines:
        return list(params.test_cell_lines)
    k = params.n_test_cell_lines
    if k == 0 or k >= len(names):
        return list(names)
    picks = np.round(np.linspace(0, len(names) - 1, k + 2)[1:-1]).astype(int)
    return [names[i] for i in dict.fromkeys(picks.tolist())]


# --------------------------------------------------------------------------- batches


class PairInputs:
    """Turns pair rows into model inputs from the caches (PWM scans or one-hot), never re-encoding."""

    def __init__(self, data: epi.EpiData, encoder: str) -> None:
        self.data, self.encoder = data, encoder
        pairs = data.pairs
        self.enh = pairs.enh.to_numpy()
        self.prom = pairs.prom.to_numpy()
        self.cell = torch.as_tensor(pairs.cell.to_numpy())
        self.y = torch.as_tensor(pairs.label.to_numpy(), dtype=torch.float32)
        if encoder == "pwm":
            scan_e, scan_p = data.scans()
            self.scan_e, self.scan_p = torch.from_numpy(scan_e), torch.from_numpy(scan_p)
        else:
            self.seq_e, self.seq_p = torch.from_numpy(data.enh_onehot), torch.from_numpy(data.prom_onehot)

    def encoder_inputs(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        e, p = torch.as_tensor(self.enh[rows]), torch.as_tensor(self.prom[rows])
        if self.encoder == "pwm":
            return {"scan_e": self.scan_e[e], "scan_p": self.scan_p[p]}
        return {"seq_e": self.seq_e[e], "seq_p": self.seq_p[p]}

    def batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        r = torch.as_tensor(rows)
        return {**self.encoder_inputs(rows), "cell": self.cell[r], "y": self.y[r]}

    def scan_stats(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        inp = self.encoder_inputs(rows)
        s = torch.cat([inp["scan_e"], inp["scan_p"]], dim=-1)
        return s.mean(0), s.std(0)


def cell_blocks(rows: np.ndarray, cell: np.ndarray, k: int, m: int, seed: int) -> Callable[[int], list[np.ndarray]]:
    """K cell lines × M samples per batch, cell-line-pure blocks; order depends only on (seed, epoch)."""
    by_cell = {c: rows[cell[rows] == c] for c in np.unique(cell[rows])}
    k = min(k, len(by_cell))
    n_batches = max(1, math.ceil(len(rows) / (k * m)))

    def batches(epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([seed, epoch, 11])
        perms = {c: rng.permutation(r) for c, r in by_cell.items()}
        pos = dict.fromkeys(by_cell, 0)
        out = []
        for _ in range(n_batches):
            chosen = rng.choice(list(by_cell), size=k, replace=False)
            block = []
            for c in chosen:
                idx = (pos[c] + np.arange(m)) % len(perms[c])
                block.append(perms[c][idx])
                pos[c] += m
            out.append(np.concatenate(block))
        return out

    return batches


class Batches:
    """``epoch -> iterable of batch dicts`` for ``train.fit``."""

    def __init__(self, inputs: PairInputs, rows: np.ndarray, k: int, m: int, seed: int) -> None:
        self.inputs = inputs
        self.order = cell_blocks(rows, inputs.cell.numpy(), k, m, seed)

    def __call__(self, epoch: int):
        for idx in self.order(epoch):
            yield self.inputs.batch(idx)


# --------------------------------------------------------------------------- models


def build_model(kind: str, data: epi.EpiData, inputs: PairInputs, split: Split, params: SFMNParams,
                **overrides: Any) -> torch.nn.Module:
    """One of MODELS on the configured encoder; ``overrides`` change SFMN options (ablations)."""
    opts = {"gate": params.gate, **overrides}
    if params.encoder == "pwm":
        mean, sd = inputs.scan_stats(split.train_rows)
        enc: torch.nn.Module = M.PWMEncoder(mean, sd)
    else:
        enc = M.CNNEncoder(2 * max(len(data.motifs), params.n_motifs))
    n_cells = len(data.cell_lines)
    if kind in ("sfmn", "film"):
        if cell_mode(params, data) == "features":
            if data.cell_features is None:
                raise ParameterError("SFMNParams.cell_encoder = 'features' needs a cell-line feature table "
                                     "(parameter cell_features), or cell_encoder 'support'")
            cenc: torch.nn.Module = M.FeatureCellEncoder(data.cell_features.shape[1])
        else:
            cenc = M.SupportCellEncoder(enc.dim)
        model: torch.nn.Module = M.SFMN(enc, cenc, modulation="film" if kind == "film" else "gate",
                                        hidden=params.hidden, budget=params.budget, **opts)
        model.set_context(cell_context(data, inputs, params))
        return model
    if kind == "erm":
        return baselines.ERM(enc, hidden=params.hidden)
    if kind == "dann":
        return baselines.DANN(enc, n_cells, hidden=params.hidden)
    if kind == "energy":
        model = baselines.EnergyModel(enc, n_cells, hidden=params.hidden)
        model.set_training_cells(split.train)
        return model
    raise ValueError(f"unknown model {kind!r}; choose from {MODELS}")


def objective_for(model: torch.nn.Module, params: SFMNParams, **loss_options: Any) -> L.EPIObjective:
    """What ``train.fit`` trains for ``model``: its loss terms with the run's task loss and, for a
    gated model, the run's alignment/entropy options (``loss_options`` override them: ablations)."""
    if isinstance(model, M.SFMN):
        loss_options = {"align_form": params.align_form, "entropy_sign": params.entropy_sign, **loss_options}
    return L.objective_for(model, task=params.task_loss, **loss_options)


def cell_context(data: epi.EpiData, inputs: PairInputs, params: SFMNParams) -> M.CellContext:
    """Explicit features, or k cached support pairs per cell line (drawn once; labels never read)."""
    features = torch.from_numpy(data.cell_features) if data.cell_features is not None else None
    support = None
    if cell_mode(params, data) == "support":
        cell = data.pairs.cell.to_numpy()
        rng = np.random.default_rng([params.seed, 3])
        rows = np.stack([_support_rows(np.nonzero(cell == c)[0], params.support_k, rng)
                         for c in range(len(data.cell_lines))])
        flat = inputs.encoder_inputs(rows.ravel())
        support = {k: v.view(len(data.cell_lines), params.support_k, *v.shape[1:]) for k, v in flat.items()}
    return M.CellContext(features, support)


def cell_mode(params: SFMNParams, data: epi.EpiData) -> str:
    """The cell encoder in use: as named, else features when the data has a feature table."""
    return params.cell_encoder or ("features" if data.cell_features is not None else "support")


def _support_rows(rows: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct pairs of one cell line; with fewer than k pairs, all of them and then repeats."""
    return rng.choice(rows, k, replace=len(rows) < k)


def ramp(weight: float, params: SFMNParams) -> Callable[[train.StepContext], float]:
    """Curriculum: 0 in phase 1 (epoch 0), linear ramp over phase 2, full weight in phase 3."""

    def schedule(ctx: train.StepContext) -> float:
        if ctx.epoch == 0:
            return 0.0
        return weight * min(1.0, ctx.epoch / params.phase2_epochs)

    return schedule


def design_weights(design: str, params: SFMNParams, extra: dict | None = None) -> dict[str, Any]:
    """The loss weights a design is trained with (what the contract checks against)."""
    if design in ("sfmn", "film"):
        weights = {"task": 1.0, **{k: ramp(v, params) for k, v in params.weights.items()}}
    elif design == "erm":
        weights = {"task": 1.0}
    else:
        weights = {"task": 1.0, "domain": ramp(params.domain_weight, params)}
    return {**weights, **(extra or {})}


# --------------------------------------------------------------------------- evaluation helpers


@torch.no_grad()
def predict(model: torch.nn.Module, inputs: PairInputs, rows: np.ndarray, chunk: int = 2048) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    out = [torch.sigmoid(model(train.to_device(inputs.batch(rows[i : i + chunk]), device))).cpu().numpy()
           for i in range(0, len(rows), chunk)]
    return np.concatenate(out) if out else np.zeros(0)


def binary_auroc_aupr(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(AUROC, average precision) of scores ``p`` for 0/1 labels ``y`` with both classes present.

    The same numbers as sklearn's ``roc_auc_score`` and ``average_precision_score`` (ties as one
    threshold), in plain numpy: the monitors score every cell line every epoch, and sklearn's
    input validation, not the arithmetic, was ~30 % of Study 2's run time.
    """
    y = np.asarray(y, dtype=bool)
    order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
    p_sorted, y_sorted = np.asarray(p, dtype=np.float64)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]  # end of each distinct score
    tp = np.cumsum(y_sorted)[last].astype(np.float64)
    fp = (last + 1) - tp
    n_pos, n_neg = tp[-1], fp[-1]
    tpr, fpr = np.r_[0.0, tp / n_pos], np.r_[0.0, fp / n_neg]
    auroc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    aupr = float(np.sum(np.diff(tpr) * (tp / (tp + fp))))
    return auroc, aupr


def per_cell_scores(y: np.ndarray, p: np.ndarray, cell: np.ndarray) -> dict[str, float]:
    """AUROC / AUPR averaged over cell lines (ranking is per cell line, as deployed)."""
    aupr, auroc = [], []
    for c in np.unique(cell):
        m = cell == c
        if 0 < y[m].sum() < m.sum():
            roc, ap = binary_auroc_aupr(y[m], p[m])
            aupr.append(ap)
            auroc.append(roc)
    return {"aupr": float(np.mean(aupr)) if aupr else math.nan, "auroc": float(np.mean(auroc)) if auroc else math.nan}


def calibrate_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Threshold maximising F1 on validation predictions."""
    prec, rec, thr = precision_recall_curve(y, p)
    f1 = 2 * prec[:-1] * rec[:-1] / np.clip(prec[:-1] + rec[:-1], 1e-12, None)
    return float(thr[int(np.argmax(f1))]) if len(thr) else 0.5


def gate_stats(g: np.ndarray) -> dict[str, float]:
    """Active fraction ||g||₀/d (g > 0.1), mean gate, entropy/d, mean pairwise distance, Σg."""
    k = len(g)
    dist = [np.sqrt(((g[i] - g[j]) ** 2).mean()) for i in range(k) for j in range(i + 1, k)]
    return {
        "gate_active": float((g > ACTIVE).mean()),
        "gate_mean": float(g.mean()),
        "gate_entropy": float(-(g * np.log(g + 1e-6)).mean()),
        "gate_pairwise": float(np.mean(dist)) if dist else 0.0,
        "gate_sum": float(g.sum(axis=1).mean()),
    }


def degenerate(stats: dict[str, float]) -> list[str]:
    """Names of the degeneracies seed 000 lists, as found in the gate statistics."""
    found = []
    if stats["gate_mean"] > 0.95:
        found.append("gates ≈ all ones (modulation is the identity)")
    if stats["gate_pairwise"] < 1e-3:
        found.append("gates identical across cell lines (no cell-line specificity)")
    if stats["gate_active"] > 0.9:
        found.append("gates not sparse (> 90% active)")
    return found


@torch.no_grad()
def all_gates(model: torch.nn.Module, n_cells: int) -> np.ndarray | None:
    g = model.gates(torch.arange(n_cells))
    return None if g is None else g.numpy()


def gate_recovery(g: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per cell line: AUROC of the gate (enhancer and promoter halves averaged per motif) against accessibility.

    ``truth`` may hold NaN (unknown): only known motifs count; a cell line needs both an accessible
    and an inaccessible known motif, else its recovery is NaN. Scored with ``binary_auroc_aupr``
    (sklearn's ``roc_auc_score`` numbers): the SFMN and FiLM monitors score every cell line every
    epoch, and sklearn's input validation made this 8 % of a standard fold's CPU.
    """
    n = truth.shape[1]
    score = (g[:, :n] + g[:, n : 2 * n]) / 2
    out = np.full(len(truth), np.nan)
    for c in range(len(truth)):
        known = np.isfinite(truth[c])
        t = truth[c][known]
        if 0 < t.sum() < len(t):
            out[c] = binary_auroc_aupr(t, score[c][known])[0]
    return out


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


# --------------------------------------------------------------------------- training


@dataclasses.dataclass
class Trained:
    kind: str
    model: torch.nn.Module
    history: pd.DataFrame
    threshold: float
    seconds: float
    warnings: list[str]


def train_model(kind: str, data: epi.EpiData, inputs: PairInputs, split: Split, params: SFMNParams, seed: int, *,
                design: str | None = None, model: torch.nn.Module | None = None, extra_weights: dict | None = None,
                **overrides: Any) -> Trained:
    """Train one model on one fold with the curriculum, monitors and early stopping on validation AUPR.

    ``design`` (default ``kind``) names what the run claims to train; for ``sfmn``
    and ``film`` ``verify_design`` must pass and SFMN's five weights must all be
    read, whatever ``model`` actually is.
    """
    design = design or kind
    train.seed_everything(seed)
    loss_options = {k: overrides.pop(k) for k in L.LOSS_OPTIONS if k in overrides}
    model = model if model is not None else build_model(kind, data, inputs, split, params, **overrides)
    objective = objective_for(model, params, **loss_options)
    batches = Batches(inputs, split.train_rows, params.cells_per_batch, params.samples_per_cell, seed)
    first = next(iter(batches(0)))
    weights = design_weights(design, params, extra_weights)
    if design in ("sfmn", "film"):
        M.verify_design(model, first)
    train.check_contract(objective, first, weights, params.epochs)
    cell = inputs.cell.numpy()
    y = inputs.y.numpy()
    n_cells = len(data.cell_lines)
    seen = split.train + split.val
    raised: list[str] = []

    def on_epoch_start(_objective, epoch):
        model.freeze_gates(epoch == 0)

    def monitors(_objective, epoch):
        row = {"phase": 1 if epoch == 0 else (2 if epoch <= params.phase2_epochs else 3)}
        p = predict(model, inputs, split.train_rows)
        row.update({f"train_{k}": v for k, v in per_cell_scores(y[split.train_rows], p, cell[split.train_rows]).items()})
        g = all_gates(model, n_cells)
        if g is not None:
            stats = gate_stats(g[seen])
            row.update(stats)
            if epoch > params.phase2_epochs:  # phase 3: the ramp is over, the gate should have formed
                for problem in degenerate(stats):
                    if problem not in raised:
                        raised.append(problem)
                        warnings.warn(f"{kind} seed {seed} fold {data.cell_lines[split.test]} epoch {epoch}: {problem}",
                                      GateWarning, stacklevel=2)
            if data.truth is not None and params.encoder == "pwm":
                row["gate_recovery_seen"] = _nanmean(gate_recovery(g, data.truth["accessibility"])[seen])
        return row

    def validate(_objective):
        p = predict(model, inputs, split.val_rows)
        s = per_cell_scores(y[split.val_rows], p, cell[split.val_rows])
        live = not getattr(model, "gates_frozen", False)
        return {"val_aupr": s["aupr"], "val_auroc": s["auroc"], "val_select": s["aupr"] if live else -1.0}

    started = time.perf_counter()
    result = train.fit(objective, batches, weights=weights, epochs=params.epochs, lr=params.lr, seed=seed,
                       validate=validate, monitors=monitors, on_epoch_start=on_epoch_start,
                       early_stopping=train.EarlyStopping("val_select", "max", params.patience),
                       progress=params.progress, desc=f"{kind} s{seed} {data.cell_lines[split.test]}",
                       device=params.device)
    model.freeze_gates(False)
    threshold = calibrate_threshold(y[split.val_rows], predict(model, inputs, split.val_rows))
    history = result.history.assign(model=kind, seed=seed, test_cell_line=data.cell_lines[split.test],
                                    best_epoch=result.best_epoch)
    return Trained(kind, model, history, threshold, time.perf_counter() - started, raised)


def evaluate(trained: Trained, data: epi.EpiData, inputs: PairInputs, split: Split) -> dict[str, Any]:
    """Unseen-cell-line AUROC/AUPR/F1, train AUPR and gap, region-disjoint AUPR, gate recovery."""
    y, cell = inputs.y.numpy(), inputs.cell.numpy()
    model = trained.model
    p_test = predict(model, inputs, split.test_rows)
    y_test = y[split.test_rows]
    tr = per_cell_scores(y[split.train_rows], predict(model, inputs, split.train_rows), cell[split.train_rows])
    row: dict[str, Any] = {
        "model": trained.kind, "test_cell_line": data.cell_lines[split.test],
        "test_aupr": average_precision_score(y_test, p_test), "test_auroc": roc_auc_score(y_test, p_test),
        "test_f1": f1_score(y_test, p_test >= trained.threshold, zero_division=0),
        "base_rate": float(y_test.mean()), "train_aupr": tr["aupr"], "threshold": trained.threshold,
        "best_epoch": int(trained.history.best_epoch.iat[0]), "seconds": trained.seconds,
        "n_disjoint": len(split.disjoint_rows), "n_disjoint_pos": int(y[split.disjoint_rows].sum()),
        "gate_warnings": "; ".join(trained.warnings),
    }
    row["gap"] = row["train_aupr"] - row["test_aupr"]
    if row["n_disjoint_pos"] >= 3 and row["n_disjoint_pos"] < row["n_disjoint"]:
        pd_ = predict(model, inputs, split.disjoint_rows)
        row["disjoint_aupr"] = average_precision_score(y[split.disjoint_rows], pd_)
    else:
        row["disjoint_aupr"] = math.nan
    g = all_gates(model, len(data.cell_lines))
    if g is not None:
        row.update(gate_stats(g[split.train + split.val]))
        row["gate_active_unseen"] = float((g[split.test] > ACTIVE).mean())
        if data.truth is not None and isinstance(model.encoder, M.PWMEncoder):
            rec = gate_recovery(g, data.truth["accessibility"])
            row["gate_recovery_seen"] = _nanmean(rec[split.train + split.val])
            row["gate_recovery_unseen"] = float(rec[split.test])
    return row


def run_loco(data: epi.EpiData, params: SFMNParams, splits: list[Split] | None = None,
             models: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every model × seed × held-out cell line on identical splits; returns (results, history, kept models)."""
    splits = splits or loco_splits(data, params)
    inputs = PairInputs(data, params.encoder)
    rows, histories, kept = [], [], {}
    for seed in params.seeds:
        for split in splits:
            for kind in models or params.models:
                trained = train_model(kind, data, inputs, split, params, seed)
                rows.append({**evaluate(trained, data, inputs, split), "seed": seed})
                histories.append(trained.history)
                kept[(kind, seed, data.cell_lines[split.test])] = trained
    return pd.DataFrame(rows), pd.concat(histories, ignore_index=True), kept


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean over held-out cell lines per seed, then mean ± sd over seeds (sd is the seed-to-seed spread)."""
    metrics = [c for c in ("test_aupr", "test_auroc", "test_f1", "train_aupr", "gap", "disjoint_aupr",
                           "gate_active", "gate_recovery_seen", "gate_recovery_unseen") if c in results]
    per_seed = results.groupby(["model", "seed"], sort=False)[metrics].mean()
    agg = per_seed.groupby(level="model", sort=False).agg(["mean", "std"])
    out = pd.DataFrame(index=agg.index)
    for m in metrics:
        out[m] = agg[(m, "mean")]
        out[f"{m}_sd"] = agg[(m, "std")]
    out["n_seeds"] = per_seed.groupby(level="model", sort=False).size()
    out["n_folds"] = results.groupby("model", sort=False)["test_cell_line"].nunique()
    return out.reset_index()


def success_table(summary: pd.DataFrame, history: pd.DataFrame, gates_frame: pd.DataFrame | None) -> pd.DataFrame:
    """The seed's success criteria and the acceptance goal: measured value and a verdict that is only
    "met"/"not met" when the run holds the evidence ("not tested: why" otherwise)."""
    s = summary.set_index("model")
    rows = []

    def add(criterion, value, passed, untested: str = ""):
        verdict = f"not tested: {untested}" if untested else ("met" if passed else "not met")
        rows.append({"criterion": criterion, "measured": value, "verdict": verdict,
                     "pass": bool(passed) and not untested})

    if "sfmn" in s.index:
        r = s.loc["sfmn"]
        add("generalisation gap (train − unseen AUPR) ≤ 0.15", f"{r.gap:.3f}", r.gap <= 0.15)
        add("unseen-cell-line AUPR ≥ 0.75", f"{r.test_aupr:.3f}", r.test_aupr >= 0.75)
        if "gate_active" in s.columns:
            add("10–30% of gates active", f"{r.gate_active:.1%}", 0.10 <= r.gate_active <= 0.30)
        for base in ("erm", "energy"):
            if base in s.index:
                margin = r.test_aupr - s.loc[base, "test_aupr"]
                sds = [v for v in (r.test_aupr_sd, s.loc[base, "test_aupr_sd"]) if np.isfinite(v)]
                known = len(sds) == 2
                sd = max(sds) if known else math.nan
                add(f"SFMN beats {base} on unseen AUPR by more than the seed sd",
                    f"{margin:+.3f} (sd {sd:.3f})" if known else f"{margin:+.3f}",
                    known and margin > max(sd, 0.0), "" if known else "one seed, so no seed-to-seed sd")
        rec = r.get("gate_recovery_unseen", math.nan)
        add("gate recovery AUROC ≥ 0.8 (unseen cell lines)", f"{rec:.3f}" if np.isfinite(rec) else "—",
            np.isfinite(rec) and rec >= 0.8,
            "" if np.isfinite(rec) else "no truth table (or no scorable motif) for the held-out cell lines")
        h = history[(history.model == "sfmn") & (history.epoch >= 1)]
        if len(h) and "train_align" in h:
            first = h.groupby(["seed", "test_cell_line"])["train_align"].first()
            last = h.groupby(["seed", "test_cell_line"])["train_align"].last()
            add("alignment loss falls (phase 2 start → last epoch)", f"{(last < first).mean():.0%} of runs",
                (last < first).mean() >= 0.5)
    if gates_frame is not None and len(gates_frame):
        rho = gates_frame.attrs.get("similarity_rho", math.nan)
        reference = gates_frame.attrs.get("similarity_reference", "no reference distance")
        add(f"similar cell lines get similar gates (Spearman ρ > 0.3, {reference} vs gate distance)",
            f"{rho:.2f}" if np.isfinite(rho) else "—", np.isfinite(rho) and rho > 0.3,
            "" if np.isfinite(rho) else "no truth, manifold or features to say which cell lines are similar")
    return pd.DataFrame(rows)


def gate_similarity(g: np.ndarray, reference: np.ndarray) -> float:
    """Spearman correlation between cell lines' reference distance and their gate distance."""
    from scipy.stats import spearmanr

    i, j = np.triu_indices(len(g), 1)
    d_g = np.sqrt(((g[i] - g[j]) ** 2).mean(axis=1))
    ok = np.isfinite(reference[i, j])
    if ok.sum() < 3 or np.ptp(reference[i, j][ok]) == 0:
        return math.nan
    return float(spearmanr(reference[i, j][ok], d_g[ok]).statistic)


def cell_distances(data: epi.EpiData) -> tuple[np.ndarray, str] | None:
    """How far apart cell lines truly are: the simulator's manifold, else the truth's accessibility
    (Hamming over motifs known for both), else the cell-line features; None when nothing says."""
    if data.truth is not None and "position" in data.truth:
        t = data.truth["position"]
        d = np.abs(t[:, None] - t[None, :])
        return np.minimum(d, 1 - d), "distance on the simulator's manifold"
    if data.truth is not None:
        a = data.truth["accessibility"]
        diff = np.abs(a[:, None, :] - a[None, :, :])  # NaN where either side is unknown
        known = np.isfinite(diff)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(known, diff, 0.0).sum(-1) / known.sum(-1)
        return d, "truth accessibility distance (fraction of known motifs that differ)"
    if data.cell_features is not None:
        f = data.cell_features
        return np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1)), "cell-line feature distance (not truth)"
    return None


def gate_frame(g: np.ndarray, data: epi.EpiData, test: int) -> pd.DataFrame:
    """Long table cell line × gate dimension (E:/P: motif) with truth where known, for heatmaps."""
    names = [m.name for m in data.motifs] or [f"m{i}" for i in range(g.shape[1] // 2)]
    dims = [f"E:{n}" for n in names] + [f"P:{n}" for n in names]
    pwm = g.shape[1] == 2 * len(names)
    rows = []
    for c, cl in enumerate(data.cell_lines):
        for j, dim in enumerate(dims[: g.shape[1]]):
            truth = data.truth["accessibility"][c, j % len(names)] if data.truth is not None and pwm else math.nan
            rows.append({"cell_line": cl, "dimension": dim, "gate": float(g[c, j]), "truth": truth,
                         "role": "unseen (test)" if c == test else "seen"})
    frame = pd.DataFrame(rows)
    reference = cell_distances(data)
    if reference is not None:
        frame.attrs["similarity_rho"] = gate_similarity(g, reference[0])
        frame.attrs["similarity_reference"] = reference[1]
    return frame


# --------------------------------------------------------------------------- contract demo and ablations


class OnesGateSFMN(M.SFMN):
    """Deliberately broken: the gate is fixed to ones (what seed 000 warns a trained SFMN can degrade to)."""

    def gates(self, cells):
        return torch.ones(len(cells), self.d)


def contract_demo(data: epi.EpiData, params: SFMNParams) -> pd.DataFrame:
    """Run the contract on SFMN and on three deliberately broken configurations; each row says why."""
    split = loco_splits(data, params)[0]
    inputs = PairInputs(data, params.encoder)
    batch = next(iter(Batches(inputs, split.train_rows, params.cells_per_batch, params.samples_per_cell, 0)(0)))
    sfmn_model = build_model("sfmn", data, inputs, split, params)
    ones = OnesGateSFMN(sfmn_model.encoder, sfmn_model.cell_encoder, gate=params.gate, hidden=params.hidden)
    ones.set_context(sfmn_model.context)
    cases = [
        ("SFMN as designed", sfmn_model, "sfmn", None),
        ("SFMN with the gate fixed to ones", ones, "sfmn", None),
        ("SFMN + a weight no term reads (orth=0.1)", sfmn_model, "sfmn", {"orth": 0.1}),
        ("energy model trained under SFMN's name", build_model("energy", data, inputs, split, params), "sfmn", None),
    ]
    rows = []
    for label, model, design, extra in cases:
        try:
            check_run(model, batch, design, params, extra)
            rows.append({"case": label, "contract": "passes", "message": ""})
        except train.ContractError as exc:
            rows.append({"case": label, "contract": "FAILS", "message": str(exc)})
    return pd.DataFrame(rows)


def check_run(model: torch.nn.Module, batch: dict, design: str, params: SFMNParams, extra: dict | None = None) -> dict:
    """What ``train_model`` checks before the first step: the design, then ``train.check_contract``
    (which also rejects a gradient that is only float round-off, as sparsemax's constant L1 gives)."""
    if design in ("sfmn", "film"):
        M.verify_design(model, batch)
    weights = design_weights(design, params, extra)
    return train.check_contract(objective_for(model, params), batch, weights, params.epochs)


ABLATIONS = {
    "sigmoid gate, entropy −H (default)": {},
    "entropy +H (the seed's sign)": {"entropy_sign": "seed"},
    "sparsemax gate (as designed, simplex)": {"gate": "sparsemax"},
    "budget-sparsemax gate (Σg = 0.3·d)": {"gate": "budget"},
    "rescaled sparsemax, adaptive ρ_c": {"gate": "rescaled"},
    "contrastive alignment": {"align_form": "contrastive"},
}


def ablations(data: epi.EpiData, params: SFMNParams, split: Split, seed: int) -> pd.DataFrame:
    """SFMN variants on one fold; a variant the contract rejects is reported with the reason, then
    retrained with the offending weight set to 0 so its behaviour can still be measured."""
    inputs = PairInputs(data, params.encoder)
    rows = []
    for label, opts in ABLATIONS.items():
        note, p = "", params
        try:
            trained = train_model("sfmn", data, inputs, split, p, seed, **opts)
        except train.ContractError as exc:
            note = f"contract: {exc}"
            p = dataclasses.replace(params, beta=0.0)
            trained = train_model("sfmn", data, inputs, split, p, seed, **opts)
            note += " → retrained with sparse weight 0"
        row = evaluate(trained, data, inputs, split)
        last = trained.history.iloc[-1]
        rows.append({"variant": label, **{k: row.get(k, math.nan) for k in (
            "test_aupr", "gap", "gate_active", "gate_mean", "gate_sum", "gate_entropy", "gate_pairwise",
            "gate_recovery_unseen")}, "final_sparse_term": last.get("train_sparse", math.nan),
            "warnings": row["gate_warnings"], "note": note})
    return pd.DataFrame(rows)


def write_outputs(params: SFMNParams, metrics: dict, tables: dict, charts: dict, history: pd.DataFrame) -> Path:
    return io.write_study_outputs(params.output_path, params=params.to_dict(), metrics=metrics, tables=tables,
                                  charts=charts, history=history)


def headline(summary: pd.DataFrame, results: pd.DataFrame) -> dict[str, Any]:
    """metrics.json content: per-model mean ± sd over seeds and what exactly was run."""
    out: dict[str, Any] = {"models": {}}
    for _, r in summary.iterrows():
        out["models"][r["model"]] = {k: r[k] for k in summary.columns if k != "model"}
    out["folds"] = sorted(results.test_cell_line.unique().tolist())
    out["seeds"] = sorted(results.seed.unique().tolist())
    out["n_trainings"] = int(len(results))
    return out


# --------------------------------------------------------------------------- reading a sweep

SWEEP_METRICS = {"test_aupr": "models.*.test_aupr", "gap": "models.*.gap"}


def sweep_models(results: pd.DataFrame) -> pd.DataFrame:
    """A Study 2 sweep's table → each model's held-out AUPR and train–test gap, mean ± sd over the
    sweep's seeds (a ``seeds: [[0], [1], ...]`` axis), per value of every other varying grid axis.

    Each point's ``models.<model>.test_aupr`` is already its mean over held-out cell lines (and over
    the point's own seeds), so n counts grid seeds.
    """
    if not any(str(c).startswith("models.") for c in results.columns):
        raise sweeps.ResultsError("the sweep's table has no models.<model>.test_aupr columns: "
                                 "was it made by notebooks/02_sfmn.ipynb?")
    long = sweeps.unstack_metrics(results, SWEEP_METRICS, key="model")
    return sweeps.summarise(long, list(SWEEP_METRICS), by=[*sweeps.grid_axes(results), "model"])


# --------------------------------------------------------------------------- what the notebook says


def truth_table(data: epi.EpiData) -> pd.DataFrame | None:
    """The truth the gates are scored against (cell line × motif, blank where unknown), or None."""
    if data.truth is None:
        return None
    table = pd.DataFrame(data.truth["accessibility"], index=pd.Index(data.cell_lines, name="cell_line"),
                         columns=[m.name for m in data.motifs] if data.motifs else data.truth["motif_names"])
    table = table.loc[:, table.notna().any()].astype("Int64")
    if "position" in data.truth:
        table["manifold position"] = np.round(data.truth["position"], 3)
    return table


def unchecked_without_truth(data: epi.EpiData, params: SFMNParams) -> list[str]:
    """What this run cannot check, in plain words (empty when the truth allows every check)."""
    out = []
    if data.truth is None:
        out.append("No truth table was given (parameter `truth`), so the run cannot check whether the gates open "
                   "the motifs that are truly accessible (gate recovery), nor use the true accessibility as a "
                   "gate in the explorer.")
        if data.cell_features is None:
            out.append("Without truth or cell-line features nothing says which cell lines are alike, so 'similar "
                       "cell lines get similar gates' is not tested.")
        else:
            out.append("'Similar cell lines get similar gates' is measured against the cell-line features, which "
                       "are an input of the model, not an independent truth.")
    elif params.encoder != "pwm":
        out.append("The cnn encoder's dimensions are learned filters, not motifs: the gates cannot be scored "
                   "against motif accessibility (use encoder 'pwm').")
    if "true_label" not in (data.truth or {}):
        out.append("Labels are taken as given: label noise cannot be measured without the simulator.")
    out.append("What every run checks: the contract (the model trained is the model designed), unseen-cell-line "
               "AUPR/AUROC/F1 against the data's own base rate, the train–test gap, the region-disjoint score and "
               "the gate monitors.")
    return out


def recovery_table(g: np.ndarray, data: epi.EpiData, split: Split) -> pd.DataFrame:
    """Gate recovery per cell line (AUROC of g_c against its known accessibility), with the cell line's role."""
    rec = gate_recovery(g, data.truth["accessibility"])
    known = np.isfinite(data.truth["accessibility"]).sum(1)
    role = ["unseen (test)" if c == split.test else "validation" if c in split.val else "training"
            for c in range(len(data.cell_lines))]
    return pd.DataFrame({"cell_line": data.cell_lines, "role": role, "motifs with truth": known,
                         "gate recovery AUROC": np.round(rec, 3)})


def conclusions(summary: pd.DataFrame, success: pd.DataFrame, results: pd.DataFrame,
                ablation: pd.DataFrame | None, data: epi.EpiData) -> list[str]:
    """The run's findings as sentences built from its own numbers (nothing here is fixed prose)."""
    s = summary.set_index("model")
    n_folds, n_seeds = results.test_cell_line.nunique(), results.seed.nunique()
    base = results.base_rate.mean()
    out = [f"Scope: {n_folds} held-out cell line(s) of {len(data.cell_lines)} × {n_seeds} seed(s); unseen-cell-line "
           f"base rate {base:.3f} (the AUPR of a random ranking)."]
    best = s.test_aupr.idxmax()
    ranking = ", ".join(f"{m} {v:.3f}" for m, v in s.test_aupr.sort_values(ascending=False).items())
    out.append(f"Unseen-cell-line AUPR, best first: {ranking}. Best: {best}.")
    lift = s.test_aupr / base if base > 0 else s.test_aupr * math.nan
    if (lift < 1.5).all():
        out.append(f"No model ranks unseen pairs much better than chance (AUPR at most {lift.max():.1f}× the base "
                   "rate): at this size nothing was learned that transfers to a new cell line.")
    if "sfmn" in s.index:
        for row in success.itertuples():
            if row.criterion.startswith("SFMN beats"):
                out.append(f"{row.criterion}: {row.measured} → {row.verdict}.")
        out.append(f"SFMN's train–test gap is {s.loc['sfmn', 'gap']:.3f} "
                   f"({'within' if s.loc['sfmn', 'gap'] <= 0.15 else 'above'} the seed's 0.15).")
        rec = s.loc["sfmn"].get("gate_recovery_unseen", math.nan)
        if np.isfinite(rec):
            strength = "finds" if rec >= 0.8 else "partly finds" if rec > 0.6 else "does not find"
            out.append(f"Gate recovery on the unseen cell line(s): AUROC {rec:.3f} against the truth "
                       f"({data.truth.get('source', 'truth')}): the gate {strength} the accessible motifs "
                       "(0.5 = chance).")
        else:
            out.append("Gate recovery: not tested (no truth for the held-out cell lines, or the cnn encoder).")
    if ablation is not None and len(ablation):
        a = ablation.set_index("variant")
        simplex = [v for v in a.index if v.startswith("sparsemax")]
        if simplex:
            r = a.loc[simplex[0]]
            rejected = "contract" in str(r.note)
            out.append(f"Sparsemax gate: Σg = {r.gate_sum:.2f} per cell line (the simplex fixes it at 1), "
                       f"{'so the contract rejected its sparsity weight (no gradient)' if rejected else 'and the contract accepted the configuration'}.")
        signs = [v for v in a.index if "entropy" in v]
        if len(signs) == 2:
            x, y = a.loc[signs[0]], a.loc[signs[1]]
            out.append(f"Entropy sign on one fold and seed: {signs[0]} → {x.gate_active:.0%} active, AUPR "
                       f"{x.test_aupr:.3f}; {signs[1]} → {y.gate_active:.0%} active, AUPR {y.test_aupr:.3f} "
                       "(one fold, one seed: indicative only).")
    return out


def unseen_recovery(results: pd.DataFrame) -> float | None:
    """SFMN's mean gate recovery on held-out cell lines (None when the run had no truth to score it)."""
    if "gate_recovery_unseen" not in results:
        return None
    values = results.loc[results.model == "sfmn", "gate_recovery_unseen"].to_numpy(dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else None
