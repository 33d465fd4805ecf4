"""Study 4 — hierarchical SetVAE on irregular clinical time series: does the seed's fix list stop collapse?

Step functions, in the order the notebook calls them:
``load`` → ``make_splits`` → ``prepare`` → ``train_run`` (the seed's BEFORE, then AFTER) →
``ablation`` (one fix off at a time, several seeds) → ``baselines`` → ``write_outputs``.

Every fix of the seed is one field of ``RunConfig``; "turning a fix off" copies exactly that fix's
fields from ``BEFORE`` into ``AFTER`` (``ablate``), so the ablation is one change per row.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # installed with scikit-learn, which requires it

from latentlab import io, train
from latentlab.params import StudyParams
from latentlab.setvae import data as clinical
from latentlab.setvae import diagnostics as dg
from latentlab.setvae.losses import (
    LossConfig,
    SetVAEObjective,
    beta_schedule,
    level_weight_vector,
    task_weight,
)
from latentlab.setvae.model import HierarchicalSetVAE, SetVAEConfig

# --------------------------------------------------------------------------- configurations


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training configuration; field groups map to the seed's fixes (see ``FIXES``)."""

    beta: float = 0.1
    w: float = 1.0
    free_bits: float = 0.1
    # the seed's "free bits per latent group": one group per level (λ nats free per level, dims can
    # still die) — the natural group in a hierarchical VAE; "dim" (λ per dimension) is the other reading
    free_bits_group: str = "level"
    grad_clip: float = 0.5
    clip_mode: str = "norm"
    kl_schedule: str = "linear"  # constant | linear | cyclical
    warmup_fraction: float = 0.3  # seed: 5,000 steps; here a fraction of this run's steps
    time_encoding: str = "learned"
    norm_first: bool = True
    pooling: str = "attention"
    var_reg: float = 0.1
    mean_reg: float = 0.01
    level_ratio: float = 2.0
    dynamic_weights: bool = True
    label_smoothing: float = 0.1
    optimiser: str = "adamw_groups"  # adamw_groups (AdamW, SetVAE 0.1× lr, cosine) | adam
    weight_decay: float = 0.01
    setvae_lr_scale: float = 0.1
    staged: bool = False
    future_leak: int = 0
    decoder_input: str = "z+h"  # "h" = a decoder that ignores z: the positive control for collapse


AFTER = RunConfig()
BEFORE = RunConfig(
    beta=0.5, w=0.5, free_bits=0.2, grad_clip=1.0, clip_mode="value", kl_schedule="constant",
    time_encoding="rope", norm_first=False, pooling="mean", var_reg=0.0, mean_reg=0.0, level_ratio=1.0,
    dynamic_weights=False, label_smoothing=0.0, optimiser="adam", weight_decay=0.0, setvae_lr_scale=1.0,
)
FIXES: dict[str, tuple[str, ...]] = {
    "beta 0.5→0.1": ("beta",),
    "w 0.5→1.0": ("w",),
    "free bits 0.2→0.1": ("free_bits",),
    "norm clip 0.5 (was value 1.0)": ("grad_clip", "clip_mode"),
    "β warm-up": ("kl_schedule",),
    "learned pos + time MLP (was RoPE)": ("time_encoding",),
    "pre-norm": ("norm_first",),
    "attention pooling": ("pooling",),
    "variance/mean regularisers": ("var_reg", "mean_reg"),
    "level-wise KL weights": ("level_ratio",),
    "dynamic task weights": ("dynamic_weights",),
    "label smoothing": ("label_smoothing",),
    "AdamW + per-module lr + cosine": ("optimiser", "weight_decay", "setvae_lr_scale"),
}
EXTRAS: dict[str, RunConfig] = {  # options the seed proposes beyond its core change list, and a control
    "+ cyclical KL annealing": dataclasses.replace(AFTER, kl_schedule="cyclical"),
    "+ staged training": dataclasses.replace(AFTER, staged=True),
    "+ leaky causal mask (2 future steps)": dataclasses.replace(AFTER, future_leak=2),
    # control: "before" training, but the decoder reads only h_{t-1}: reconstruction never rewards z_t
    # directly (z still feeds H, and free bits leave KL < 0.2 nats/dim ungraded)
    "control: decoder ignores z": dataclasses.replace(BEFORE, decoder_input="h"),
    # the other reading of "free bits per latent group": λ per dimension, 16× more free nats
    "before, free bits per dimension": dataclasses.replace(BEFORE, free_bits_group="dim"),
    "after, free bits per dimension": dataclasses.replace(AFTER, free_bits_group="dim"),
    # positive control: the seed's BEFORE with no free bits at all
    "control: before without free bits": dataclasses.replace(BEFORE, free_bits=0.0),
}


def ablate(fix: str) -> RunConfig:
    """AFTER with exactly one fix turned off (its fields taken from BEFORE)."""
    if fix not in FIXES:
        raise KeyError(f"unknown fix {fix!r}; choose from {list(FIXES)}")
    return dataclasses.replace(AFTER, **{f: getattr(BEFORE, f) for f in FIXES[fix]})


REFERENCE = {"before (seed)": BEFORE, "after (seed)": AFTER}


def reference_configs(params: SetVAEParams, name: str) -> dict[str, RunConfig]:
    """``{name: config}`` if the run's ``references`` include it, else ``{}`` (sweep points skip them)."""
    return {name: REFERENCE[name]} if name in params.references else {}


def ablation_configs(ablation: list[str], extras: list[str]) -> dict[str, RunConfig]:
    """One fix off at a time from AFTER, then each extra (``+ x`` extras are AFTER plus x)."""
    configs = {f"after − {fix}": ablate(fix) for fix in ablation}
    configs.update({(f"after {name}" if name.startswith("+") else name): EXTRAS[name] for name in extras})
    return configs


# --------------------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True)
class SetVAEParams(StudyParams):
    output_dir: str = "runs/setvae"
    data: str = "simulated"  # "simulated", a PhysioNet-2012 directory, a long CSV file, or a directory with observations.csv
    outcomes: str = ""  # outcome/label file (default: <data>/../Outcomes-a.txt, or labels.csv beside a long CSV)
    label_column: str = ""  # default: In-hospital_death (PhysioNet) or label (long CSV)
    columns: dict = dataclasses.field(default_factory=dict)  # long CSV: {"stay_id": ..., "time": ..., "variable": ..., "value": ...}
    time_unit: str = "hours"  # long CSV time column: hours | minutes | seconds | days | hh:mm
    unknown_variables: str = "error"
    n_stays: int = 600
    # sets per stay the model reads (the last ones kept); with set_window_minutes "auto" the window grows
    # until the median stay fits, so the cap only trims the long tail (what is dropped is reported)
    max_steps: int = 64
    set_window_minutes: float | str = "auto"  # merge timestamps this close into one set; 0 = one per timestamp
    min_updates: int = 200  # at least this many optimiser steps per run (small data: more epochs, not fewer steps)
    d_model: int = 32
    latent_dims: list = dataclasses.field(default_factory=lambda: [8, 8])
    n_layers: int = 2
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    seeds: list = dataclasses.field(default_factory=lambda: [0, 1, 2])
    references: list = dataclasses.field(default_factory=lambda: list(REFERENCE))  # [] in sweeps of the ablation
    sweep_results: str = ""  # a sweep directory or its results.csv: the notebook's last section reads it
    ablation: list = dataclasses.field(default_factory=lambda: list(FIXES))
    extras: list = dataclasses.field(default_factory=lambda: list(EXTRAS))
    ablation_seeds: int = 2
    baselines: list = dataclasses.field(default_factory=lambda: ["logistic", "gbm", "grud"])
    grud_epochs: int = 20
    detect_anomaly: bool = False
    device: str = "auto"  # where models train: "auto" (CUDA when available, else CPU), "cpu", "cuda:1", "mps"
    # processes training independent runs at once: "auto" = this one plus the cores latentlab.runall
    # reports free (1 outside make run), or a number (1 = one after another, as before)
    workers: int | str = "auto"
    progress: bool = True

    PRESETS = {
        "quick": dict(output_dir="runs/quick/setvae", n_stays=200, max_steps=32, d_model=16,
                      latent_dims=[4, 4], n_layers=1, epochs=4, seeds=[0], ablation=["beta 0.5→0.1"],
                      extras=["control: before without free bits"],
                      ablation_seeds=1, grud_epochs=3, progress=False),
        "standard": dict(n_stays=600, max_steps=64, epochs=10, seeds=[0, 1, 2, 3, 4], ablation_seeds=3),
        "full": dict(output_dir="runs/full/setvae", n_stays=4000, max_steps=128, epochs=20,
                     seeds=[0, 1, 2, 3, 4], ablation_seeds=3, grud_epochs=40),
    }

    def check(self) -> None:
        super().check()
        problem = train.device_problem(self.device)
        self.require(problem is None, "device", problem or "")
        self.require(self.workers == "auto" or (isinstance(self.workers, int) and not isinstance(self.workers, bool)
                     and 1 <= self.workers <= 64), "workers", "must be 'auto' or a whole number of processes in 1..64")
        self.require(self.n_stays >= 50, "n_stays", "must be >= 50")
        self.require(self.max_steps >= 4, "max_steps", "must be >= 4")
        self.require(self.set_window_minutes == "auto" or (isinstance(self.set_window_minutes, int | float)
                     and not isinstance(self.set_window_minutes, bool) and 0 <= self.set_window_minutes < 24 * 60),
                     "set_window_minutes", "must be 'auto' or minutes in [0, 1440)")
        self.require(0 <= self.min_updates <= 100_000, "min_updates", "must be in 0..100000")
        self.require(self.epochs >= 1, "epochs", "must be >= 1")
        self.require(self.batch_size >= 4, "batch_size", "must be >= 4")
        self.require(self.lr > 0, "lr", "must be > 0")
        self.require(len(self.latent_dims) >= 1 and all(isinstance(d, int) and d >= 1 for d in self.latent_dims),
                     "latent_dims", "must be a non-empty list of positive ints (one per level)")
        self.require(len(self.seeds) >= 1, "seeds", "need at least one seed")
        self.require(1 <= self.ablation_seeds <= len(self.seeds), "ablation_seeds", "must be in 1..len(seeds)")
        self.require(set(self.references) <= set(REFERENCE), "references", f"choose from {list(REFERENCE)}")
        self.require(set(self.ablation) <= set(FIXES), "ablation", f"choose from {list(FIXES)}")
        self.require(set(self.extras) <= set(EXTRAS), "extras", f"choose from {list(EXTRAS)}")
        self.require(set(self.baselines) <= {"logistic", "gbm", "grud"}, "baselines", "choose from logistic, gbm, grud")
        self.require(self.unknown_variables in ("error", "drop"), "unknown_variables", "must be 'error' or 'drop'")
        self.require(set(self.columns) <= set(clinical.LONG_COLUMNS) and all(isinstance(v, str) for v in self.columns.values()),
                     "columns", f"must map some of {list(clinical.LONG_COLUMNS)} to your column names "
                     "(papermill: -y \"columns: {stay_id: icustay_id, time: hours}\")")
        self.require(self.time_unit in (*clinical.TIME_UNITS, "hh:mm"), "time_unit",
                     f"must be one of {[*clinical.TIME_UNITS, 'hh:mm']}")


# --------------------------------------------------------------------------- data


def load(params: SetVAEParams) -> clinical.ClinicalData:
    """Simulated stays (written as PhysioNet-2012 files and read back), or the user's data."""
    if params.data == "simulated":
        sim = clinical.simulate_stays(clinical.StaySimulation(n_stays=params.n_stays, seed=params.seed))
        for stale in (params.output_path / "data" / "set-a").glob("*.txt"):
            stale.unlink()  # an earlier simulation's stays (another n_stays or seed) must never be read back
        outcomes = clinical.write_physionet(sim, params.output_path / "data" / "set-a")
        data = clinical.load_physionet(params.output_path / "data" / "set-a", outcomes, variables=clinical.SIM_VARIABLES)
        data.truth = sim.truth
        return data
    path = Path(params.data)
    if path.is_file() or (path / "observations.csv").exists():
        observations = path if path.is_file() else path / "observations.csv"
        labels = Path(params.outcomes) if params.outcomes else observations.parent / "labels.csv"
        return clinical.load_long_csv(observations, labels, unknown=params.unknown_variables,
                                      label_column=params.label_column or "label", columns=params.columns,
                                      time_unit=params.time_unit)
    if not path.is_dir():
        raise clinical.ClinicalFormatError(
            f"data={params.data!r}: no such directory or file; expected 'simulated', a PhysioNet-2012 set-a "
            "directory of <RecordID>.txt files, a long CSV file, or a directory holding observations.csv")
    outcomes = Path(params.outcomes) if params.outcomes else path.parent / "Outcomes-a.txt"
    return clinical.load_physionet(path, outcomes, unknown=params.unknown_variables,
                                   label_column=params.label_column or "In-hospital_death")


@dataclasses.dataclass
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def make_splits(data: clinical.ClinicalData, params: SetVAEParams) -> Splits:
    """Stratified 60/20/20 split of stays (fixed by ``seed``; every model uses the same split)."""
    idx, y = np.arange(len(data.labels)), data.labels.to_numpy()
    train_idx, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=params.seed)
    val_idx, test_idx = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=params.seed)
    return Splits(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx))


@dataclasses.dataclass
class Prepared:
    arrays: clinical.SetArrays
    tensors: dict
    scaler: pd.DataFrame
    splits: Splits
    hours: float = 48.0  # the stays' time span (the time encoders' scale)

    @property
    def truncation(self) -> dict:
        return self.arrays.truncation


WINDOW_LADDER = (0, 5, 10, 15, 30, 60, 120, 240)  # minutes tried by set_window_minutes="auto"
TRUNCATION_WARN_SHARE = 0.5  # warn loudly above this share of observations dropped


def choose_window(data: clinical.ClinicalData, params: SetVAEParams) -> float:
    """Minutes: the parameter, or ("auto") the smallest rung of ``WINDOW_LADDER`` at which the median stay
    fits in ``max_steps`` sets — so truncation only trims the longest stays."""
    if params.set_window_minutes != "auto":
        return float(params.set_window_minutes)
    for minutes in WINDOW_LADDER:
        if clinical.steps_per_stay(data, minutes / 60).median() <= params.max_steps:
            return float(minutes)
    return float(WINDOW_LADDER[-1])


def truncation_report(trunc: dict) -> str:
    """One plain sentence on what the step cap kept and dropped; starts with WARNING when most is gone."""
    share = trunc["observations_dropped_share"]
    text = (f"sets: one per {trunc['set_window_minutes']:g}-minute window" if trunc["set_window_minutes"] > 0
            else "sets: one per distinct timestamp")
    text += (f"; median {trunc['steps_per_stay_median']:g} sets per stay, last {trunc['max_steps']} kept; "
             f"{trunc['stays_cut']}/{trunc['stays']} stays cut, {trunc['steps_dropped']}/{trunc['steps_total']} sets and "
             f"{trunc['observations_dropped']}/{trunc['observations_total']} observations ({share:.0%}) dropped")
    if share > TRUNCATION_WARN_SHARE:
        text = ("WARNING: truncation drops most of the data — " + text +
                ". Raise max_steps or set_window_minutes (e.g. -p set_window_minutes 60).")
    return text


def prepare(data: clinical.ClinicalData, splits: Splits, params: SetVAEParams) -> Prepared:
    """Scale on the training stays, group into sets, cap the steps — and say what the cap dropped."""
    scaler = clinical.fit_scaler(data, data.stay_ids[splits.train])
    window = choose_window(data, params)
    arrays = clinical.to_set_arrays(data, scaler, max_steps=params.max_steps, window_hours=window / 60)
    report = truncation_report(arrays.truncation)
    arrays.truncation["report"] = report
    print(report)
    if report.startswith("WARNING"):
        warnings.warn(report, TruncationWarning, stacklevel=2)
    k = max(int(arrays.elem_mask.sum(-1).max()), 1)
    tensors = {
        "times": torch.from_numpy(arrays.times), "step_mask": torch.from_numpy(arrays.step_mask),
        "var": torch.from_numpy(arrays.var[..., :k]), "val": torch.from_numpy(arrays.val[..., :k]),
        "elem_mask": torch.from_numpy(arrays.elem_mask[..., :k]), "label": torch.from_numpy(arrays.labels),
    }
    hours = max(float(np.ceil(data.obs["time"].max())), 1.0)
    return Prepared(arrays, tensors, scaler, splits, hours)


class TruncationWarning(UserWarning):
    """The step cap dropped most of the observations."""


def batch_of(tensors: dict, idx: np.ndarray) -> dict:
    """Rows ``idx``, trimmed to the longest stay and largest set in the batch (steps are left-aligned)."""
    t_len = max(int(tensors["step_mask"][idx].sum(1).max()), 1)
    out = {k: v[idx] for k, v in tensors.items()}
    for key in ("times", "step_mask", "var", "val", "elem_mask"):
        out[key] = out[key][:, :t_len]
    k_len = max(int(out["elem_mask"].sum(-1).max()), 1)
    for key in ("var", "val", "elem_mask"):
        out[key] = out[key][..., :k_len]
    return out


def batches(tensors: dict, rows: np.ndarray, batch_size: int, seed: int):
    order = train.minibatches(len(rows), batch_size, seed)
    return lambda epoch: [batch_of(tensors, rows[b]) for b in order(epoch) if len(b) > 1]


# --------------------------------------------------------------------------- model and training


def build_model(cfg: RunConfig, params: SetVAEParams, n_variables: int, hours: float = 48.0) -> SetVAEObjective:
    mcfg = SetVAEConfig(
        n_variables=n_variables, d_model=params.d_model, latent_dims=tuple(params.latent_dims),
        n_layers=params.n_layers, max_steps=params.max_steps, hours=hours, time_encoding=cfg.time_encoding,
        norm_first=cfg.norm_first, pooling=cfg.pooling, future_leak=cfg.future_leak,
        decoder_input=cfg.decoder_input,
    )
    lcfg = LossConfig(free_bits=cfg.free_bits, free_bits_group=cfg.free_bits_group, level_weights=level_weight_vector(len(params.latent_dims), cfg.level_ratio),
                      label_smoothing=cfg.label_smoothing)
    return SetVAEObjective(HierarchicalSetVAE(mcfg), lcfg)


def loss_weights(cfg: RunConfig, total_steps: int) -> dict:
    warm = max(int(cfg.warmup_fraction * total_steps), 1)
    return {
        "recon": task_weight(1.0, cfg.dynamic_weights, start=1.0, end=0.5),
        "kl": beta_schedule(cfg.kl_schedule, cfg.beta, warmup_steps=warm, cycle_steps=max(total_steps // 3, 1)),
        "cls": task_weight(cfg.w, cfg.dynamic_weights, start=0.5, end=1.0),
        "var_reg": cfg.var_reg,
        "mean_reg": cfg.mean_reg,
    }


def make_optimizer(cfg: RunConfig, lr: float):
    """AdamW with per-module learning rates (SetVAE × setvae_lr_scale) or plain Adam."""

    def build(objective: SetVAEObjective) -> torch.optim.Optimizer:
        groups = objective.model.module_groups()
        # fused: one kernel per step instead of ~10 small ops per parameter tensor (same update rule)
        if cfg.optimiser == "adam":
            return torch.optim.Adam(objective.parameters(), lr=lr, fused=True)
        return torch.optim.AdamW(
            [{"params": groups["setvae"], "lr": lr * cfg.setvae_lr_scale},
             {"params": groups["transformer"] + groups["head"], "lr": lr}],
            lr=lr, weight_decay=cfg.weight_decay, fused=True,
        )

    return build


def make_scheduler(cfg: RunConfig, epochs: int):
    if cfg.optimiser == "adam":
        return None
    return lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))


def staging(cfg: RunConfig, epochs: int):
    """Staged training: head only (first third) → + transformer → all modules."""
    if not cfg.staged:
        return None

    def on_epoch_start(objective: SetVAEObjective, epoch: int) -> None:
        stage = min(3 * epoch // max(epochs, 1), 2)
        groups = objective.model.module_groups()
        for name, ps in groups.items():
            on = name == "head" or (name == "transformer" and stage >= 1) or stage >= 2
            for p in ps:
                p.requires_grad_(on)

    return on_epoch_start


@torch.inference_mode()
def collect(objective: SetVAEObjective, tensors: dict, rows: np.ndarray, batch_size: int = 256) -> dict:
    """Posterior parameters per level over valid steps, Z and H, and the stay logits (eval mode)."""
    model = objective.model
    model.eval()
    device = next(model.parameters()).device
    per_level: list[dict[str, list]] = [dict(mu_q=[], lv_q=[], mu_p=[], lv_p=[]) for _ in model.cfg.latent_dims]
    zs, hs, logits, logits24 = [], [], [], []
    for start in range(0, len(rows), batch_size):
        batch = batch_of(tensors, rows[start : start + batch_size])
        out = model(train.to_device(batch, device), sample=False)
        for store, lv in zip(per_level, out["levels"], strict=True):
            for key, val in (("mu_q", lv.mu_q), ("lv_q", lv.logvar_q), ("mu_p", lv.mu_p), ("lv_p", lv.logvar_p)):
                store[key].append(val.cpu().numpy())
        valid = batch["step_mask"]
        zs.append(out["z"].cpu()[valid].numpy())
        hs.append(out["h"].cpu()[valid].numpy())
        logits.append(out["logit"].cpu().numpy())
        upto = ((batch["times"] <= 24.0) & valid).long().sum(1).clamp_min(1) - 1
        logits24.append(out["step_logits"].cpu().gather(1, upto[:, None]).squeeze(1).numpy())
    levels = [{k: np.concatenate(v) for k, v in store.items()} for store in per_level]
    return {"levels": levels, "z": np.concatenate(zs), "h": np.concatenate(hs),
            "logit": np.concatenate(logits), "logit_24h": np.concatenate(logits24)}


def level_diagnostics(collected: dict, seed: int = 0, mi: bool = True) -> list[dg.LevelStats]:
    return [dg.level_stats(i + 1, lv["mu_q"], lv["lv_q"], lv["mu_p"], lv["lv_p"], seed=seed, mi=mi)
            for i, lv in enumerate(collected["levels"])]


def task_scores(y: np.ndarray, logit: np.ndarray) -> dict[str, float]:
    prob = 1 / (1 + np.exp(-logit))
    if len(np.unique(y)) < 2:
        return {"auroc": math.nan, "auprc": math.nan, "accuracy": float(((prob > 0.5) == y).mean())}
    return {"auroc": float(roc_auc_score(y, prob)), "auprc": float(average_precision_score(y, prob)),
            "accuracy": float(((prob > 0.5) == y).mean())}


MONITOR_STAYS = 64  # validation stays the per-epoch monitor reads (min_updates can mean many epochs)


class EpochMonitor:
    """train.fit monitor: active units, KL per level, Z–H CKA, and the Z-vs-H 2-D projection per epoch."""

    def __init__(self, tensors: dict, rows: np.ndarray, n_points: int = 300) -> None:
        self.tensors, self.rows, self.n_points = tensors, rows, n_points
        self.projections: list[pd.DataFrame] = []

    def __call__(self, objective: SetVAEObjective, epoch: int) -> dict[str, float]:
        # the PCA/CKA below are tiny (≤ 600 × 2·d_model): a multi-threaded BLAS only spins, and on a busy
        # machine one 600 × 32 SVD took 270 ms with 2 OpenBLAS threads against 0.5 ms with one
        with threadpool_limits(1):
            return self._measure(objective, epoch)

    def _measure(self, objective: SetVAEObjective, epoch: int) -> dict[str, float]:
        col = collect(objective, self.tensors, self.rows)
        stats = level_diagnostics(col, mi=False)  # the row below reports no MI: skip its O(N²) estimate
        rng = np.random.default_rng(epoch)
        pick = rng.choice(len(col["z"]), min(self.n_points, len(col["z"])), replace=False)
        z, h = col["z"][pick], col["h"][pick]
        xy = dg.pca_2d(np.concatenate([z, h]))
        n = len(pick)
        self.projections.append(pd.DataFrame({"epoch": epoch, "kind": ["Z"] * n + ["H"] * n,
                                              "pc1": xy[:, 0], "pc2": xy[:, 1]}))
        row = {"zh_cka": dg.linear_cka(z, h),
               "active_ratio": sum(s.active for s in stats) / sum(s.dims for s in stats)}
        row.update({f"kl_level{s.level}": s.kl for s in stats})
        row.update({f"sigma_level{s.level}": s.mean_sigma for s in stats})
        row["val_auroc"] = task_scores(self.tensors["label"][self.rows].numpy(), col["logit"])["auroc"]
        return row


@dataclasses.dataclass
class RunResult:
    name: str
    seed: int
    config: RunConfig
    history: pd.DataFrame
    diagnosis: dg.Diagnosis
    levels: list
    scores: dict
    projections: pd.DataFrame
    objective: SetVAEObjective
    seconds: float


def epochs_for(params: SetVAEParams, batches_per_epoch: int) -> int:
    """``epochs``, raised until the run makes at least ``min_updates`` optimiser steps: 180 training stays in
    batches of 32 give 6 steps an epoch, and 4 epochs (24 steps) left the "after" configuration at chance."""
    return max(params.epochs, math.ceil(params.min_updates / max(batches_per_epoch, 1)))


def train_run(name: str, cfg: RunConfig, prep: Prepared, params: SetVAEParams, seed: int) -> RunResult:
    """Train one configuration with train.fit; diagnose on the test stays; score the outcome."""
    train.seed_everything(seed)
    objective = build_model(cfg, params, len(prep.scaler), prep.hours)
    data = batches(prep.tensors, prep.splits.train, params.batch_size, seed)
    epochs = epochs_for(params, len(data(0)))
    total_steps = epochs * len(data(0))
    monitor = EpochMonitor(prep.tensors, prep.splits.val[:MONITOR_STAYS])
    started = time.perf_counter()
    with torch.autograd.set_detect_anomaly(params.detect_anomaly):
        fit = train.fit(
            objective, data, weights=loss_weights(cfg, total_steps), epochs=epochs,
            optimizer=make_optimizer(cfg, params.lr), scheduler=make_scheduler(cfg, epochs),
            monitors=monitor, on_epoch_start=staging(cfg, epochs), seed=seed,
            grad_clip=cfg.grad_clip, clip_mode=cfg.clip_mode, progress=params.progress, desc=name,
            device=params.device,
        )
    seconds = time.perf_counter() - started
    test = collect(objective, prep.tensors, prep.splits.test)
    train_col = collect(objective, prep.tensors, prep.splits.train)
    y_test = prep.arrays.labels[prep.splits.test]
    scores = task_scores(y_test, test["logit"])
    scores.update({f"{k}_24h": v for k, v in task_scores(y_test, test["logit_24h"]).items() if k != "accuracy"})
    y_train = prep.arrays.labels[prep.splits.train]
    scores["train_auroc"] = task_scores(y_train, train_col["logit"])["auroc"]
    levels = level_diagnostics(test, seed)
    diagnosis = dg.diagnose(levels, train_auroc=scores["train_auroc"], val_auroc=scores["auroc"],
                            train_counts=_class_counts(y_train), val_counts=_class_counts(y_test))
    projections = pd.concat(monitor.projections, ignore_index=True).assign(run=name, seed=seed)
    return RunResult(name, seed, cfg, fit.history.assign(run=name, seed=seed), diagnosis, levels, scores,
                     projections, objective, seconds)


def _class_counts(y: np.ndarray) -> tuple[int, int]:
    return int((y == 1).sum()), int((y == 0).sum())


def result_row(r: RunResult) -> dict[str, Any]:
    dims = sum(s.dims for s in r.levels)
    row = {"run": r.name, "seed": r.seed, "diagnosis": r.diagnosis.status, "problem": r.diagnosis.problem,
           "active_ratio": sum(s.active for s in r.levels) / dims, "kl_total": sum(s.kl for s in r.levels)}
    for s in r.levels:
        row.update({f"AU_L{s.level}": f"{s.active}/{s.dims}", f"KL_L{s.level}": s.kl, f"MI_L{s.level}": s.mi,
                    f"sigma_L{s.level}": s.mean_sigma})
    row.update(r.scores)
    row["zh_cka"] = float(r.history["zh_cka"].iloc[-1])
    row["seconds"] = r.seconds
    return row


def run_reference(name: str, prep: Prepared, params: SetVAEParams) -> list[RunResult]:
    """Train a reference configuration on every seed and print each seed's diagnosis (the notebook's
    step 2 and 3); nothing when the run's ``references`` leave it out (sweep points)."""
    runs = run_many(reference_configs(params, name), prep, params, params.seeds)
    for r in runs:
        print(f"seed {r.seed}:", r.diagnosis)
    if not runs:
        print(f"skipped: {name!r} is not in references")
    return runs


RUNNING_STUDIES_ENV = "LATENTLAB_RUNNING_STUDIES"  # set by latentlab.runall: a file holding how many studies run


def spare_cores() -> int:
    """Cores no study is using right now, as ``latentlab.runall`` reports them (0 outside a runall job).

    runall gives every kernel ``OMP_NUM_THREADS`` = cores / jobs and keeps the number of studies still
    running in the file named by ``LATENTLAB_RUNNING_STUDIES``; when the others have finished, their cores
    are free for this study's independent runs."""
    path = os.environ.get(RUNNING_STUDIES_ENV)
    if not path:
        return 0
    try:
        running = int(Path(path).read_text().strip())
        threads = max(int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads()), 1)
    except (OSError, ValueError):
        return 0
    return max((os.cpu_count() or 1) // threads - running, 0)


def _extra_processes(params: SetVAEParams) -> int:
    """Worker processes to keep busy beside this one: ``workers`` − 1, or ("auto") the spare cores."""
    return params.workers - 1 if params.workers != "auto" else spare_cores()


_WORKER: dict[str, Any] = {}


def _worker_start(prep: Prepared, params: SetVAEParams, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(prep=prep, params=params)


def _worker_run(name: str, cfg: RunConfig, seed: int) -> RunResult:
    return train_run(name, cfg, _WORKER["prep"], _WORKER["params"], seed)


def run_many(configs: dict[str, RunConfig], prep: Prepared, params: SetVAEParams, seeds: list[int]) -> list[RunResult]:
    """Every configuration on every seed, results in that order.

    Runs are independent (each seeds everything itself and owns its model, data order and optimiser), so
    when cores are free (``workers``; "auto": the cores ``latentlab.runall`` reports unused, checked before
    every run) some run in worker processes (spawned, one torch thread each as here) while this process
    trains the others; a run gives the same numbers in either place (``tests/test_setvae_speed.py``)."""
    tasks = [(name, cfg, seed) for name, cfg in configs.items() for seed in seeds]
    results: list[RunResult | None] = [None] * len(tasks)
    pending = list(range(len(tasks)))
    futures: dict[Any, int] = {}
    pool = None
    try:
        while pending:
            extra = min(_extra_processes(params), len(pending) - 1)
            if extra > len(futures):
                if pool is None:
                    pool = ProcessPoolExecutor(max(os.cpu_count() or 1, extra), mp_context=multiprocessing.get_context("spawn"),
                                               initializer=_worker_start, initargs=(prep, params, torch.get_num_threads()))
                while len(futures) < extra:
                    i = pending.pop()  # workers take runs from the end, this process from the front
                    futures[pool.submit(_worker_run, *tasks[i])] = i
            i = pending.pop(0)
            results[i] = train_run(*tasks[i][:2], prep, params, tasks[i][2])
            for future in [f for f in futures if f.done()]:
                results[futures.pop(future)] = future.result()
        for future, i in futures.items():
            results[i] = future.result()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return results  # type: ignore[return-value]


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds per run, and how many seeds were diagnosed collapsed."""
    num = ["active_ratio", "kl_total", "auroc", "train_auroc", "auprc", "accuracy", "auroc_24h", "zh_cka"]
    g = rows.groupby("run", sort=False)
    out = g[num].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["collapsed_seeds"] = g["diagnosis"].apply(lambda s: f"{int((s == 'collapsed').sum())}/{len(s)}")
    out["collapsed_share"] = g["diagnosis"].apply(lambda s: float((s == "collapsed").mean()))
    out["problems"] = g["problem"].apply(lambda s: ", ".join(f"{k} {v}/{len(s)}" for k, v in s.value_counts().items()))
    out["n_seeds"] = g.size()
    return out.reset_index()


# --------------------------------------------------------------------------- conclusions, from the numbers


def _mean_sd(agg: pd.DataFrame, run: str, metric: str) -> tuple[float, float, int]:
    row = agg.loc[run]
    sd = row[f"{metric}_std"]
    return float(row[f"{metric}_mean"]), (float(sd) if pd.notna(sd) else math.nan), int(row["n_seeds"])


def _differ(a: tuple[float, float, int], b: tuple[float, float, int]) -> str | None:
    """"higher"/"lower"/"similar" when both sides have >= 2 seeds; None (not resolved) otherwise.
    Resolved = the means differ by more than 2 standard errors of the difference."""
    if min(a[2], b[2]) < 2 or not (math.isfinite(a[1]) and math.isfinite(b[1])):
        return None
    se = math.sqrt(a[1] ** 2 / a[2] + b[1] ** 2 / b[2])
    if abs(a[0] - b[0]) <= 2 * se:
        return "similar"
    return "higher" if a[0] > b[0] else "lower"


def conclusions(agg: pd.DataFrame, base: pd.DataFrame, prep: Prepared) -> list[str]:
    """The notebook's conclusions, each sentence computed from this run's numbers (nothing hard-coded):
    what the data kept, whether each reference collapsed and learned, how it compares with the baselines,
    and which one-fix-off rows changed collapse. One seed, or overlapping seeds, says "not resolved"."""
    agg = agg.set_index("run")
    y_test = prep.arrays.labels[prep.splits.test]
    lines = [prep.truncation["report"]]
    sd0 = dg.chance_auroc_sd(*_class_counts(prep.arrays.labels[prep.splits.train]))
    for run in REFERENCE:
        if run not in agg.index:
            lines.append(f"{run}: not run (references)")
            continue
        row = agg.loc[run]
        test = _mean_sd(agg, run, "auroc")
        train_mean = float(row["train_auroc_mean"])
        learned = ("did NOT learn the task (training AUROC within the chance band)" if train_mean < 0.5 + max(0.1, 2 * sd0)
                   else "learned the task")
        lines.append(f"{run}: diagnosed collapsed on {row['collapsed_seeds']} seeds; training AUROC {train_mean:.3f} → "
                     f"{learned}; test AUROC {test[0]:.3f}" + (f" ± {test[1]:.3f}" if math.isfinite(test[1]) else "")
                     + f" over {test[2]} seed(s) (base rate {y_test.mean():.3f}); problems named: {row['problems']}")
    if set(REFERENCE) <= set(agg.index):
        verdict = _differ(_mean_sd(agg, "after (seed)", "auroc"), _mean_sd(agg, "before (seed)", "auroc"))
        lines.append("after vs before, test AUROC: " + (f"{verdict} (beyond 2 standard errors)" if verdict not in (None, "similar")
                     else "no difference resolved" if verdict == "similar" else "not resolved (needs >= 2 seeds each)"))
    if len(base) and "after (seed)" in agg.index:
        best = base.sort_values("auroc", ascending=False).iloc[0]
        after = float(agg.loc["after (seed)", "auroc_mean"])
        lines.append(f"best baseline: {best['model']} at test AUROC {best['auroc']:.3f}; after is "
                     f"{after - best['auroc']:+.3f} from it (one split; differences below ~0.05 are within noise here)")
    if "after (seed)" in agg.index:
        ref = float(agg.loc["after (seed)", "collapsed_share"])
        moved = [(run, float(agg.loc[run, "collapsed_share"]), agg.loc[run, "collapsed_seeds"], int(agg.loc[run, "n_seeds"]))
                 for run in agg.index if run.startswith("after − ")]
        more = [f"{r[len('after − '):]} ({c})" for r, share, c, n in moved if share > ref and n >= 2]
        single = [r for r, _, _, n in moved if n < 2]
        if more:
            lines.append("fixes whose removal brought collapse back: " + ", ".join(more))
        elif moved and not single:
            lines.append("no single fix's removal brought collapse back on these seeds")
        if single:
            lines.append(f"{len(single)} one-fix-off row(s) ran on one seed only: which fixes matter is not resolved "
                         "(raise ablation_seeds)")
    return lines


def per_dim_kl(results: list[RunResult]) -> pd.DataFrame:
    return pd.DataFrame([{"run": r.name, "seed": r.seed, "level": s.level, "dim": d, "kl": kl, "var_mu": v}
                         for r in results for s in r.levels
                         for d, (kl, v) in enumerate(zip(s.kl_per_dim, s.var_mu, strict=True))])


# --------------------------------------------------------------------------- baselines


def baselines(data: clinical.ClinicalData, prep: Prepared, params: SetVAEParams) -> pd.DataFrame:
    """Logistic regression / gradient boosting on summary statistics, and PyPOTS GRU-D, same splits."""
    y = prep.arrays.labels
    sp = prep.splits
    rows = []
    feats = clinical.summary_features(data).to_numpy(dtype=float)
    models = {
        "logistic (summary stats)": lambda: make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                                          StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)),
        "gradient boosting (summary stats)": lambda: HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, random_state=params.seed),
    }
    keys = {"logistic (summary stats)": "logistic", "gradient boosting (summary stats)": "gbm"}
    for name, make in models.items():
        if keys[name] not in params.baselines:
            continue
        started = time.perf_counter()
        model = make().fit(feats[sp.train], y[sp.train])
        prob = model.predict_proba(feats[sp.test])[:, 1]
        rows.append({"model": name, **task_scores(y[sp.test], np.log(prob / (1 - prob + 1e-12) + 1e-12)),
                     "seconds": time.perf_counter() - started})
    if "grud" in params.baselines:
        rows.append(grud_baseline(data, prep, params))
    return pd.DataFrame(rows)


def grud_baseline(data: clinical.ClinicalData, prep: Prepared, params: SetVAEParams) -> dict[str, Any]:
    """PyPOTS 1.5 GRU-D on an hourly grid built from our arrays (GRU-D needs a grid; SetVAE does not)."""
    import contextlib
    import io
    import logging

    # ai4ts (a PyPOTS dependency) prints an ASCII banner on import and reads stdout's encoding to pick it
    with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO(), encoding="utf-8")):
        from pypots.classification import GRUD
        from pypots.utils.random import set_random_seed
    pypots_log = logging.getLogger("PyPOTS running log")  # GRUD(verbose=False) resets its level to WARNING
    if not pypots_log.filters:  # its seed and saving_path INFO/WARNING lines on stderr
        pypots_log.addFilter(lambda record: record.levelno >= logging.ERROR)

    set_random_seed(params.seed)
    grid = clinical.hourly_grid(data, prep.scaler)
    y = prep.arrays.labels
    sp = prep.splits
    started = time.perf_counter()
    model = GRUD(n_steps=grid.shape[1], n_features=grid.shape[2], n_classes=2, rnn_hidden_size=32,
                 batch_size=params.batch_size, epochs=params.grud_epochs, patience=min(5, params.grud_epochs), device="cpu", verbose=False)
    model.fit({"X": grid[sp.train], "y": y[sp.train]}, {"X": grid[sp.val], "y": y[sp.val]})
    prob = np.asarray(model.predict({"X": grid[sp.test]})["classification"])
    prob = prob[:, 1] if prob.ndim == 2 else prob
    prob = np.clip(prob, 1e-6, 1 - 1e-6)
    return {"model": "GRU-D (PyPOTS, hourly grid)", **task_scores(y[sp.test], np.log(prob / (1 - prob))),
            "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------- reading a sweep

SWEEP_METRICS = ("active_ratio", "kl_total", "auroc", "auprc")


def sweep_ablation(results: pd.DataFrame) -> pd.DataFrame:
    """A Study 4 sweep's table → one row group per ablated configuration: mean, sd, n over the seeds.

    Needs the ``run.`` columns a point writes when it trains exactly one non-reference configuration
    (``params/setvae.yaml``); returns ``sweeps.summarise``'s long frame (``latentlab.sweep.plots`` draws it).
    """
    from latentlab.sweep import results as sweeps

    needed = ["run.name", *(f"run.{m}" for m in (*SWEEP_METRICS, "collapsed_share"))]
    missing = [c for c in needed if c not in results.columns]
    if missing:
        raise sweeps.ResultsError(
            f"the sweep's table has no {missing} column(s): Study 4 writes them when a point trains exactly one "
            "configuration besides the references (grid axis ablation: [[fix], ...], as params/setvae.yaml)")
    frame = results.rename(columns={"run.name": "configuration", **{f"run.{m}": m for m in (*SWEEP_METRICS, "collapsed_share")}})
    others = [c for c in sweeps.grid_axes(results) if c != "param.ablation"]
    return sweeps.summarise(frame, [*SWEEP_METRICS, "collapsed_share"], by=["configuration", *others])


def sweep_table(summary: pd.DataFrame) -> pd.DataFrame:
    """``sweep_ablation`` as the notebook shows it: one row per configuration, ``mean ± sd`` per metric."""
    from latentlab.sweep import results as sweeps

    return sweeps.format_summary(summary).rename(columns={"n": "seeds", "collapsed_share": "share collapsed",
                                                         "kl_total": "KL nats/step", "active_ratio": "active units"})


# --------------------------------------------------------------------------- outputs


def scores_table(agg: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """SetVAE runs (mean ± sd over seeds) next to the baselines (one fit each, sd empty)."""
    runs = agg[["run", "auroc_mean", "auroc_std", "auprc_mean", "auprc_std", "accuracy_mean"]].rename(columns={"run": "model"})
    if base.empty:  # baselines=[] (e.g. a sweep point of the ablation)
        return runs.reset_index(drop=True)
    b = base.rename(columns={"auroc": "auroc_mean", "auprc": "auprc_mean", "accuracy": "accuracy_mean"})
    b = b.assign(auroc_std=np.nan, auprc_std=np.nan)[list(runs.columns)]
    return pd.concat([runs, b], ignore_index=True)


def summary_metrics(rows: pd.DataFrame, base: pd.DataFrame, data: clinical.ClinicalData, prep: Prepared) -> dict[str, Any]:
    agg = aggregate(rows).set_index("run")
    out: dict[str, Any] = {"test_base_rate": float(prep.arrays.labels[prep.splits.test].mean()),
                           "n_stays": len(data.labels), "truncated_steps": prep.arrays.truncated_steps,
                           "truncation": prep.truncation, "data": data_description(data)}
    if prep.truncation["observations_dropped_share"] > TRUNCATION_WARN_SHARE:
        out["warnings"] = [prep.truncation["report"]]
    for run in ("before (seed)", "after (seed)"):
        if run in agg.index:
            out[run] = {k: (None if pd.isna(v) else v) for k, v in agg.loc[run].items()}
    others = [run for run in agg.index if run not in REFERENCE]
    out["configurations"] = {run: {k: (None if pd.isna(v) else v) for k, v in agg.loc[run].items()} for run in others}
    if len(others) == 1:  # a sweep point's shape: its one row as uniform scalar columns (run.auroc, ...)
        row = agg.loc[others[0]]
        out["run"] = {"name": others[0], "n_seeds": int(row["n_seeds"]),
                      **{m: (None if pd.isna(row[f"{m}_mean"]) else float(row[f"{m}_mean"])) for m in SWEEP_METRICS},
                      "collapsed_share": float(row["collapsed_share"])}
    out["baselines"] = base.set_index("model")[["auroc", "auprc", "accuracy"]].to_dict("index") if len(base) else {}
    return out


def data_description(data: clinical.ClinicalData) -> dict[str, Any]:
    row = data.summary().iloc[0].to_dict()
    return {k: (float(v) if isinstance(v, int | float | np.number) else v) for k, v in row.items()}


def write_outputs(params: SetVAEParams, *, metrics: dict, tables: dict, charts: dict, history: pd.DataFrame) -> Path:
    return io.write_study_outputs(params.output_path, params=params.to_dict(), metrics=metrics, tables=tables,
                                  charts=charts, history=history)
