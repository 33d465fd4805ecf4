"""Irregular clinical time series: PhysioNet-2012 and long-CSV loaders, an ICU-stay simulator, arrays.

Times are kept exactly as recorded (minutes → fractional hours); nothing is rounded to an hourly
grid. Observations sharing one timestamp form one *set* (one time step of the SetVAE). Every loader
validates its input and names the file, row, record or parameter that is wrong.

Policies (stated once, tested):
- PhysioNet static descriptors (``RecordID, Age, Gender, Height, ICUType``) go to ``static``, not to
  the series; a value of ``-1`` is PhysioNet's "missing" and is dropped.
- Unknown variables: ``unknown="error"`` (default) raises naming the variable and file;
  ``unknown="drop"`` drops them and records the count in ``ClinicalData.dropped``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

PHYSIONET_VARIABLES = (
    "Albumin", "ALP", "ALT", "AST", "Bilirubin", "BUN", "Cholesterol", "Creatinine", "DiasABP", "FiO2",
    "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "Mg", "MAP", "MechVent", "Na", "NIDiasABP",
    "NIMAP", "NISysABP", "PaCO2", "PaO2", "pH", "Platelets", "RespRate", "SaO2", "SysABP", "Temp",
    "TroponinI", "TroponinT", "Urine", "WBC", "Weight",
)
STATIC_DESCRIPTORS = ("RecordID", "Age", "Gender", "Height", "ICUType")
SIM_VARIABLES = tuple(v for v in PHYSIONET_VARIABLES if v != "MechVent")  # 36
_TIME = re.compile(r"^(\d{1,3}):([0-5]\d)$")


class ClinicalFormatError(ValueError):
    """Malformed clinical input; the message names the file/row/record/parameter."""


@dataclasses.dataclass
class ClinicalData:
    """Long observations (stay_id, time [h], variable, value), one label per stay, the variable list."""

    obs: pd.DataFrame
    labels: pd.Series
    variables: list[str]
    static: pd.DataFrame | None = None
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    truth: dict | None = None

    @property
    def stay_ids(self) -> np.ndarray:
        return self.labels.index.to_numpy()

    def summary(self) -> pd.DataFrame:
        per_stay = self.obs.groupby("stay_id")
        steps = per_stay["time"].nunique()
        return pd.DataFrame([{
            "stays": len(self.labels), "variables": len(self.variables), "observations": len(self.obs),
            "positive rate": round(float(self.labels.mean()), 4),
            "time steps / stay (median)": float(steps.median()),
            "observations / stay (median)": float(per_stay.size().median()),
            "distinct times off the hour (%)": round(100 * float((self.obs["time"] % 1 != 0).mean()), 1),
        }])


# --------------------------------------------------------------------------- parsing helpers


def parse_hhmm(text: str, *, where: str) -> float:
    """``HH:MM`` (hours may exceed 24) → hours as a float, exactly (minutes / 60)."""
    match = _TIME.match(str(text).strip())
    if not match:
        raise ClinicalFormatError(f"{where}: malformed time {text!r}; expected HH:MM (e.g. 07:45, 47:59)")
    return int(match.group(1)) + int(match.group(2)) / 60.0


def parse_hhmm_column(column: pd.Series, *, where: str) -> np.ndarray:
    """Vectorised ``parse_hhmm``; the first malformed row is named (row numbers count the header)."""
    parts = column.astype(str).str.strip().str.extract(_TIME.pattern)
    bad = parts[0].isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        parse_hhmm(column.iloc[row], where=f"{where}: row {row + 2}")
    return parts[0].astype(int).to_numpy() + parts[1].astype(int).to_numpy() / 60.0


def format_hhmm(hours: float) -> str:
    minutes = int(round(hours * 60))
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _check_variables(frame: pd.DataFrame, known: Sequence[str], unknown: str, where: str) -> tuple[pd.DataFrame, int]:
    if unknown not in ("error", "drop"):
        raise ValueError(f"unknown must be 'error' or 'drop', got {unknown!r}")
    bad = ~frame["variable"].isin(known)
    if not bad.any():
        return frame, 0
    if unknown == "error":
        names = sorted(frame.loc[bad, "variable"].astype(str).unique())[:5]
        raise ClinicalFormatError(
            f"{where}: unknown variable(s) {names}; expected one of the {len(known)} known variables "
            "(pass unknown='drop' to drop them, or variables=[...] to declare them)"
        )
    return frame.loc[~bad], int(bad.sum())


def _attach_labels(obs: pd.DataFrame, labels: pd.Series, where: str) -> pd.Series:
    ids = pd.Index(obs["stay_id"].unique())
    missing = ids.difference(labels.index)
    if len(missing):
        raise ClinicalFormatError(
            f"{where}: {len(missing)} stay(s) have no outcome, e.g. {list(missing[:5])}"
        )
    return labels.loc[ids].sort_index()


def _read_labels(path: Path, id_column: str, label_column: str) -> pd.Series:
    if not path.exists():
        raise ClinicalFormatError(f"{path}: outcome file not found")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise ClinicalFormatError(f"{path}: outcome file is empty") from exc
    for col in (id_column, label_column):
        if col not in frame.columns:
            raise ClinicalFormatError(f"{path}: missing column {col!r}; found {list(frame.columns)}")
    ids = frame[id_column].astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ClinicalFormatError(f"{path}: duplicate {id_column} {list(dup.unique()[:5])}")
    values = pd.to_numeric(frame[label_column], errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ClinicalFormatError(
            f"{path}: {label_column} must be 0/1; row {row + 2} has {frame[label_column].iloc[row]!r}"
        )
    return pd.Series(values.astype(int).to_numpy(), index=ids.to_numpy(), name="label")


# --------------------------------------------------------------------------- PhysioNet 2012


def read_physionet_stay(path: Path) -> tuple[str, pd.DataFrame, dict[str, float]]:
    """One ``Time,Parameter,Value`` file → (record id, long frame, static descriptors)."""
    try:
        frame = pd.read_csv(path, dtype={"Time": str, "Parameter": str})
    except pd.errors.EmptyDataError as exc:
        raise ClinicalFormatError(f"{path}: empty file; expected a header Time,Parameter,Value") from exc
    if list(frame.columns) != ["Time", "Parameter", "Value"]:
        raise ClinicalFormatError(f"{path}: header must be Time,Parameter,Value; found {list(frame.columns)}")
    if frame.empty:
        raise ClinicalFormatError(f"{path}: no observation rows")
    values = pd.to_numeric(frame["Value"], errors="coerce")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ClinicalFormatError(f"{path}: row {row + 2}: Value {frame['Value'].iloc[row]!r} is not a number")
    times = parse_hhmm_column(frame["Time"], where=str(path))
    frame = pd.DataFrame({"time": times, "variable": frame["Parameter"].str.strip(), "value": values})
    is_static = frame["variable"].isin(STATIC_DESCRIPTORS) & (frame["time"] == 0)
    static = dict(zip(frame.loc[is_static, "variable"], frame.loc[is_static, "value"], strict=True))
    record = str(int(static["RecordID"])) if "RecordID" in static else path.stem
    series = frame.loc[~is_static & (frame["value"] != -1)]
    return record, series, static


def load_physionet(
    directory: str | Path, outcomes: str | Path, *, label_column: str = "In-hospital_death",
    variables: Sequence[str] = PHYSIONET_VARIABLES, unknown: str = "error",
) -> ClinicalData:
    """A directory of ``<RecordID>.txt`` stay files plus an outcomes CSV (``RecordID`` + label)."""
    directory = Path(directory)
    files = sorted(directory.glob("*.txt"))
    if not files:
        raise ClinicalFormatError(f"{directory}: no stay files (*.txt) found")
    frames, statics, seen, dropped = [], [], {}, 0
    for path in files:
        record, series, static = read_physionet_stay(path)
        if record in seen:
            raise ClinicalFormatError(f"{path}: duplicate RecordID {record} (also in {seen[record]})")
        seen[record] = path.name
        series, n_drop = _check_variables(series, variables, unknown, str(path))
        dropped += n_drop
        frames.append(series.assign(stay_id=record))
        statics.append({"stay_id": record, **{k: v for k, v in static.items() if k != "RecordID"}})
    obs = pd.concat(frames, ignore_index=True)[["stay_id", "time", "variable", "value"]]
    labels = _read_labels(Path(outcomes), "RecordID", label_column)
    no_series = sorted(set(seen) - set(obs["stay_id"]))
    if no_series:
        raise ClinicalFormatError(f"{directory}: stay(s) {no_series[:5]} have no time-series observation")
    labels = _attach_labels(obs, labels, str(outcomes))
    static = pd.DataFrame(statics).set_index("stay_id").loc[labels.index]
    return ClinicalData(obs.sort_values(["stay_id", "time"], kind="stable").reset_index(drop=True),
                        labels, list(variables), static, {"unknown variable rows": dropped})


def write_physionet(data: ClinicalData, directory: str | Path, outcomes_name: str = "Outcomes-a.txt") -> Path:
    """Write stays as PhysioNet-2012 files (times as HH:MM) and the outcomes file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stay, group in data.obs.groupby("stay_id", sort=True):
        rows = [f"00:00,RecordID,{stay}"]
        rows += [f"{format_hhmm(t)},{v},{x:.6g}" for t, v, x in group[["time", "variable", "value"]].itertuples(index=False)]
        (directory / f"{stay}.txt").write_text("Time,Parameter,Value\n" + "\n".join(rows) + "\n")
    out = directory.parent / outcomes_name
    pd.DataFrame({"RecordID": data.labels.index, "In-hospital_death": data.labels.to_numpy()}).to_csv(out, index=False)
    return out


# --------------------------------------------------------------------------- long CSV


def load_long_csv(
    observations: str | Path, labels: str | Path, *, variables: Sequence[str] | None = None,
    unknown: str = "error", label_column: str = "label",
) -> ClinicalData:
    """``stay_id,time,variable,value`` (time in hours, any float) + ``stay_id,<label>`` CSV."""
    path = Path(observations)
    try:
        obs = pd.read_csv(path, dtype={"stay_id": str, "variable": str})
    except pd.errors.EmptyDataError as exc:
        raise ClinicalFormatError(f"{path}: empty file; expected columns stay_id,time,variable,value") from exc
    missing = [c for c in ("stay_id", "time", "variable", "value") if c not in obs.columns]
    if missing:
        raise ClinicalFormatError(f"{path}: missing column(s) {missing}; found {list(obs.columns)}")
    if obs.empty:
        raise ClinicalFormatError(f"{path}: no observation rows")
    for col in ("time", "value"):
        num = pd.to_numeric(obs[col], errors="coerce")
        if num.isna().any() or not np.isfinite(num).all():
            row = int(np.flatnonzero((num.isna() | ~np.isfinite(num.fillna(0))).to_numpy())[0])
            raise ClinicalFormatError(
                f"{path}: row {row + 2}: {col} {obs[col].iloc[row]!r} is not a finite number"
                + (" (time is in hours since admission)" if col == "time" else "")
            )
        obs[col] = num.astype(float)
    if (obs["time"] < 0).any():
        row = int(np.flatnonzero((obs["time"] < 0).to_numpy())[0])
        raise ClinicalFormatError(f"{path}: row {row + 2}: negative time {obs['time'].iloc[row]}")
    known = list(variables) if variables is not None else sorted(obs["variable"].unique())
    obs, n_drop = _check_variables(obs, known, unknown, str(path))
    y = _read_labels(Path(labels), "stay_id", label_column)
    y = _attach_labels(obs, y, str(labels))
    obs = obs[["stay_id", "time", "variable", "value"]].sort_values(["stay_id", "time"], kind="stable")
    return ClinicalData(obs.reset_index(drop=True), y, known, None, {"unknown variable rows": n_drop})


def write_long_csv(data: ClinicalData, directory: str | Path) -> tuple[Path, Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    obs_path, lab_path = directory / "observations.csv", directory / "labels.csv"
    data.obs.to_csv(obs_path, index=False)
    pd.DataFrame({"stay_id": data.labels.index, "label": data.labels.to_numpy()}).to_csv(lab_path, index=False)
    return obs_path, lab_path


# --------------------------------------------------------------------------- simulator


@dataclasses.dataclass(frozen=True)
class StaySimulation:
    """ICU-like stays: a latent state path over ``hours`` drives every variable and the outcome."""

    n_stays: int = 1000
    hours: float = 48.0
    n_latent: int = 3
    chart_rate: float = 0.5  # charting events per hour (vitals are observed together)
    lab_rate: float = 1 / 8  # lab draws per hour
    noise: float = 0.5  # observation noise, in units of the latent signal
    outcome_strength: float = 2.5
    positive_rate: float = 0.14
    seed: int = 0


def _latent_paths(rng: np.random.Generator, sim: StaySimulation, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stay: baseline + linear drift + smooth OU wander; returns (paths, drifts)."""
    n, k = sim.n_stays, sim.n_latent
    base = rng.normal(0, 0.7, (n, 1, k))
    drift = rng.normal(0, 1.0, (n, 1, k))
    dt = np.diff(grid, prepend=0.0)
    ou = np.zeros((n, len(grid), k))
    theta, sigma = 0.15, 0.35
    for i in range(1, len(grid)):
        ou[:, i] = ou[:, i - 1] * (1 - theta * dt[i]) + sigma * np.sqrt(dt[i]) * rng.normal(size=(n, k))
    paths = base + drift * (grid[None, :, None] / sim.hours) + ou
    return paths, drift[:, 0]


def simulate_stays(sim: StaySimulation) -> ClinicalData:
    """Simulate stays in minutes-resolution irregular time, with ground truth in ``truth``.

    Vitals share charting events (variable-specific observation probability), labs share sparser
    draw events; some variables are absent for whole stays. The outcome depends on the latent
    state at the end of the stay and on its drift, so the trajectory — not any single value — is
    what predicts it.
    """
    rng = np.random.default_rng(sim.seed)
    variables = list(SIM_VARIABLES)
    n_var = len(variables)
    vitals = {"HR", "SysABP", "DiasABP", "MAP", "Temp", "RespRate", "SaO2", "GCS", "Urine",
              "NIDiasABP", "NISysABP", "NIMAP", "FiO2"}
    is_vital = np.array([v in vitals for v in variables])
    p_obs = np.where(is_vital, rng.uniform(0.4, 0.95, n_var), rng.uniform(0.3, 0.9, n_var))
    p_absent = rng.uniform(0.0, 0.4, n_var)  # whole-stay missingness per variable
    loadings = rng.normal(0, 1, (n_var, sim.n_latent)) * rng.uniform(0.3, 1.0, (n_var, 1))
    centre, scale = rng.uniform(5, 150, n_var), rng.uniform(1, 20, n_var)

    grid = np.arange(0, sim.hours + 1e-9, 0.25)
    paths, drift = _latent_paths(rng, sim, grid)
    end_state = paths[:, -16:].mean(axis=1)  # last 4 h
    w_out = np.zeros(sim.n_latent)
    w_out[0], w_out[1 % sim.n_latent] = 1.0, 0.6
    score = sim.outcome_strength * ((end_state @ w_out) / np.sqrt((end_state @ w_out).var() + 1e-9) * 0.7
                                    + 0.3 * (drift @ w_out) / np.sqrt((drift @ w_out).var() + 1e-9))
    intercept = _intercept_for_rate(score, sim.positive_rate)
    prob = 1 / (1 + np.exp(-(score + intercept)))
    labels = (rng.uniform(size=sim.n_stays) < prob).astype(int)

    rows = []
    for s in range(sim.n_stays):
        present = rng.uniform(size=n_var) >= p_absent
        for rate, group in ((sim.chart_rate, is_vital), (sim.lab_rate, ~is_vital)):
            n_events = max(1, rng.poisson(rate * sim.hours))
            minutes = np.unique(rng.integers(0, int(sim.hours * 60), n_events))
            for m in minutes:
                t = m / 60.0
                state = paths[s, min(int(t / 0.25), len(grid) - 1)]
                seen = group & present & (rng.uniform(size=n_var) < p_obs)
                for j in np.flatnonzero(seen):
                    x = loadings[j] @ state + sim.noise * rng.normal()
                    rows.append((s, t, j, centre[j] + scale[j] * x))
    arr = np.array(rows)
    ids = np.array([f"{100000 + s}" for s in range(sim.n_stays)])
    obs = pd.DataFrame({"stay_id": ids[arr[:, 0].astype(int)], "time": arr[:, 1],
                        "variable": np.array(variables)[arr[:, 2].astype(int)], "value": np.round(arr[:, 3], 4)})
    obs = obs.sort_values(["stay_id", "time"], kind="stable").reset_index(drop=True)
    y = pd.Series(labels, index=ids, name="label").loc[sorted(obs["stay_id"].unique())]
    truth = {"paths": paths, "grid": grid, "drift": drift, "risk": prob, "loadings": loadings}
    return ClinicalData(obs, y, variables, None, {}, truth)


def _intercept_for_rate(score: np.ndarray, rate: float) -> float:
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(score + mid)))).mean() < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# --------------------------------------------------------------------------- arrays


@dataclasses.dataclass
class SetArrays:
    """Padded per-step sets: steps hold exact times (h); elements are (variable index, z-scored value)."""

    times: np.ndarray  # (N, T) float32 hours
    step_mask: np.ndarray  # (N, T) bool
    var: np.ndarray  # (N, T, K) int64
    val: np.ndarray  # (N, T, K) float32
    elem_mask: np.ndarray  # (N, T, K) bool
    labels: np.ndarray  # (N,) int
    stay_ids: np.ndarray
    truncated_steps: int = 0

    def __len__(self) -> int:
        return len(self.labels)


def fit_scaler(data: ClinicalData, stay_ids: Sequence[str]) -> pd.DataFrame:
    """Per-variable mean/std on the training stays only (no test statistics leak into training)."""
    part = data.obs[data.obs["stay_id"].isin(set(stay_ids))]
    stats = part.groupby("variable")["value"].agg(["mean", "std"]).reindex(data.variables)
    stats["mean"] = stats["mean"].fillna(0.0)
    stats["std"] = stats["std"].fillna(1.0).replace(0, 1.0)
    return stats


def to_set_arrays(data: ClinicalData, scaler: pd.DataFrame, *, max_steps: int, max_set: int | None = None) -> SetArrays:
    """Group each stay's observations by exact timestamp; keep the last ``max_steps`` steps."""
    index = {v: i for i, v in enumerate(data.variables)}
    obs = data.obs
    var_idx = obs["variable"].map(index).to_numpy()
    z = ((obs["value"].to_numpy() - scaler["mean"].to_numpy()[var_idx]) / scaler["std"].to_numpy()[var_idx])
    z = np.clip(z, -6, 6).astype(np.float32)
    ids = data.labels.index.to_numpy()
    n = len(ids)
    k_max = max_set or len(data.variables)
    times = np.zeros((n, max_steps), np.float32)
    step_mask = np.zeros((n, max_steps), bool)
    var = np.zeros((n, max_steps, k_max), np.int64)
    val = np.zeros((n, max_steps, k_max), np.float32)
    elem = np.zeros((n, max_steps, k_max), bool)
    row_of = {s: i for i, s in enumerate(ids)}
    stay_codes = obs["stay_id"].map(row_of).to_numpy()
    t_all = obs["time"].to_numpy()
    order = np.lexsort((t_all, stay_codes))
    truncated = 0
    bounds = np.flatnonzero(np.diff(stay_codes[order], prepend=-1, append=-2))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[a:b]
        i = stay_codes[rows[0]]
        step_times, step_of = np.unique(t_all[rows], return_inverse=True)
        offset = max(0, len(step_times) - max_steps)
        truncated += offset
        for r, st in zip(rows, step_of, strict=True):
            t = st - offset
            if t < 0:
                continue
            slot = int(elem[i, t].sum())
            if slot >= k_max:
                continue
            var[i, t, slot], val[i, t, slot], elem[i, t, slot] = var_idx[r], z[r], True
        kept = step_times[offset:]
        times[i, : len(kept)], step_mask[i, : len(kept)] = kept, True
    return SetArrays(times, step_mask, var, val, elem, data.labels.to_numpy().astype(int), ids, truncated)


def summary_features(data: ClinicalData) -> pd.DataFrame:
    """Per stay and variable: last, mean, min, max, count (the strong PhysioNet-2012 baseline)."""
    grouped = data.obs.sort_values(["stay_id", "time"]).groupby(["stay_id", "variable"])["value"]
    feats = grouped.agg(["last", "mean", "min", "max", "count"]).unstack("variable")
    feats.columns = [f"{var}_{stat}" for stat, var in feats.columns]
    feats = feats.reindex(data.labels.index)
    counts = [c for c in feats.columns if c.endswith("_count")]
    feats[counts] = feats[counts].fillna(0)
    return feats


def hourly_grid(data: ClinicalData, scaler: pd.DataFrame, hours: int = 48) -> np.ndarray:
    """(N, hours, V) array with NaN where unobserved — only for grid-based baselines (GRU-D).

    The last observation within each hour is kept; this binning is the baseline's limitation, not
    the data's: the SetVAE uses exact times.
    """
    index = {v: i for i, v in enumerate(data.variables)}
    row_of = {s: i for i, s in enumerate(data.labels.index)}
    obs = data.obs
    j = obs["variable"].map(index).to_numpy()
    z = (obs["value"].to_numpy() - scaler["mean"].to_numpy()[j]) / scaler["std"].to_numpy()[j]
    grid = np.full((len(row_of), hours, len(data.variables)), np.nan, np.float32)
    h = np.clip(np.floor(obs["time"].to_numpy()).astype(int), 0, hours - 1)
    grid[obs["stay_id"].map(row_of).to_numpy(), h, j] = np.clip(z, -6, 6)
    return grid
