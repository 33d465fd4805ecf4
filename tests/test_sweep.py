"""Sweeps on a real Dask LocalCluster: completion, collection, failure isolation, resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentlab import cli, sweep

NOTEBOOK = Path(__file__).parent / "fixtures" / "sweep_probe.ipynb"


def write_grid(tmp_path, xs, seeds=(0, 1)):
    path = tmp_path / "grid.yaml"
    path.write_text(f"base: {{preset: quick}}\ngrid:\n  x: {list(xs)}\n  seed: {list(seeds)}\n")
    return path


def test_grid_points_are_the_cartesian_product(tmp_path):
    base, points = sweep.load_grid(write_grid(tmp_path, [1, 2, 3]))
    assert base == {"preset": "quick"} and len(points) == 6
    assert points[0].key == "seed=0__x=1"


@pytest.mark.parametrize("text, message", [
    ("grid: {}\n", "non-empty 'grid"),
    ("grid: {x: 3}\n", "axis 'x' must be a non-empty list"),
    ("base: {x: 1}\ngrid: {x: [1]}\n", r"\['x'\] appear in both base and grid"),
    ("grid: {x: [1]}\nextra: 1\n", r"unknown top-level key\(s\) \['extra'\]"),
    ("grid: [unclosed\n", "not valid YAML"),
])
def test_bad_grid_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(sweep.GridError, match=message):
        sweep.load_grid(path)


def test_four_points_on_two_workers_complete_and_collect(tmp_path):
    out = tmp_path / "sweep"
    status = sweep.run_sweep(NOTEBOOK, write_grid(tmp_path, [2, 3]), out_dir=out, workers=2)
    assert status.ok.all() and len(status) == 4
    table = sweep.collect(out)
    assert sorted(table["square"]) == [4, 4, 9, 9]
    assert set(table.columns) >= {"point", "param.x", "param.seed", "square", "nested.double"}
    assert (out / "results.csv").exists() and (out / "results.parquet").exists()
    assert all((out / p / "notebook.ipynb").exists() for p in table.point)
    summary = sweep.summarise(sweep.load_results(out))  # the probe's metrics: square and nested.double
    assert summary.set_index(["x", "metric"])["mean"].to_dict() == {
        (2, "square"): 4, (2, "nested.double"): 4, (3, "square"): 9, (3, "nested.double"): 6}
    assert (summary["n"] == 2).all() and (summary["sd"] == 0).all()
    assert (out / "summary.csv").exists() and (out / "summary.png").exists() and (out / "grid.yaml").exists()


def test_a_failing_point_is_reported_and_the_rest_kept_then_skipped_on_rerun(tmp_path, capsys):
    out = tmp_path / "sweep"
    grid = write_grid(tmp_path, [-1, 2])
    code = cli.main(["sweep", str(NOTEBOOK), "--grid", str(grid), "--out", str(out), "--workers", "2"])
    assert code == 1
    captured = capsys.readouterr()
    assert "summary over seeds" in captured.out and "4.000 ± 0.000" in captured.out  # the two x=2 points
    err = captured.err
    assert "FAILED seed=0__x=-1: ValueError: x must be >= 0, got -1" in err
    assert len(sweep.collect(out)) == 2  # both x=2 points finished and were collected
    rerun = sweep.run_sweep(NOTEBOOK, grid, out_dir=out, workers=1)
    assert rerun[rerun.skipped].ok.all() and rerun.skipped.sum() == 2
    assert (~rerun.ok).sum() == 2  # the failing points ran again and failed again


GRIDS = {
    "recon_ablation.yaml": "latentlab.studies.recon:ReconParams",
    "setvae_ablation.yaml": "latentlab.studies.setvae:SetVAEParams",
    "h2_weights.yaml": "latentlab.studies.h2:H2Params",
}


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_shipped_grids_name_only_real_parameters(name):
    """Every point of every shipped grid builds a valid Params (names and ranges), without running."""
    import importlib

    module, cls = GRIDS[name].split(":")
    params_cls = getattr(importlib.import_module(module), cls)
    path = Path(__file__).parents[1] / "params" / name
    base, points = sweep.load_grid(path)
    preset = base.get("preset", "quick")
    fixed = {k: v for k, v in base.items() if k != "preset"}
    for point in points:
        params_cls.from_preset(preset, **fixed, **point.params)
    assert len({p.key for p in points}) == len(points)
