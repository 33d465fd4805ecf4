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

from latentlab import io, sweep, train
from latentlab.data import epi
from latentlab.losses.sfmn import DEFAULT_WEIGHTS, ENTROPY_SIGNS
from latentlab.models import energy
from latentlab.models import sfmn as M
from latentlab.params import StudyParams

MODELS = ("sfmn", "erm", "energy", "dann", "film")
ACTIVE = 0.1  # a gate entry counts as active when g > ACTIVE


class GateWarning(UserWarning):
    """A degenerate gate (all ≈ 1, identical across cell lines, or not sparse) during training."""


@dataclasses.dataclass(frozen=True)
class SFMNParams(StudyParams):
    output_dir: str = "runs/sfmn"
    data: str = "simulated"  # or a directory with pairs.csv, sequences.fa, cell_lines.csv, motifs.jaspar
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
    cell_encoder: str = "features"
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
    test_cell_lines: list = dataclasses.field(default_factory=list)  # [] = every cell line (full LOCO)
    ablations: bool = True
    progress: bool = True
    sweep_results: str = ""  # a sweep directory or its results.csv: the notebook's last section reads it

    PRESETS = {
        "quick": dict(output_dir="runs/quick/sfmn", n_cell_lines=8, n_enhancers=1200, n_promoters=400,
                      pairs_per_cell_line=600, epochs=6, phase2_epochs=2, patience=4, seeds=[0],
                      test_cell_lines=["CL02", "CL05"], ablations=True),
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
        self.require(self.cell_encoder in ("features", "support"), "cell_encoder", "must be 'features' or 'support'")
        self.require(self.gate in M.GATES, "gate", f"must be one of {M.GATES}")
        self.require(self.task_loss in M.TASK_LOSSES, "task_loss", f"must be one of {M.TASK_LOSSES}")
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
    def weights(self) -> dict[str, float]:
        return {"align": self.alpha, "sparse": self.beta, "entropy": self.gamma, "smooth": self.delta}


# --------------------------------------------------------------------------- data


def load(params: SFMNParams) -> epi.EpiData:
    """Simulated data (written in the real formats and read back), or a user directory."""
    if params.data == "simulated":
        sim = epi.EpiSimulation(
            n_cell_lines=params.n_cell_lines, n_motifs=params.n_motifs, n_enhancers=params.n_enhancers,
            n_promoters=params.n_promoters, pairs_per_cell_line=params.pairs_per_cell_line,
            enhancer_len=params.enhancer_len, promoter_len=params.promoter_len,
            positive_rate=params.positive_rate, accessible_fraction=params.accessible_fraction, seed=params.seed,
        )
        return epi.simulate_and_load(sim, params.output_path / "data")
    root = Path(params.data)
    features = root / "cell_lines.csv"
    motifs = root / "motifs.jaspar"
    return epi.load_epi(root / "pairs.csv", root / "sequences.fa",
                        cell_features=features if features.exists() else None,
                        motifs=motifs if motifs.exists() else None,
                        enhancer_len=params.enhancer_len, promoter_len=params.promoter_len)


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
    tests = params.test_cell_lines or names
    unknown = [t for t in tests if t not in names]
    if unknown:
        raise ValueError(f"SFMNParams.test_cell_lines: unknown cell line(s) {unknown}; data has {names}")
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
    opts = {"gate": params.gate, "entropy_sign": params.entropy_sign, "align_form": params.align_form, **overrides}
    if params.encoder == "pwm":
        mean, sd = inputs.scan_stats(split.train_rows)
        enc: torch.nn.Module = M.PWMEncoder(mean, sd)
    else:
        enc = M.CNNEncoder(2 * max(len(data.motifs), params.n_motifs))
    n_cells = len(data.cell_lines)
    if kind in ("sfmn", "film"):
        if params.cell_encoder == "features":
            if data.cell_features is None:
                raise ValueError("cell_encoder='features' needs a cell line feature table (cell_lines.csv)")
            cenc: torch.nn.Module = M.FeatureCellEncoder(data.cell_features.shape[1])
        else:
            cenc = M.SupportCellEncoder(enc.dim)
        model: torch.nn.Module = M.SFMN(enc, cenc, modulation="film" if kind == "film" else "gate",
                                        hidden=params.hidden, task=params.task_loss, budget=params.budget, **opts)
        model.set_context(cell_context(data, inputs, params))
        return model
    if kind == "erm":
        return energy.ERM(enc, hidden=params.hidden, task=params.task_loss)
    if kind == "dann":
        return energy.DANN(enc, n_cells, hidden=params.hidden, task=params.task_loss)
    if kind == "energy":
        model = energy.EnergyModel(enc, n_cells, hidden=params.hidden, task=params.task_loss)
        model.set_training_cells(split.train)
        return model
    raise ValueError(f"unknown model {kind!r}; choose from {MODELS}")


def cell_context(data: epi.EpiData, inputs: PairInputs, params: SFMNParams) -> M.CellContext:
    """Explicit features, or k cached support pairs per cell line (drawn once; labels never read)."""
    features = torch.from_numpy(data.cell_features) if data.cell_features is not None else None
    support = None
    if params.cell_encoder == "support":
        cell = data.pairs.cell.to_numpy()
        rng = np.random.default_rng([params.seed, 3])
        rows = np.stack([rng.choice(np.nonzero(cell == c)[0], params.support_k, replace=False)
                         for c in range(len(data.cell_lines))])
        flat = inputs.encoder_inputs(rows.ravel())
        support = {k: v.view(len(data.cell_lines), params.support_k, *v.shape[1:]) for k, v in flat.items()}
    return M.CellContext(features, support)


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
    out = [torch.sigmoid(model(inputs.batch(rows[i : i + chunk]))).numpy() for i in range(0, len(rows), chunk)]
    return np.concatenate(out) if out else np.zeros(0)


def per_cell_scores(y: np.ndarray, p: np.ndarray, cell: np.ndarray) -> dict[str, float]:
    """AUROC / AUPR averaged over cell lines (ranking is per cell line, as deployed)."""
    aupr, auroc = [], []
    for c in np.unique(cell):
        m = cell == c
        if 0 < y[m].sum() < m.sum():
            aupr.append(average_precision_score(y[m], p[m]))
            auroc.append(roc_auc_score(y[m], p[m]))
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
    """Per cell line: AUROC of the gate (enhancer and promoter halves averaged per motif) against accessibility."""
    n = truth.shape[1]
    score = (g[:, :n] + g[:, n : 2 * n]) / 2
    out = np.full(len(truth), np.nan)
    for c in range(len(truth)):
        if 0 < truth[c].sum() < n:
            out[c] = roc_auc_score(truth[c], score[c])
    return out


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
    model = model if model is not None else build_model(kind, data, inputs, split, params, **overrides)
    batches = Batches(inputs, split.train_rows, params.cells_per_batch, params.samples_per_cell, seed)
    first = next(iter(batches(0)))
    weights = design_weights(design, params, extra_weights)
    if design in ("sfmn", "film"):
        M.verify_design(model, first)
    train.check_contract(model, first, weights, params.epochs)
    cell = inputs.cell.numpy()
    y = inputs.y.numpy()
    n_cells = len(data.cell_lines)
    seen = split.train + split.val
    raised: list[str] = []

    def on_epoch_start(m, epoch):
        m.freeze_gates(epoch == 0)

    def monitors(m, epoch):
        row = {"phase": 1 if epoch == 0 else (2 if epoch <= params.phase2_epochs else 3)}
        p = predict(m, inputs, split.train_rows)
        row.update({f"train_{k}": v for k, v in per_cell_scores(y[split.train_rows], p, cell[split.train_rows]).items()})
        g = all_gates(m, n_cells)
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
                row["gate_recovery_seen"] = float(np.nanmean(gate_recovery(g, data.truth["accessibility"])[seen]))
        return row

    def validate(m):
        p = predict(m, inputs, split.val_rows)
        s = per_cell_scores(y[split.val_rows], p, cell[split.val_rows])
        live = not getattr(m, "gates_frozen", False)
        return {"val_aupr": s["aupr"], "val_auroc": s["auroc"], "val_select": s["aupr"] if live else -1.0}

    started = time.perf_counter()
    result = train.fit(model, batches, weights=weights, epochs=params.epochs, lr=params.lr, seed=seed,
                       validate=validate, monitors=monitors, on_epoch_start=on_epoch_start,
                       early_stopping=train.EarlyStopping("val_select", "max", params.patience),
                       progress=params.progress, desc=f"{kind} s{seed} {data.cell_lines[split.test]}")
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
            row["gate_recovery_seen"] = float(np.nanmean(rec[split.train + split.val]))
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
    """The seed's success criteria and the acceptance goal, each with the measured value and pass/fail."""
    s = summary.set_index("model")
    rows = []

    def add(criterion, value, passed):
        rows.append({"criterion": criterion, "measured": value, "pass": bool(passed)})

    if "sfmn" in s.index:
        r = s.loc["sfmn"]
        add("generalisation gap (train − unseen AUPR) ≤ 0.15", f"{r.gap:.3f}", r.gap <= 0.15)
        add("unseen-cell-line AUPR ≥ 0.75", f"{r.test_aupr:.3f}", r.test_aupr >= 0.75)
        add("10–30% of gates active", f"{r.gate_active:.1%}", 0.10 <= r.gate_active <= 0.30)
        for base in ("erm", "energy"):
            if base in s.index:
                margin = r.test_aupr - s.loc[base, "test_aupr"]
                sds = [v for v in (r.test_aupr_sd, s.loc[base, "test_aupr_sd"]) if np.isfinite(v)]
                known = len(sds) == 2
                sd = max(sds) if known else math.nan
                add(f"SFMN beats {base} on unseen AUPR by more than the seed sd",
                    f"{margin:+.3f} (sd {sd:.3f})" if known else f"{margin:+.3f} (one seed: sd unknown)",
                    known and margin > max(sd, 0.0))
        if "gate_recovery_unseen" in s.columns:
            add("gate recovery AUROC ≥ 0.8 (unseen cell lines)", f"{r.gate_recovery_unseen:.3f}",
                r.gate_recovery_unseen >= 0.8)
        h = history[(history.model == "sfmn") & (history.epoch >= 1)]
        if len(h):
            first = h.groupby(["seed", "test_cell_line"])["train_align"].first()
            last = h.groupby(["seed", "test_cell_line"])["train_align"].last()
            add("alignment loss falls (phase 2 start → last epoch)", f"{(last < first).mean():.0%} of runs",
                (last < first).mean() >= 0.5)
    if gates_frame is not None and len(gates_frame) > 2:
        add("similar cell lines get similar gates (Spearman ρ, manifold vs gate distance)",
            f"{gates_frame.attrs.get('similarity_rho', math.nan):.2f}", gates_frame.attrs.get("similarity_rho", 0) > 0.3)
    return pd.DataFrame(rows)


def gate_similarity(g: np.ndarray, position: np.ndarray) -> float:
    """Spearman correlation between cell-line distance on the manifold and gate distance."""
    from scipy.stats import spearmanr

    i, j = np.triu_indices(len(g), 1)
    d_t = np.abs(position[i] - position[j])
    d_t = np.minimum(d_t, 1 - d_t)
    d_g = np.sqrt(((g[i] - g[j]) ** 2).mean(axis=1))
    return float(spearmanr(d_t, d_g).statistic)


def gate_frame(g: np.ndarray, data: epi.EpiData, test: int) -> pd.DataFrame:
    """Long table cell line × gate dimension (E:/P: motif) with truth, for heatmaps."""
    names = [m.name for m in data.motifs] or [f"m{i}" for i in range(g.shape[1] // 2)]
    dims = [f"E:{n}" for n in names] + [f"P:{n}" for n in names]
    rows = []
    for c, cl in enumerate(data.cell_lines):
        for j, dim in enumerate(dims[: g.shape[1]]):
            truth = data.truth["accessibility"][c, j % len(names)] if data.truth is not None else math.nan
            rows.append({"cell_line": cl, "dimension": dim, "gate": float(g[c, j]), "truth": truth,
                         "role": "unseen (test)" if c == test else "seen"})
    frame = pd.DataFrame(rows)
    if data.truth is not None:
        frame.attrs["similarity_rho"] = gate_similarity(g, data.truth["position"])
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
    return train.check_contract(model, batch, weights, params.epochs)


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


def run_all(params: SFMNParams, *, charts: bool = True) -> dict[str, Any]:
    """The whole study without a notebook (used for the standard run): LOCO, ablations, outputs."""
    from latentlab.plots import sfmn as plots

    started = time.perf_counter()
    data = load(params)
    demo = contract_demo(data, params)
    splits = loco_splits(data, params)
    results, history, kept = run_loco(data, params, splits)
    summary = summarise(results)
    first = kept[("sfmn", params.seeds[0], data.cell_lines[splits[0].test])] if "sfmn" in params.models else None
    frame = gate_frame(all_gates(first.model, len(data.cell_lines)), data, splits[0].test) if first else None
    success = success_table(summary, history, frame)
    abl = ablations(data, params, splits[0], params.seeds[0]) if params.ablations else pd.DataFrame()
    tables = {"loco_results": results, "summary": summary, "contract": demo, "success": success, "ablations": abl}
    if frame is not None:
        tables["gates"] = frame
    figs = {}
    if charts:
        figs = {"loco": plots.loco_bars(results), "monitors": plots.monitor_curves(history)}
        if frame is not None:
            figs["gate_heatmap"] = plots.gate_heatmap(frame)
    metrics = {**headline(summary, results), "seconds": time.perf_counter() - started,
               "success": success.to_dict(orient="records"), "contract": demo.to_dict(orient="records")}
    write_outputs(params, metrics, tables, figs, history)
    return {"data": data, "results": results, "summary": summary, "history": history, "success": success,
            "ablations": abl, "contract": demo, "gates": frame}


# --------------------------------------------------------------------------- reading a sweep

SWEEP_METRICS = {"test_aupr": "models.*.test_aupr", "gap": "models.*.gap"}


def sweep_models(results: pd.DataFrame) -> pd.DataFrame:
    """A Study 2 sweep's table → each model's held-out AUPR and train–test gap, mean ± sd over the
    sweep's seeds (a ``seeds: [[0], [1], ...]`` axis), per value of every other varying grid axis.

    Each point's ``models.<model>.test_aupr`` is already its mean over held-out cell lines (and over
    the point's own seeds), so n counts grid seeds.
    """
    if not any(str(c).startswith("models.") for c in results.columns):
        raise sweep.ResultsError("the sweep's table has no models.<model>.test_aupr columns: "
                                 "was it made by notebooks/02_sfmn.ipynb?")
    long = sweep.unstack_metrics(results, SWEEP_METRICS, key="model")
    return sweep.summarise(long, list(SWEEP_METRICS), by=[*sweep.grid_axes(results), "model"])
