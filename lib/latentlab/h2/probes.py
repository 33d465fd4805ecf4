"""Probes: can a (linear or non-linear) model read a label back out of an embedding?

Every score comes with a bootstrap confidence interval over test cells and a
label-permutation null (the probe refitted on shuffled training labels), so a
number like 0.995 is always shown next to what chance looks like here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "f1")


class SplitError(ValueError):
    """A split leaves a class missing from train or test, so the probe cannot be scored."""


@dataclasses.dataclass(frozen=True)
class Split:
    name: str
    train: np.ndarray
    test: np.ndarray


def random_split(labels: pd.Series, *, test_size: float = 0.2, seed: int = 0) -> Split:
    """Random split stratified by ``labels`` (the seed's 80/20 protocol)."""
    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=test_size, stratify=np.asarray(labels), random_state=seed)
    return _checked(Split("random", np.sort(train), np.sort(test)), labels)


def holdout_split(labels: pd.Series, condition: pd.Series, value: str) -> Split:
    """Test = every cell of one condition (e.g. ``Sample = 36``); train = all others."""
    condition = condition.astype(str)
    if value not in set(condition):
        raise SplitError(
            f"holdout {condition.name}={value!r}: no such value; present are {sorted(set(condition))}"
        )
    is_test = (condition == value).to_numpy()
    split = Split(f"holdout {condition.name}={value}", np.flatnonzero(~is_test), np.flatnonzero(is_test))
    return _checked(split, labels)


def each_holdout(labels: pd.Series, condition: pd.Series) -> Iterator[Split]:
    """Every condition value held out in turn."""
    for value in sorted(set(condition.astype(str))):
        yield holdout_split(labels, condition, value)


def _checked(split: Split, labels: pd.Series) -> Split:
    y = np.asarray(labels.astype(str))
    classes = set(y)
    for part, idx in (("train", split.train), ("test", split.test)):
        missing = classes - set(y[idx])
        if missing:
            raise SplitError(
                f"split {split.name!r} leaves no {labels.name or 'label'}={sorted(missing)} cells in the "
                f"{part} set ({len(idx)} cells); the probe cannot be trained or scored on it"
            )
    return split


def make_probe(kind: str, seed: int = 0):
    """``linear`` (the seed's logistic regression), ``knn`` or ``mlp`` (non-linear)."""
    if kind == "linear":
        model = LogisticRegression(max_iter=2000)
    elif kind == "knn":
        model = KNeighborsClassifier(n_neighbors=15)
    elif kind == "mlp":
        model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, early_stopping=True, random_state=seed)
    else:
        raise ValueError(f"probe kind must be 'linear', 'knn' or 'mlp', got {kind!r}")
    return make_pipeline(StandardScaler(), model)


def score(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, ROC-AUC and F1 (binary: of the second class; else macro)."""
    pred = classes[np.argmax(proba, axis=1)]
    binary = len(classes) == 2
    present = set(y_true)
    if binary:
        auc = roc_auc_score(y_true == classes[1], proba[:, 1]) if len(present) == 2 else np.nan
        f1 = f1_score(y_true, pred, pos_label=classes[1], zero_division=0)
    else:
        auc = (roc_auc_score(y_true, proba, labels=classes, multi_class="ovr")
               if present == set(classes) else np.nan)
        f1 = f1_score(y_true, pred, average="macro", zero_division=0)
    return {
        "accuracy": accuracy_score(y_true, pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, pred),
        "roc_auc": auc,
        "f1": f1,
    }


@dataclasses.dataclass
class ProbeResult:
    kind: str
    split: str
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    null: dict[str, tuple[float, float, float]]  # mean, sd, p-value
    roc: pd.DataFrame
    n_perm: int = 0  # permutations that were scored (the p-value cannot go below 1 / (n_perm + 1))

    def table(self) -> pd.DataFrame:
        rows = []
        for m in METRICS:
            lo, hi = self.ci[m]
            null_mean, null_sd, p = self.null.get(m, (np.nan, np.nan, np.nan))
            rows.append({"probe": self.kind, "split": self.split, "metric": m, "value": self.metrics[m],
                         "ci_low": lo, "ci_high": hi, "null_mean": null_mean, "null_sd": null_sd,
                         "p_value": p, "p_floor": p_floor(self.n_perm), "n_perm": self.n_perm})
        return pd.DataFrame(rows)


def run_probe(
    z: np.ndarray,
    labels: pd.Series,
    split: Split,
    *,
    kind: str = "linear",
    n_boot: int = 500,
    n_perm: int = 50,
    seed: int = 0,
) -> ProbeResult:
    """Fit on ``split.train``, score on ``split.test`` with bootstrap CIs and a permutation null."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(labels.astype(str))
    classes = np.unique(y)
    probe = make_probe(kind, seed).fit(z[split.train], y[split.train])
    proba = probe.predict_proba(z[split.test])
    y_test = y[split.test]
    metrics = score(y_test, proba, classes)
    ci = _bootstrap_ci(y_test, proba, classes, n_boot, seed)
    null, scored = _permutation_null(z, y, split, classes, kind, metrics, n_perm, seed)
    roc = _roc_frame(y_test, proba, classes, split.name, kind)
    return ProbeResult(kind, split.name, metrics, ci, null, roc, scored)


def p_floor(n_perm: int) -> float:
    """The smallest p-value ``n_perm`` permutations can give: (1 + 0) / (1 + n_perm); NaN without any."""
    return 1.0 / (n_perm + 1) if n_perm > 0 else float("nan")


def _bootstrap_ci(y, proba, classes, n_boot, seed, level=0.95):
    """Percentile CIs over ``n_boot`` resamples of the test cells (binary: all resamples at once)."""
    if not n_boot:
        return {m: (np.nan, np.nan) for m in METRICS}
    rng = np.random.default_rng(seed)
    n = len(y)
    if len(classes) == 2:
        draws = _binary_bootstrap_scores(y, proba, classes, rng.integers(0, n, (n_boot, n)))
    else:
        draws = {m: [] for m in METRICS}
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            for m, v in score(y[idx], proba[idx], classes).items():
                draws[m].append(v)
    tail = (1 - level) / 2
    return {m: (float(np.nanquantile(v, tail)), float(np.nanquantile(v, 1 - tail))) for m, v in draws.items()}


def _binary_bootstrap_scores(y, proba, classes, idx: np.ndarray, chunk: int = 64) -> dict[str, np.ndarray]:
    """``score`` for every resample (rows of ``idx``) from per-cell draw counts, without a Python loop per
    resample: the 4 metrics are weighted sums, ROC-AUC the tie-aware Mann–Whitney count (what sklearn's
    trapezoidal AUC equals). Resamples go in chunks so memory stays ``chunk × n``."""
    n = len(y)
    positive = y == classes[1]
    predicted_positive = proba[:, 1] > proba[:, 0]  # argmax, first class on ties, as ``score``
    order = np.argsort(proba[:, 1], kind="stable")
    sorted_scores = proba[order, 1]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    out = {m: [] for m in METRICS}
    for first in range(0, len(idx), chunk):
        rows = idx[first : first + chunk]
        b = len(rows)
        counts = np.bincount((rows + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        counts = counts.astype(np.float64)
        n_pos, n_neg = counts @ positive, counts @ ~positive
        tp = counts @ (positive & predicted_positive)
        tn = counts @ (~positive & ~predicted_positive)
        fp, fn = n_neg - tn, n_pos - tp
        out["accuracy"].append((tp + tn) / n)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls = np.stack([np.where(n_pos > 0, tp / n_pos, np.nan), np.where(n_neg > 0, tn / n_neg, np.nan)])
            out["balanced_accuracy"].append(np.nanmean(recalls, axis=0))
            denominator = 2 * tp + fp + fn
            out["f1"].append(np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0))
            sorted_counts = counts[:, order]
            pos_groups = np.add.reduceat(sorted_counts * positive[order], starts, axis=1)
            neg_groups = np.add.reduceat(sorted_counts * ~positive[order], starts, axis=1)
            neg_below = np.cumsum(neg_groups, axis=1) - neg_groups
            wins = (pos_groups * (neg_below + 0.5 * neg_groups)).sum(axis=1)
            out["roc_auc"].append(np.where((n_pos > 0) & (n_neg > 0), wins / (n_pos * n_neg), np.nan))
    return {m: np.concatenate(v) for m, v in out.items()}


def _permutation_null(z, y, split, classes, kind, observed, n_perm, seed):
    if n_perm <= 0:
        return {}, 0
    rng = np.random.default_rng(seed + 1)
    draws = {m: [] for m in METRICS}
    refit = _label_refitter(kind, z, split, seed)
    for _ in range(n_perm):
        shuffled = rng.permutation(y[split.train])
        if len(set(shuffled)) < len(classes):
            continue
        for m, v in score(y[split.test], refit(shuffled), classes).items():
            draws[m].append(v)
    out = {}
    for m, v in draws.items():
        v = np.asarray(v, dtype=float)
        p = (1 + np.sum(v >= observed[m])) / (1 + len(v))
        out[m] = (float(np.nanmean(v)), float(np.nanstd(v)), float(p))
    return out, len(draws["accuracy"])


def _label_refitter(kind: str, z: np.ndarray, split: Split, seed: int):
    """``train labels -> test probabilities`` for the permutation null, with what does not depend on the
    labels done once: the scaler (fitted on features only), and for k-NN the neighbours themselves, so a
    permutation costs one logistic fit, or one table look-up instead of a neighbour search. Same numbers
    as refitting ``make_probe(kind)`` on every permutation."""
    if kind not in ("linear", "knn"):
        return lambda labels: make_probe(kind, seed).fit(z[split.train], labels).predict_proba(z[split.test])
    pipeline = make_probe(kind, seed)
    scaler, model = pipeline[0].fit(z[split.train]), pipeline[-1]
    train_x, test_x = scaler.transform(z[split.train]), scaler.transform(z[split.test])
    if kind == "linear":
        return lambda labels: model.fit(train_x, labels).predict_proba(test_x)
    neighbours = model.fit(train_x, np.zeros(len(train_x))).kneighbors(test_x, return_distance=False)

    def knn_proba(labels: np.ndarray) -> np.ndarray:
        codes = np.unique(labels, return_inverse=True)[1]
        votes = np.zeros((len(neighbours), codes.max() + 1))
        for column in neighbours.T:
            votes[np.arange(len(neighbours)), codes[column]] += 1.0
        return votes / neighbours.shape[1]

    return knn_proba


def _roc_frame(y, proba, classes, split_name, kind):
    if len(classes) != 2 or len(set(y)) < 2:
        return pd.DataFrame(columns=["fpr", "tpr", "split", "probe"])
    fpr, tpr, _ = roc_curve(y == classes[1], proba[:, 1])
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "split": split_name, "probe": kind})
