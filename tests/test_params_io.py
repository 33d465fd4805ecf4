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
