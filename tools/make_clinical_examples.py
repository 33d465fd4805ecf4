"""Write Study 4's real-format examples (PhysioNet-2012 set-a files and a long CSV under other column names),
generated here with known truth — never downloaded.

    python tools/make_clinical_examples.py OUT_DIR [--stays 300] [--seed 0] [--strength 1.5]

writes OUT_DIR/physionet/set-a/<RecordID>.txt + OUT_DIR/physionet/Outcomes-a.txt, OUT_DIR/long/events.csv
(icustay, minutes_in, item, valuenum; minutes since admission) + OUT_DIR/long/outcome.csv (icustay, died),
and OUT_DIR/truth.csv (each stay's true risk).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from latentlab.setvae import data as clinical

LONG_COLUMNS = {"stay_id": "icustay", "time": "minutes_in", "variable": "item", "value": "valuenum"}


def make_examples(out: Path, *, stays: int = 300, seed: int = 0, strength: float = 1.5) -> dict[str, Path]:
    data = clinical.simulate_physionet_like(clinical.PhysioNetLike(n_stays=stays, seed=seed, outcome_strength=strength))
    outcomes = clinical.write_physionet_like(data, out / "physionet" / "set-a")
    events, labels = clinical.write_long_csv(data, out / "long", columns=LONG_COLUMNS, label_column="died",
                                             time_unit="minutes", names=("events.csv", "outcome.csv"))
    truth = out / "truth.csv"
    data.truth["risk"].rename("risk").to_frame().assign(label=data.labels).to_csv(truth, index_label="stay_id")
    return {"set-a": out / "physionet" / "set-a", "outcomes": outcomes, "events": events, "labels": labels, "truth": truth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--stays", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strength", type=float, default=1.5)
    args = parser.parse_args()
    for name, path in make_examples(args.out, stays=args.stays, seed=args.seed, strength=args.strength).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
