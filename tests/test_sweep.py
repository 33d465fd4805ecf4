"""Sweeps on a real Dask LocalCluster: completion, collection, failure isolation, resume."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import distributed  # noqa: F401 - loads its config defaults before any dask.config.set below
import pandas as pd
import pytest

from latentlab import cli
from latentlab.sweep import grid as sweep_grid
from latentlab.sweep import results as sweeps
from latentlab.sweep import run as sweep_run

NOTEBOOK = Path(__file__).parent / "fixtures" / "sweep_probe.ipynb"


def write_grid(tmp_path, xs, seeds=(0, 1)):
    path = tmp_path / "grid.yaml"
    path.write_text(f"base: {{preset: quick}}\ngrid:\n  x: {list(xs)}\n  seed: {list(seeds)}\n")
    return path


def test_grid_points_are_the_cartesian_product(tmp_path):
    base, points = sweep_grid.load_grid(write_grid(tmp_path, [1, 2, 3]))
    assert base == {"preset": "quick"} and len(points) == 6
    assert points[0].key == "seed=0__x=1"


@pytest.mark.parametrize("text, message", [
    ("grid: {}\n", "non-empty 'grid"),
    ("grid: {x: 3}\n", "axis 'x' must be a non-empty list"),
    ("base: {x: 1}\ngrid: {x: [1]}\n", r"\['x'\] appear in both base and grid"),
    ("grid: {x: [1]}\nextra: 1\n", r"unknown top-level key\(s\) \['extra'\]"),
    ("grid: [unclosed\n", "not valid YAML"),
    ("grid: {x: [1, 2, 1]}\n", r"axis 'x' lists the value\(s\) \['1'\] more than once"),
])
def test_bad_grid_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(sweep_grid.GridError, match=message):
        sweep_grid.load_grid(path)


def test_four_points_on_two_workers_complete_and_collect(tmp_path):
    out = tmp_path / "sweep"
    status = sweep_run.run_sweep(NOTEBOOK, write_grid(tmp_path, [2, 3]), out_dir=out, workers=2)
    assert status.ok.all() and len(status) == 4
    table = sweeps.collect(out)
    assert sorted(table["square"]) == [4, 4, 9, 9]
    assert set(table.columns) >= {"point", "param.x", "param.seed", "square", "nested.double"}
    assert (out / "results.csv").exists() and (out / "results.parquet").exists()
    assert all((out / p / "notebook.ipynb").exists() for p in table.point)
    summary = sweeps.summarise(sweeps.load_results(out))  # the probe's metrics: square and nested.double
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
    status = pd.read_csv(out / "status.csv").set_index("point")
    assert status.state.to_dict() == {"seed=0__x=-1": "failed", "seed=0__x=2": "done",
                                      "seed=1__x=-1": "failed", "seed=1__x=2": "done"}
    assert len(sweeps.collect(out)) == 2  # both x=2 points finished and were collected
    rerun = sweep_run.run_sweep(NOTEBOOK, grid, out_dir=out, workers=1)
    assert rerun[rerun.skipped].ok.all() and rerun.skipped.sum() == 2
    assert (~rerun.ok).sum() == 2  # the failing points ran again and failed again


GRIDS = {
    "recon.yaml": "latentlab.recon.pipeline:ReconParams",
    "setvae.yaml": "latentlab.setvae.pipeline:SetVAEParams",
    "h2.yaml": "latentlab.h2.pipeline:H2Params",
}


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_shipped_grids_name_only_real_parameters(name):
    """Every point of every shipped grid builds a valid Params (names and ranges), without running."""
    import importlib

    module, cls = GRIDS[name].split(":")
    params_cls = getattr(importlib.import_module(module), cls)
    path = Path(__file__).parents[1] / "params" / name
    base, points = sweep_grid.load_grid(path)
    preset = base.get("preset", "quick")
    fixed = {k: v for k, v in base.items() if k != "preset"}
    for point in points:
        params_cls.from_preset(preset, **fixed, **point.params)
    assert len({p.key for p in points}) == len(points)


def test_a_point_that_kills_its_worker_is_failed_and_the_rest_collected(tmp_path):
    """KilledWorker used to escape run_sweep and lose every finished point's row."""
    out = tmp_path / "sweep"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # no retries of the killer point
        status = sweep_run.run_sweep(NOTEBOOK, write_grid(tmp_path, [99, 2], seeds=[0]), out_dir=out, workers=2)
    states = status.set_index("point")
    assert states.loc["seed=0__x=2", "state"] == "done"
    assert states.loc["seed=0__x=99", "state"] == "failed"
    assert "KilledWorker: the Dask worker running this point died" in states.loc["seed=0__x=99", "error"]
    assert len(pd.read_csv(out / "status.csv")) == 2
    assert sweeps.collect(out)["point"].tolist() == ["seed=0__x=2"]


def test_grid_values_1_and_string_1_get_their_own_points(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text('grid:\n  x: [1, "1", a/b, a-b]\n')
    keys = [p.key for p in sweep_grid.load_grid(path)[1]]
    assert len(set(keys)) == 4 and all(k.startswith("x=1--h") for k in keys[:2])
    assert keys[2] != keys[3] and keys[2].startswith("x=a-b--h")
    plain = tmp_path / "plain.yaml"
    plain.write_text("grid:\n  x: [1, 2]\n")  # no collision: keys stay as before (old sweeps resume)
    assert [p.key for p in sweep_grid.load_grid(plain)[1]] == ["x=1", "x=2"]


# --------------------------------------------------------------------------- collecting damaged sweeps


def finished_point(sweep_dir: Path, key: str, x: int, *, done: str | None = None, metrics: str | None = None) -> None:
    """A point as execute_point leaves it, optionally with a damaged done.json or metrics.json."""
    point = sweep_dir / key
    point.mkdir(parents=True)
    (point / "metrics.json").write_text(metrics if metrics is not None else json.dumps({"square": x * x, "seed": 0}))
    (point / "done.json").write_text(done if done is not None else json.dumps({"parameters": {"x": x, "seed": 0}}))


DAMAGED = {  # what is wrong: (done.json text, metrics.json text, what the message must say)
    "truncated metrics.json": (None, '{"square": 4, "se', "metrics.json: not valid JSON at line 1, column"),
    "empty metrics.json": (None, "", "metrics.json: empty file"),
    "truncated done.json": ('{"parameters": {"x"', None, "done.json: not valid JSON at line 1, column"),
    "empty done.json": ("", None, "done.json: empty file"),
    "done.json without parameters": ('{"seconds": 3}', None, "done.json: expected {\"parameters\""),
    "done.json is a list": ("[1, 2]", None, "done.json: expected {\"parameters\""),
    "metrics.json is a list": (None, "[4]", "metrics.json: expected a JSON object, found list"),
    "metrics.json is binary": (None, "\x00\x01 gzip?", "metrics.json: not valid JSON"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_one_damaged_point_is_named_and_the_others_still_collected(tmp_path, kind):
    done, metrics, message = DAMAGED[kind]
    sweep_dir = tmp_path / "sweep"
    finished_point(sweep_dir, "seed=0__x=2", 2)
    finished_point(sweep_dir, "seed=0__x=3", 3, done=done, metrics=metrics)
    with pytest.warns(UserWarning, match="sweep point seed=0__x=3 left out"):
        table = sweeps.collect(sweep_dir, summary=False)
    assert table["point"].tolist() == ["seed=0__x=2"] and table["square"].tolist() == [4]
    error = table.attrs["unreadable"]["seed=0__x=3"]
    assert str(sweep_dir / "seed=0__x=3") in error and message in error


def test_a_damaged_or_stale_done_json_is_rerun_not_skipped(tmp_path):
    out = tmp_path / "sweep"
    grid = write_grid(tmp_path, [2], seeds=[0])
    finished_point(out, "seed=0__x=2", 2, metrics='{"square": ')  # cut off mid-write by a crash
    assert sweep_run._finished(out / "seed=0__x=2", {"preset": "quick", "x": 2, "seed": 0}) is not True
    stale = tmp_path / "stale"
    finished_point(stale, "seed=0__x=2", 2, done=json.dumps({"parameters": {"preset": "quick", "x": "2", "seed": 0}}))
    assert "written for other parameters" in sweep_run._finished(stale / "seed=0__x=2", {"preset": "quick", "x": 2,
                                                                                        "seed": 0})
    status = sweep_run.run_sweep(NOTEBOOK, grid, out_dir=out, workers=1)
    assert status.state.tolist() == ["done"] and not status.skipped.any()
    assert sweeps.collect(out)["square"].tolist() == [4]


def test_status_table_lists_points_never_reported_as_missing(tmp_path):
    points = sweep_grid.load_grid(write_grid(tmp_path, [1, 2], seeds=[0]))[1]
    table = sweep_run.status_table(points, {"seed=0__x=1": {"state": "done", "skipped": False, "seconds": 1.0,
                                                        "error": None}}, tmp_path)
    assert table.state.tolist() == ["done", "missing"] and table.ok.tolist() == [True, False]
    assert "never reported" in table.error.iloc[1]
