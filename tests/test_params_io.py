"""Study parameters (presets, strict validation) and atomic result writing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from latentlab import io
from latentlab.h2.pipeline import H2Params
from latentlab.params import ParameterError


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
    io.write_json(tmp_path / "m.json", {"nan": float("nan"), "x": 1.5, "auroc": {"sd": [0.1, float("-inf")]}})
    assert json.loads((tmp_path / "m.json").read_text()) == {  # null, never silently: every one is listed
        "nan": None, "x": 1.5, "auroc": {"sd": [0.1, None]}, "non_finite": {"nan": "nan", "auroc.sd[1]": "-inf"}}
    with pytest.raises(ValueError, match=r"\[1\] is inf, which JSON cannot hold"):
        io.write_json(tmp_path / "list.json", [1.0, float("inf")])
    assert not (tmp_path / "list.json").exists()
    io.write_csv(tmp_path / "t.csv", pd.DataFrame({"a": [1, 2]}))
    assert pd.read_csv(tmp_path / "t.csv").a.tolist() == [1, 2]


# --------------------------------------------------------------------------- bad parameters


def injected(**values) -> str:
    """The exact cell text papermill injects for ``-p``/``-y`` values."""
    from papermill.translators import PythonTranslator

    return PythonTranslator.codify(values)


PARAMETERS_CELL = 'preset = "quick"\nseed = None\nchip_effect = None\nprobes = None\nmitigations = None\npenalty_weights = None\n'


def from_cells(*cells: str) -> H2Params:
    """``from_namespace`` over an IPython history: '' first, the cells, then the reading cell."""
    history = ["", *cells, "params = H2Params.from_namespace(globals())"]
    return H2Params.from_namespace({"In": history, "chip_effect": "a result, never read"})


BAD_PARAMETERS = [  # (cells, the exact text the message must hold)
    ((PARAMETERS_CELL, injected(chip_efect=0)),
     "unknown parameter(s) ['chip_efect'] in papermill's injected parameters: 'chip_efect' (did you mean 'chip_effect'?)"),
    ((PARAMETERS_CELL + "n_cels = 5\n",), "unknown parameter(s) ['n_cels'] in the parameters cell (In[1]): "
                                          "'n_cels' (did you mean 'n_cells'?)"),
    ((PARAMETERS_CELL, injected(epochs=True)), "H2Params.epochs: expected int, got True (bool)"),
    ((PARAMETERS_CELL, injected(epochs=5.0)), "H2Params.epochs: expected int, got 5.0 (float)"),
    ((PARAMETERS_CELL, injected(lr=float("inf"))), "H2Params.lr: inf is not a finite number"),
    ((PARAMETERS_CELL, injected(chip_effect=float("nan"))), "H2Params.chip_effect: nan is not a finite number"),
    ((PARAMETERS_CELL, injected(probes="knn")), "H2Params.probes: expected a list, got the string 'knn'; "
                                                "pass a list with papermill's -y"),
    ((PARAMETERS_CELL, injected(probes='["knn", ')), "H2Params.probes: the string '[\"knn\", ' is not a valid list"),
    ((PARAMETERS_CELL, injected(probes=["knn", 3])), "H2Params.probes[1]: expected str, got 3 (int)"),
    ((PARAMETERS_CELL, injected(penalty_weights={"mmd": [0.1, "high"]})),
     "H2Params.penalty_weights['mmd'][1]: expected float, got 'high' (str)"),
    ((PARAMETERS_CELL, injected(seed=2**40)), "H2Params.seed = 1099511627776: must be in [0, 4294967295]"),
    ((PARAMETERS_CELL, injected(seed=-1)), "H2Params.seed = -1: must be in [0, 4294967295]"),
    ((PARAMETERS_CELL + "epochs = 2 * 5\n",), "H2Params.epochs in the parameters cell (In[1]): `epochs = 2 * 5` "
                                              "is not a plain literal"),
    ((PARAMETERS_CELL, injected(preset="huge")), "H2Params: unknown preset 'huge'"),
]


@pytest.mark.parametrize("cells, message", BAD_PARAMETERS, ids=[m[:40] for _, m in BAD_PARAMETERS])
def test_bad_parameters_are_refused_naming_the_parameter(cells, message):
    with pytest.raises(ParameterError) as caught:
        from_cells(*cells)
    assert message in str(caught.value)


def test_papermill_values_override_the_cell_and_json_text_lists_are_read():
    params = from_cells(PARAMETERS_CELL, injected(chip_effect=0, probes='["knn"]', mitigations=["mmd"],
                                                  penalty_weights={"mmd": [1]}))
    assert params.chip_effect == 0.0 and params.probes == ["knn"] and params.penalty_weights == {"mmd": [1.0]}
    assert isinstance(params.penalty_weights["mmd"][0], float)
    assert from_cells(PARAMETERS_CELL).chip_effect == 0.3  # the result variable in globals is never read


def test_without_stored_history_the_namespace_is_read_quietly(recwarn):
    """nbval executes cells with store_history=False: ``In`` is only ['']."""
    params = H2Params.from_namespace({"In": [""], "preset": "quick", "chip_effect": 0})
    assert params.chip_effect == 0.0 and not recwarn.list
    with pytest.warns(UserWarning, match="no parameters cell"):
        H2Params.from_namespace({"In": ["", "x = compute()"], "chip_effect": 0})


def test_subclass_limits_and_require_range_name_the_element():
    import dataclasses

    from latentlab.params import StudyParams

    @dataclasses.dataclass(frozen=True)
    class Sized(StudyParams):
        n_items: int = 10
        dims: list[int] = dataclasses.field(default_factory=lambda: [8, 8])
        PRESETS = {"quick": {}}
        LIMITS = {"n_items": (1, 1000), "dims": (1, 512)}

    assert Sized.from_preset("quick", dims=[4]).dims == [4]
    with pytest.raises(ParameterError, match=r"Sized.n_items = 0: must be in \[1, 1000\]"):
        Sized.from_preset("quick", n_items=0)
    with pytest.raises(ParameterError, match=r"Sized.dims = \[8, 4096\] \(element 1: 4096\): must be in \[1, 512\]"):
        Sized.from_preset("quick", dims=[8, 4096])
    with pytest.raises(ParameterError, match=r"Sized.dims\[0\]: expected int, got True"):
        Sized.from_preset("quick", dims=[True])


# --------------------------------------------------------------------------- one generation of outputs


def outputs(out, value, **extra):
    return io.write_study_outputs(out, params={"seed": value}, metrics={"value": value},
                                  tables={"scores": pd.DataFrame({"v": [value]}), **extra})


def test_a_generation_replaces_the_previous_results_and_keeps_what_it_does_not_own(tmp_path):
    out = tmp_path / "study"
    outputs(out, 1, old_only=pd.DataFrame({"a": [1]}))
    (out / "data").mkdir()
    (out / "data" / "X.mtx").write_text("simulated")
    (out / "01_study.ipynb").write_text("{}")  # papermill's executed notebook, written during the run
    (out / "my_notes.txt").write_text("mine")
    outputs(out, 2)
    assert sorted(p.name for p in out.iterdir()) == [".generation.json", "01_study.ipynb", "data", "metrics.json",
                                                     "my_notes.txt", "scores.csv"]  # old_only.csv went with gen 1
    assert (out / "data" / "X.mtx").read_text() == "simulated" and (out / "my_notes.txt").read_text() == "mine"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["value"] == 2 and metrics["params"] == {"seed": 2}
    info = metrics["run_info"]
    assert set(info) == {"written_at", "params_fingerprint", "git_commit", "git_dirty"}
    assert info["written_at"].endswith("+00:00") and len(info["params_fingerprint"]) == 16
    assert [p.name for p in tmp_path.iterdir()] == ["study"]  # no temp directory left beside it


def test_a_run_that_dies_midway_leaves_the_previous_generation_whole(tmp_path):
    out = tmp_path / "study"
    outputs(out, 1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    class Broken:
        def save(self, *args, **kwargs):
            raise RuntimeError("vl-convert crashed")

    with pytest.raises(RuntimeError, match="vl-convert crashed"):
        io.write_study_outputs(out, params={"seed": 2}, metrics={"value": 2},
                               tables={"scores": pd.DataFrame({"v": [2]})}, charts={"chart": Broken()})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["study"]


def test_leftovers_of_a_killed_run_are_cleaned_or_restored(tmp_path):
    out = tmp_path / "study"
    outputs(out, 1)
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (tmp_path / f".study.new-{dead}-abc").mkdir()
    outputs(out, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["study"]
    out.rename(tmp_path / f".study.old-{dead}-xyz")  # killed between the two renames of a swap
    outputs(out, 3)
    assert json.loads((out / "metrics.json").read_text())["value"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["study"]
