"""Every shipped sweep grid (params/*.yaml) names its study's notebook and only parameters that study
validates, so a sweep never starts points that its first cell would refuse."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from latentlab.params import ParameterError
from latentlab.sweep.grid import read_grid

ROOT = Path(__file__).resolve().parents[1]
GRIDS = sorted((ROOT / "params").glob("*.yaml"))
PARAMS_OF = {  # notebook → (module, Params class)
    "01_h2.ipynb": ("latentlab.h2.pipeline", "H2Params"),
    "02_sfmn.ipynb": ("latentlab.sfmn.pipeline", "SFMNParams"),
    "03_recon.ipynb": ("latentlab.recon.pipeline", "ReconParams"),
    "04_setvae.ipynb": ("latentlab.setvae.pipeline", "SetVAEParams"),
}


def params_class(notebook: str) -> type:
    module, name = PARAMS_OF[Path(notebook).name]
    return getattr(importlib.import_module(module), name)


def test_every_study_ships_a_grid():
    named = {Path(yaml.safe_load(p.read_text())["notebook"]).name for p in GRIDS}
    assert named == set(PARAMS_OF), f"studies without a grid in params/: {sorted(set(PARAMS_OF) - named)}"


@pytest.mark.parametrize("grid_file", GRIDS, ids=lambda p: p.name)
def test_every_point_of_a_shipped_grid_is_valid_for_its_study(grid_file):
    spec = yaml.safe_load(grid_file.read_text())
    assert (ROOT / spec["notebook"]).exists(), f"{grid_file.name}: notebook {spec['notebook']} not found"
    grid = read_grid(grid_file)
    cls = params_class(spec["notebook"])
    for point in grid.points:
        values = {**grid.base, **point.params}
        cls.from_preset(values.pop("preset", "quick"), **values)  # raises ParameterError naming the field


def test_a_grid_with_a_misspelt_parameter_is_caught(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("notebook: notebooks/02_sfmn.ipynb\nbase: {preset: quick}\ngrid: {gaet: [sigmoid, rescaled]}\n")
    grid = read_grid(bad)
    with pytest.raises(ParameterError, match="gaet"):
        params_class("02_sfmn.ipynb").from_preset("quick", **grid.points[0].params)
