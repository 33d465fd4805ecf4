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

import csv
import dataclasses
import io
import re
import warnings
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


def read_table(path: Path, *, what: str, dtype: dict | None = None) -> pd.DataFrame:
    """Read a comma-separated text file as strings-first, naming the file and line of any fault.

    Line numbers are the file's own (header = line 1): blank lines are kept as rows so they do not
    shift the count, and dropped afterwards. Non-UTF-8 bytes (a gzip file, a Latin-1 export) and rows
    with extra fields are reported with their line instead of pandas' bare exceptions.
    """
    path = Path(path)
    if not path.exists():
        raise ClinicalFormatError(f"{path}: {what} not found")
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        kind = " (gzip-compressed? decompress it first)" if raw[:2] == b"\x1f\x8b" else ""
        raise ClinicalFormatError(
            f"{path}: line {line}: byte {raw[exc.start]:#04x} is not UTF-8 text{kind}; expected a UTF-8 CSV {what}"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # index_col=False: extra fields warn
            frame = pd.read_csv(path, dtype=dtype or str, skip_blank_lines=False, encoding="utf-8-sig",
                                keep_default_na=False, na_values=[""], index_col=False)
    except pd.errors.EmptyDataError:
        raise ClinicalFormatError(f"{path}: empty file; expected a header line and rows ({what})") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        line, reason = _ragged_line(raw.decode("utf-8-sig"))
        if line is None:
            line, reason = _parser_line(exc), _parser_reason(exc)
        raise ClinicalFormatError(f"{path}: line {line}: {reason} ({what})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = frame.index + 2  # the file's line numbers
    return frame.dropna(how="all")


def _ragged_line(text: str) -> tuple[int | None, str]:
    """The first line whose field count differs from the header's (csv quoting respected)."""
    rows = csv.reader(io.StringIO(text))
    width = len(next(rows, []))
    for number, row in enumerate(rows, start=2):
        if row and len(row) != width:
            return number, f"{len(row)} fields where the header has {width}"
    return None, ""


def _parser_line(exc: Exception) -> str:
    match = re.search(r"line (\d+)", str(exc))
    return match.group(1) if match else "?"


def _parser_reason(exc: Exception) -> str:
    match = re.search(r"Expected (\d+) fields in line \d+, saw (\d+)", str(exc))
    if match:
        return f"{match.group(2)} fields where the header has {match.group(1)}"
    return str(exc).strip().splitlines()[-1]


def finite_numbers(frame: pd.DataFrame, column: str, *, where: Path, hint: str = "") -> np.ndarray:
    """The column as floats; the first empty, non-numeric or non-finite (inf, nan) entry is an error
    naming the file, the line and the column."""
    text = frame[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        shown = "is empty" if pd.isna(text.iloc[i]) else f"{text.iloc[i]!r} is not a finite number"
        raise ClinicalFormatError(f"{where}: line {frame.index[i]}: {column} {shown}; expected a finite number{hint}")
    return values


def record_id(text: str, *, where: str) -> str:
    """A PhysioNet RecordID must be a whole number; ``132539.7`` is refused, never truncated."""
    value = pd.to_numeric(pd.Series([text]), errors="coerce").iloc[0]
    if not np.isfinite(value) or float(value) != int(value):
        raise ClinicalFormatError(f"{where}: RecordID {text!r} is not a whole number")
    return str(int(value))


def parse_hhmm(text: str, *, where: str) -> float:
    """``HH:MM`` (hours may exceed 24) → hours as a float, exactly (minutes / 60)."""
    match = _TIME.match(str(text).strip())
    if not match:
        raise ClinicalFormatError(f"{where}: malformed time {text!r}; expected HH:MM (e.g. 07:45, 47:59)")
    return int(match.group(1)) + int(match.group(2)) / 60.0


def parse_hhmm_column(column: pd.Series, *, where: str) -> np.ndarray:
    """Vectorised ``parse_hhmm``; the first malformed entry is named by the frame's index (its line)."""
    parts = column.astype(str).str.strip().str.extract(_TIME.pattern)
    bad = parts[0].isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        parse_hhmm(column.iloc[row], where=f"{where}: line {column.index[row]}: Time")
    return parts[0].astype(int).to_numpy() + parts[1].astype(int).to_numpy() / 60.0


def format_hhmm(hours: float) -> str:
    minutes = int(round(hours * 60))
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _check_variables(frame: pd.DataFrame, known: Sequence[str], unknown: str, where: str,
                     column: str = "variable") -> tuple[pd.DataFrame, int]:
    if unknown not in ("error", "drop"):
        raise ValueError(f"unknown must be 'error' or 'drop', got {unknown!r}")
    bad = ~frame["variable"].isin(known)
    if not bad.any():
        return frame, 0
    if unknown == "error":
        names = sorted(frame.loc[bad, "variable"].astype(str).unique())[:5]
        line = frame.index[np.flatnonzero(bad.to_numpy())[0]]
        raise ClinicalFormatError(
            f"{where}: line {line}: {column} {frame.loc[line, 'variable']!r} is not a known variable "
            f"(unknown here: {names}); expected one of the {len(known)} known variables "
            "(set unknown_variables='drop' to drop them and count them)"
        )
    return frame.loc[~bad], int(bad.sum())


def _attach_labels(obs: pd.DataFrame, labels: pd.Series, where: str, id_column: str) -> pd.Series:
    ids = pd.Index(obs["stay_id"].unique())
    missing = ids.difference(labels.index)
    if len(missing):
        raise ClinicalFormatError(
            f"{where}: no outcome row for {len(missing)} stay(s): {id_column} {list(missing[:5])}"
        )
    return labels.loc[ids].sort_index()


def _read_labels(path: Path, id_column: str, label_column: str, *, whole_ids: bool = False) -> pd.Series:
    frame = read_table(Path(path), what="outcome file")
    for col in (id_column, label_column):
        if col not in frame.columns:
            raise ClinicalFormatError(f"{path}: missing column {col!r}; found {list(frame.columns)}")
    if frame.empty:
        raise ClinicalFormatError(f"{path}: no outcome rows under the header")
    ids = frame[id_column].astype(str).str.strip()
    empty = ids.isin(["", "nan"])
    if empty.any():
        raise ClinicalFormatError(f"{path}: line {ids.index[np.flatnonzero(empty)[0]]}: empty {id_column}")
    if whole_ids:
        ids = pd.Series([record_id(v, where=f"{path}: line {i}") for i, v in ids.items()], index=ids.index)
    dup = ids.duplicated(keep="first")
    if dup.any():
        line = ids.index[np.flatnonzero(dup.to_numpy())[0]]
        first = ids.index[(ids == ids[line]).to_numpy()][0]
        raise ClinicalFormatError(f"{path}: line {line}: duplicate {id_column} {ids[line]} (first on line {first})")
    text = frame[label_column].astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.any():
        line = text.index[np.flatnonzero(bad.to_numpy())[0]]
        raise ClinicalFormatError(
            f"{path}: line {line}: {label_column} must be 0 or 1; found {text[line]!r}"
        )
    return pd.Series(values.astype(int).to_numpy(), index=ids.to_numpy(), name="label")


# --------------------------------------------------------------------------- PhysioNet 2012


def read_physionet_stay(path: Path) -> tuple[str, pd.DataFrame, dict[str, float]]:
    """One ``Time,Parameter,Value`` file → (record id, long frame indexed by line, static descriptors)."""
    frame = read_table(path, what="PhysioNet-2012 stay file (Time,Parameter,Value)")
    if list(frame.columns) != ["Time", "Parameter", "Value"]:
        raise ClinicalFormatError(f"{path}: header must be Time,Parameter,Value; found {list(frame.columns)}")
    if frame.empty:
        raise ClinicalFormatError(f"{path}: no observation rows")
    params = frame["Parameter"].astype(str).str.strip()
    missing_name = params.isin(["", "nan"])
    if missing_name.any():
        raise ClinicalFormatError(f"{path}: line {params.index[np.flatnonzero(missing_name)[0]]}: empty Parameter")
    times = parse_hhmm_column(frame["Time"], where=str(path))
    is_id = (params == "RecordID").to_numpy()
    ids = {record_id(frame["Value"].iloc[i], where=f"{path}: line {frame.index[i]}") for i in np.flatnonzero(is_id)}
    if len(ids) > 1:
        raise ClinicalFormatError(f"{path}: {len(ids)} different RecordIDs {sorted(ids)} in one stay file")
    rest = frame.loc[~is_id]
    values = finite_numbers(rest, "Value", where=path)
    long = pd.DataFrame({"time": times[~is_id], "variable": params[~is_id].to_numpy(), "value": values},
                        index=rest.index)
    is_static = long["variable"].isin(STATIC_DESCRIPTORS) & (long["time"] == 0)
    static = dict(zip(long.loc[is_static, "variable"], long.loc[is_static, "value"], strict=True))
    record = ids.pop() if ids else path.stem
    series = long.loc[~is_static & (long["value"] != -1)]
    return record, series, static


def load_physionet(
    directory: str | Path, outcomes: str | Path, *, label_column: str = "In-hospital_death",
    variables: Sequence[str] = PHYSIONET_VARIABLES, unknown: str = "error",
) -> ClinicalData:
    """A directory of ``<RecordID>.txt`` stay files plus an outcomes CSV (``RecordID`` + label)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ClinicalFormatError(f"{directory}: not a directory of PhysioNet-2012 stay files (*.txt)")
    files = sorted(directory.glob("*.txt"))
    if not files:
        raise ClinicalFormatError(f"{directory}: no stay files (*.txt) found")
    frames, statics, seen, dropped = [], [], {}, 0
    for path in files:
        record, series, static = read_physionet_stay(path)
        if record in seen:
            raise ClinicalFormatError(f"{path}: duplicate RecordID {record} (also in {seen[record]})")
        seen[record] = path.name
        series, n_drop = _check_variables(series, variables, unknown, str(path), column="Parameter")
        dropped += n_drop
        if series.empty:
            raise ClinicalFormatError(f"{path}: RecordID {record} has no time-series observation "
                                      "(only static descriptors, -1 or dropped variables)")
        frames.append(series.assign(stay_id=record))
        statics.append({"stay_id": record, **{k: v for k, v in static.items() if k != "RecordID"}})
    obs = pd.concat(frames, ignore_index=True)[["stay_id", "time", "variable", "value"]]
    labels = _read_labels(Path(outcomes), "RecordID", label_column, whole_ids=True)
    labels = _attach_labels(obs, labels, str(outcomes), "RecordID")
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


LONG_COLUMNS = ("stay_id", "time", "variable", "value")
TIME_UNITS = {"hours": 1.0, "minutes": 1 / 60, "seconds": 1 / 3600, "days": 24.0}


def load_long_csv(
    observations: str | Path, labels: str | Path, *, variables: Sequence[str] | None = None,
    unknown: str = "error", label_column: str = "label", columns: dict[str, str] | None = None,
    time_unit: str = "hours",
) -> ClinicalData:
    """Long observations (one row per stay, time, variable, value) + a label CSV keyed by the same id.

    ``columns`` maps this loader's names (``stay_id, time, variable, value``) to the file's, e.g.
    ``{"stay_id": "icustay_id", "time": "hours_in"}``; the label file uses the same id column.
    ``time_unit`` says what the time numbers count since admission (hours, minutes, seconds, days) —
    or ``"hh:mm"`` for PhysioNet-style clock strings.
    """
    path = Path(observations)
    names = {**dict(zip(LONG_COLUMNS, LONG_COLUMNS, strict=True)), **(columns or {})}
    unknown_keys = sorted(set(names) - set(LONG_COLUMNS))
    if unknown_keys:
        raise ClinicalFormatError(f"columns: unknown key(s) {unknown_keys}; map any of {list(LONG_COLUMNS)} to your names")
    if time_unit not in (*TIME_UNITS, "hh:mm"):
        raise ClinicalFormatError(f"time_unit {time_unit!r}: expected one of {[*TIME_UNITS, 'hh:mm']}")
    raw = read_table(path, what=f"long observations CSV ({', '.join(names.values())})")
    missing = [names[c] for c in LONG_COLUMNS if names[c] not in raw.columns]
    if missing:
        raise ClinicalFormatError(
            f"{path}: missing column(s) {missing}; found {list(raw.columns)} "
            "(map yours with columns={'stay_id': ..., 'time': ..., 'variable': ..., 'value': ...})")
    if raw.empty:
        raise ClinicalFormatError(f"{path}: no observation rows")
    ids = raw[names["stay_id"]].astype(str).str.strip()
    empty = ids.isin(["", "nan"])
    if empty.any():
        raise ClinicalFormatError(f"{path}: line {ids.index[np.flatnonzero(empty)[0]]}: empty {names['stay_id']}")
    variable = raw[names["variable"]].astype(str).str.strip()
    if variable.isin(["", "nan"]).any():
        raise ClinicalFormatError(f"{path}: line {variable.index[np.flatnonzero(variable.isin(['', 'nan']))[0]]}: "
                                  f"empty {names['variable']}")
    if time_unit == "hh:mm":
        times = parse_hhmm_column(raw[names["time"]], where=str(path))
    else:
        hint = f" (time_unit {time_unit!r}; pass time_unit='hh:mm' for clock strings like 07:45)"
        times = finite_numbers(raw, names["time"], where=path, hint=hint) * TIME_UNITS[time_unit]
    if (times < 0).any():
        line = raw.index[np.flatnonzero(times < 0)[0]]
        raise ClinicalFormatError(f"{path}: line {line}: negative {names['time']} {raw.loc[line, names['time']]!r}; "
                                  "expected time since admission >= 0")
    values = finite_numbers(raw, names["value"], where=path)
    obs = pd.DataFrame({"stay_id": ids.to_numpy(), "time": times, "variable": variable.to_numpy(), "value": values},
                       index=raw.index)
    known = list(variables) if variables is not None else sorted(obs["variable"].unique())
    obs, n_drop = _check_variables(obs, known, unknown, str(path), column=names["variable"])
    y = _read_labels(Path(labels), names["stay_id"], label_column)
    y = _attach_labels(obs, y, str(labels), names["stay_id"])
    obs = obs[["stay_id", "time", "variable", "value"]].sort_values(["stay_id", "time"], kind="stable")
    return ClinicalData(obs.reset_index(drop=True), y, known, None, {"unknown variable rows": n_drop})


def write_long_csv(data: ClinicalData, directory: str | Path, *, columns: dict[str, str] | None = None,
                   label_column: str = "label", time_unit: str = "hours", names: tuple[str, str] = ("observations.csv", "labels.csv"),
                   ) -> tuple[Path, Path]:
    """Write the long format (optionally under the user's column names and time unit) and the label CSV."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rename = {**dict(zip(LONG_COLUMNS, LONG_COLUMNS, strict=True)), **(columns or {})}
    obs = data.obs.copy()
    if time_unit == "hh:mm":
        obs["time"] = [format_hhmm(t) for t in obs["time"]]
    else:
        scaled = obs["time"] / TIME_UNITS[time_unit]
        obs["time"] = scaled if time_unit == "hours" else np.round(scaled, 6)  # hours keep full precision
    obs_path, lab_path = directory / names[0], directory / names[1]
    obs.rename(columns=rename).to_csv(obs_path, index=False)
    pd.DataFrame({rename["stay_id"]: data.labels.index, label_column: data.labels.to_numpy()}).to_csv(lab_path, index=False)
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
    truncation: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def fit_scaler(data: ClinicalData, stay_ids: Sequence[str]) -> pd.DataFrame:
    """Per-variable mean/std on the training stays only (no test statistics leak into training).

    Variables that are right-skewed and positive in the training stays (Urine, Lactate, Bilirubin,
    ...: skewness > 2) are scaled on log1p, flagged in ``log``; one z-score on a 20-fold range would
    squeeze most of a variable into a sliver near its mean and spend the clip on its tail.
    """
    part = data.obs[data.obs["stay_id"].isin(set(stay_ids))]
    grouped = part.groupby("variable")["value"]
    skew = grouped.skew().reindex(data.variables).fillna(0.0)
    positive = (grouped.min().reindex(data.variables).fillna(-1.0) >= 0)
    log = (skew > 2.0) & positive
    values = np.where(part["variable"].map(log).fillna(False).to_numpy(bool), np.log1p(part["value"].clip(lower=0)),
                      part["value"])
    stats = pd.Series(values, index=part.index).groupby(part["variable"]).agg(["mean", "std"]).reindex(data.variables)
    stats["mean"] = stats["mean"].fillna(0.0)
    stats["std"] = stats["std"].fillna(1.0).replace(0, 1.0)
    stats["log"] = log.to_numpy()
    return stats


def scale_values(obs: pd.DataFrame, scaler: pd.DataFrame, var_idx: np.ndarray) -> np.ndarray:
    """z-score each observation with its variable's training statistics (log1p first where flagged)."""
    values = obs["value"].to_numpy(dtype=float)
    if "log" in scaler.columns:
        logged = scaler["log"].to_numpy(bool)[var_idx]
        values = np.where(logged, np.log1p(np.clip(values, 0, None)), values)
    z = (values - scaler["mean"].to_numpy()[var_idx]) / scaler["std"].to_numpy()[var_idx]
    return np.clip(z, -6, 6).astype(np.float32)


def set_starts(times: np.ndarray, window_hours: float) -> np.ndarray:
    """Index of the set each sorted timestamp joins: a set opens at a timestamp and takes every later one
    less than ``window_hours`` after its opening time (0 = one set per distinct timestamp)."""
    if window_hours <= 0:
        return np.arange(len(times))
    group, opened, out = -1, -np.inf, np.empty(len(times), np.int64)
    for i, t in enumerate(times):
        if t - opened >= window_hours:
            group, opened = group + 1, t
        out[i] = group
    return out


def steps_per_stay(data: ClinicalData, window_hours: float = 0.0) -> pd.Series:
    """How many sets (time steps) each stay has once timestamps within ``window_hours`` are merged."""
    return data.obs.groupby("stay_id")["time"].apply(
        lambda t: int(set_starts(np.unique(t.to_numpy()), window_hours).max()) + 1)


def to_set_arrays(data: ClinicalData, scaler: pd.DataFrame, *, max_steps: int, max_set: int | None = None,
                  window_hours: float = 0.0) -> SetArrays:
    """Group each stay's observations into sets (one per timestamp, or per ``window_hours`` window) and
    keep the last ``max_steps`` sets. A set's time is the exact time of its first observation.

    ``truncation`` records what was dropped (steps, observations, stays cut): callers must report it.
    """
    index = {v: i for i, v in enumerate(data.variables)}
    obs = data.obs
    var_idx = obs["variable"].map(index).to_numpy()
    z = scale_values(obs, scaler, var_idx)
    ids = data.labels.index.to_numpy()
    n = len(ids)
    row_of = {s: i for i, s in enumerate(ids)}
    stay_codes = obs["stay_id"].map(row_of).to_numpy()
    t_all = obs["time"].to_numpy()
    order = np.lexsort((t_all, stay_codes))
    bounds = np.flatnonzero(np.diff(stay_codes[order], prepend=-1, append=-2))
    plan = []  # per stay: (row index, observation rows, set index of each row, set times, offset)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[a:b]
        distinct, inverse = np.unique(t_all[rows], return_inverse=True)
        group_of_distinct = set_starts(distinct, window_hours)
        step_of = group_of_distinct[inverse]
        first = np.flatnonzero(np.diff(group_of_distinct, prepend=-1))
        step_times = distinct[first]
        plan.append((stay_codes[rows[0]], rows, step_of, step_times, max(0, len(step_times) - max_steps)))
    kept_rows = [(i, rows[step_of >= off], step_of[step_of >= off] - off) for i, rows, step_of, _, off in plan]
    k_need = max((int(np.bincount(steps).max()) for _, _, steps in kept_rows if len(steps)), default=1)
    k_max = min(max_set or k_need, k_need)
    times = np.zeros((n, max_steps), np.float32)
    step_mask = np.zeros((n, max_steps), bool)
    var = np.zeros((n, max_steps, k_max), np.int64)
    val = np.zeros((n, max_steps, k_max), np.float32)
    elem = np.zeros((n, max_steps, k_max), bool)
    over_set = 0
    for (i, rows, steps), (_, _, _, step_times, off) in zip(kept_rows, plan, strict=True):
        slot = _slot_within_step(steps)
        fits = slot < k_max
        over_set += int((~fits).sum())
        var[i, steps[fits], slot[fits]] = var_idx[rows[fits]]
        val[i, steps[fits], slot[fits]] = z[rows[fits]]
        elem[i, steps[fits], slot[fits]] = True
        kept = step_times[off:]
        times[i, : len(kept)], step_mask[i, : len(kept)] = kept, True
    n_steps = np.array([len(p[3]) for p in plan])
    offsets = np.array([p[4] for p in plan])
    truncation = {
        "max_steps": int(max_steps), "set_window_minutes": round(window_hours * 60, 3),
        "steps_per_stay_median": float(np.median(n_steps)) if len(n_steps) else 0.0,
        "steps_dropped": int(offsets.sum()), "steps_total": int(n_steps.sum()),
        "stays_cut": int((offsets > 0).sum()), "stays": int(len(plan)),
        "observations_dropped": int(len(obs) - sum(len(r) for _, r, _ in kept_rows) + over_set),
        "observations_total": int(len(obs)),
    }
    truncation["observations_dropped_share"] = truncation["observations_dropped"] / max(len(obs), 1)
    return SetArrays(times, step_mask, var, val, elem, data.labels.to_numpy().astype(int), ids,
                     int(offsets.sum()), truncation)


def _slot_within_step(steps: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal (sorted) step indices: an element's position in its set."""
    starts = np.flatnonzero(np.diff(steps, prepend=-1))
    run_start = np.repeat(starts, np.diff(np.append(starts, len(steps))))
    return np.arange(len(steps)) - run_start


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
    grid = np.full((len(row_of), hours, len(data.variables)), np.nan, np.float32)
    h = np.clip(np.floor(obs["time"].to_numpy()).astype(int), 0, hours - 1)
    grid[obs["stay_id"].map(row_of).to_numpy(), h, j] = scale_values(obs, scaler, j)
    return grid


# --------------------------------------------------------------------------- PhysioNet-2012-shaped generator

# name: (centre, spread, severity loading, log-scale?, group, share of stays that have it, draws per 48 h)
# Units and ranges follow PhysioNet 2012's set-a; "loading" is how the patient's severity moves the
# value (in spreads), the known truth a model can find. Groups share charting times (one nurse
# entry), so a step holds several variables; each group also has its own minutes, as in the real files.
_PN_VARS: dict[str, tuple[float, float, float, bool, str, float, float]] = {
    "HR": (87, 15, 0.5, False, "vitals", 0.99, 60), "Temp": (37.0, 0.8, 0.2, False, "vitals", 0.98, 30),
    "RespRate": (19, 5, 0.4, False, "resp", 0.28, 60), "SaO2": (97, 2, -0.3, False, "art", 0.45, 20),
    "SysABP": (119, 22, -0.4, False, "art", 0.6, 55), "DiasABP": (59, 12, -0.3, False, "art", 0.6, 55),
    "MAP": (80, 15, -0.5, False, "art", 0.6, 55), "NISysABP": (119, 22, -0.4, False, "nibp", 0.85, 30),
    "NIDiasABP": (58, 13, -0.3, False, "nibp", 0.85, 30), "NIMAP": (77, 14, -0.5, False, "nibp", 0.85, 30),
    "GCS": (11.5, 3.5, -0.9, False, "neuro", 0.99, 14), "Urine": (4.6, 1.0, -0.5, True, "urine", 0.97, 40),
    "FiO2": (0.5, 0.18, 0.3, False, "vent", 0.65, 14), "MechVent": (1, 0, 0.0, False, "vent", 0.63, 14),
    "Weight": (82, 22, 0.0, False, "urine", 0.6, 10),
    "BUN": (3.1, 0.6, 0.6, True, "chem", 0.99, 4), "Creatinine": (0.2, 0.6, 0.5, True, "chem", 0.99, 4),
    "Glucose": (140, 50, 0.2, False, "chem", 0.99, 4), "HCO3": (23, 4, -0.5, False, "chem", 0.99, 4),
    "K": (4.1, 0.6, 0.2, False, "chem", 0.99, 4), "Mg": (2.0, 0.4, 0.0, False, "chem", 0.98, 4),
    "Na": (139, 5, 0.1, False, "chem", 0.99, 4), "HCT": (30.5, 5, -0.2, False, "cbc", 0.99, 4),
    "Platelets": (5.2, 0.5, -0.4, True, "cbc", 0.99, 4), "WBC": (2.4, 0.5, 0.4, True, "cbc", 0.99, 4),
    "pH": (7.39, 0.07, -0.5, False, "abg", 0.75, 6), "PaCO2": (40, 9, 0.1, False, "abg", 0.75, 6),
    "PaO2": (4.9, 0.5, -0.2, True, "abg", 0.75, 6), "Lactate": (0.8, 0.6, 0.8, True, "lact", 0.45, 4),
    "Albumin": (2.9, 0.6, -0.5, False, "liver", 0.4, 2), "ALP": (4.5, 0.5, 0.2, True, "liver", 0.42, 2),
    "ALT": (3.6, 1.0, 0.3, True, "liver", 0.42, 2), "AST": (3.9, 1.0, 0.4, True, "liver", 0.42, 2),
    "Bilirubin": (0.0, 0.9, 0.4, True, "liver", 0.42, 2), "Cholesterol": (156, 45, -0.1, False, "lipid", 0.08, 1),
    "TroponinI": (1.0, 1.5, 0.3, True, "cardiac", 0.05, 2), "TroponinT": (-2.0, 1.5, 0.3, True, "cardiac", 0.22, 2),
}
_PN_ROUND = {"GCS": 0, "MechVent": 0, "HR": 0, "RespRate": 0, "SaO2": 0, "SysABP": 0, "DiasABP": 0, "MAP": 0,
             "NISysABP": 0, "NIDiasABP": 0, "NIMAP": 0, "Urine": 0, "Platelets": 0, "Na": 0, "BUN": 0, "Glucose": 0}


@dataclasses.dataclass(frozen=True)
class PhysioNetLike:
    """A PhysioNet-2012 set-a look-alike with known truth: ~37 variables in their real units, sparse
    labs, vitals charted at their own irregular minutes over ``hours``, static descriptors at 00:00, and
    a mortality outcome (``positive_rate``) driven by a latent severity path and age.

    ``outcome_strength`` scales the true log-odds (0 = no signal: every method must score chance).
    ``first_id`` sets RecordIDs (PhysioNet's start at 132539). ``charting`` scales every draw rate.
    """

    n_stays: int = 300
    hours: float = 48.0
    outcome_strength: float = 1.5
    positive_rate: float = 0.14
    noise: float = 0.6
    charting: float = 1.0
    first_id: int = 132539
    seed: int = 0


def simulate_physionet_like(sim: PhysioNetLike) -> ClinicalData:
    """Draw stays (long frame in real units, minute-resolution times) with ``truth`` = risk, severity
    paths and per-variable loadings; write them with ``write_physionet_like``."""
    rng = np.random.default_rng(sim.seed)
    n = sim.n_stays
    names = list(_PN_VARS)
    base = rng.normal(0, 1, n)
    drift = rng.normal(0, 0.8, n)
    age = np.clip(rng.normal(64, 17, n), 16, 90).round()
    end_severity = base + drift
    score = end_severity / end_severity.std() + 0.5 * (age - 64) / 17
    score = sim.outcome_strength * score
    prob = 1 / (1 + np.exp(-(score + _intercept_for_rate(score, sim.positive_rate))))
    labels = (rng.uniform(size=n) < prob).astype(int)
    groups = sorted({spec[4] for spec in _PN_VARS.values()})
    rows: list[tuple[int, float, str, float]] = []
    for s in range(n):
        has = {v: rng.uniform() < spec[5] for v, spec in _PN_VARS.items()}
        has["MechVent"] = has["FiO2"] = has["MechVent"] or has["FiO2"]
        for group in groups:
            members = [v for v in names if _PN_VARS[v][4] == group and has[v]]
            if not members:
                continue
            rate = max(_PN_VARS[v][6] for v in members) * sim.charting / 48.0
            n_draws = max(1, rng.poisson(rate * sim.hours))
            minutes = np.unique(rng.integers(1, int(sim.hours * 60), n_draws))
            for m in minutes:
                t = m / 60.0
                severity = base[s] + drift[s] * t / sim.hours + 0.3 * np.sin(t / 7 + s)
                for v in members:
                    if rng.uniform() < 0.1:  # a variable skipped at this charting event
                        continue
                    centre, spread, load, log, *_ = _PN_VARS[v]
                    x = centre + spread * (load * severity + sim.noise * rng.normal())
                    rows.append((s, t, v, float(np.exp(x)) if log else x))
    obs = pd.DataFrame(rows, columns=["row", "time", "variable", "value"])
    obs = _clip_to_physiology(obs)
    ids = np.array([str(sim.first_id + s) for s in range(n)])
    obs.insert(0, "stay_id", ids[obs.pop("row").to_numpy()])
    obs = obs.sort_values(["stay_id", "time"], kind="stable").reset_index(drop=True)
    static = pd.DataFrame({"Age": age, "Gender": rng.integers(0, 2, n).astype(float),
                           "Height": np.where(rng.uniform(size=n) < 0.5, -1.0, rng.normal(170, 10, n).round(1)),
                           "ICUType": rng.integers(1, 5, n).astype(float)}, index=ids)
    y = pd.Series(labels, index=ids, name="label").loc[sorted(obs["stay_id"].unique())]
    truth = {"risk": pd.Series(prob, index=ids), "severity_end": pd.Series(end_severity, index=ids),
             "loadings": {v: spec[2] for v, spec in _PN_VARS.items()}}
    return ClinicalData(obs, y, list(PHYSIONET_VARIABLES), static.loc[y.index], {}, truth)


def _clip_to_physiology(obs: pd.DataFrame) -> pd.DataFrame:
    """Round to the real files' precision and keep values in plausible ranges (GCS 3–15, FiO2 ≤ 1, ...)."""
    v, x = obs["variable"], obs["value"].to_numpy().copy()
    bounds = {"GCS": (3, 15), "FiO2": (0.21, 1.0), "SaO2": (60, 100), "pH": (6.8, 7.8), "MechVent": (1, 1),
              "Temp": (32, 42), "HR": (20, 220)}
    for name, (lo, hi) in bounds.items():
        sel = (v == name).to_numpy()
        x[sel] = np.clip(x[sel], lo, hi)
    x = np.maximum(x, 0.0)
    for name, digits in _PN_ROUND.items():
        sel = (v == name).to_numpy()
        x[sel] = np.round(x[sel], digits)
    return obs.assign(value=np.round(x, 3))


def write_physionet_like(data: ClinicalData, directory: str | Path, outcomes_name: str = "Outcomes-a.txt") -> Path:
    """Write ``directory/<RecordID>.txt`` exactly as PhysioNet 2012 ships them (static descriptors at
    00:00 first, ``-1`` for a missing Height) and ``Outcomes-a.txt`` with all six of its columns."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    static = data.static if data.static is not None else pd.DataFrame(index=data.labels.index)
    for stay, group in data.obs.groupby("stay_id", sort=True):
        head = [f"00:00,RecordID,{stay}"]
        head += [f"00:00,{k},{_fmt(static.loc[stay, k])}" for k in ("Age", "Gender", "Height", "ICUType")
                 if k in static.columns]
        body = [f"{format_hhmm(t)},{v},{_fmt(x)}" for t, v, x in group[["time", "variable", "value"]].itertuples(index=False)]
        (directory / f"{stay}.txt").write_text("Time,Parameter,Value\n" + "\n".join(head + body) + "\n")
    n = len(data.labels)
    rng = np.random.default_rng(n)
    outcomes = pd.DataFrame({"RecordID": data.labels.index, "SAPS-I": rng.integers(5, 25, n),
                             "SOFA": rng.integers(0, 15, n), "Length_of_stay": rng.integers(2, 40, n),
                             "Survival": np.where(data.labels.to_numpy() == 1, rng.integers(2, 40, n), -1),
                             "In-hospital_death": data.labels.to_numpy()})
    out = directory.parent / outcomes_name
    outcomes.to_csv(out, index=False)
    return out


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"
