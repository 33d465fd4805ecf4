"""Study parameters (presets, strict validation) and atomic result writing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from latentlab import io
from latentlab.params import ParameterError
from latentlab.studies.h2 import H2Params


def test_presets_differ_in_size():
    quick, standard, full = (H2Params.from_preset(p) for p in ("quick", "standard", "full"))
    assert quick.n_cells < standard.n_cells and standard.n_genes < full.n_genes == 18683


def test_unknown_parameter_is_named():
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['chip_efect'\]"):
        H2Params.from_preset("quick", chip_efect=0.5)


def test_unknown_preset_is_named():
    with pytest.raises(ParameterError, match="unknown preset 'huge'"):
        H2Params.from_preset("huge")


def test_out_of_range_and_wrong_type_are_named():
    with pytest.raises(ParameterError, match=r"H2Params.epochs = 0: must be >= 1"):
        H2Params.from_preset("quick", epochs=0)
    with pytest.raises(ParameterError, match=r"H2Params.epochs: expected int, got 'ten'"):
        H2Params.from_preset("quick", epochs="ten")
    with pytest.raises(ParameterError, match="mitigations"):
        H2Params.from_preset("quick", mitigations=["magic"])


def test_none_keeps_the_preset_value_and_namespace_is_read():
    params = H2Params.from_namespace({"preset": "standard", "seed": None, "chip_effect": 0, "unrelated": 1})
    assert params.seed == 0 and params.chip_effect == 0.0 and params.n_cells == 2418


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    io.write_json(target, {"ok": 1})

    def boom(path):
        path.write_text('{"half":')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"ok": 1}
    assert list(tmp_path.iterdir()) == [target]


def test_json_and_csv_writers(tmp_path):
    io.write_json(tmp_path / "m.json", {"nan": float("nan"), "x": 1.5})
    assert json.loads((tmp_path / "m.json").read_text()) == {"nan": None, "x": 1.5}
    io.write_csv(tmp_path / "t.csv", pd.DataFrame({"a": [1, 2]}))
    assert pd.read_csv(tmp_path / "t.csv").a.tolist() == [1, 2]
