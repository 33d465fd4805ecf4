"""Study 2 steps on a user's files: parameters that name them, settings the data decides, and training on
data the simulator's defaults never see (three cell lines, no features, no truth)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from latentlab.params import ParameterError
from latentlab.sfmn import data as epi
from latentlab.sfmn import pipeline as S


def user_files(tmp_path, n_cells=3, names=("Alpha", "Beta", "Gamma")):
    sim = epi.EpiSimulation(n_cell_lines=n_cells, n_motifs=4, n_enhancers=200, n_promoters=80,
                            pairs_per_cell_line=160, enhancer_len=120, promoter_len=100, positive_rate=0.1,
                            cell_names=tuple(names[:n_cells]), seed=2)
    return epi.write_epi(epi.simulate_epi(sim), tmp_path)


def test_file_parameters_are_checked_and_missing_files_name_the_parameter(tmp_path):
    with pytest.raises(ParameterError, match=r"SFMNParams.data = 'simulated'.*`pairs` names a file"):
        S.SFMNParams.from_preset("quick", data="simulated", pairs="p.csv", sequences="s.fa")
    with pytest.raises(ParameterError, match=r"SFMNParams.genome = ''.*exactly one of `genome`"):
        S.SFMNParams.from_preset("quick", pairs="p.csv")
    with pytest.raises(ParameterError, match=r"SFMNParams.coordinates = 'zero'"):
        S.SFMNParams.from_preset("quick", coordinates="zero")
    params = S.SFMNParams.from_preset("quick", pairs=str(tmp_path / "nope.csv"), sequences="s.fa",
                                      output_dir=str(tmp_path / "run"))
    with pytest.raises(epi.DataError, match=r"SFMNParams.pairs = '.*nope.csv': file not found"):
        S.load(params)


def test_held_out_cell_lines_follow_the_data_names():
    params = S.SFMNParams.from_preset("quick")
    assert S.test_cell_lines([f"CL{i:02d}" for i in range(8)], params) == ["CL02", "CL05"]
    assert S.test_cell_lines(["K562", "GM12878", "HeLa", "IMR90", "HUVEC"], params) == ["GM12878", "IMR90"]
    assert S.test_cell_lines(["a", "b"], params) == ["a", "b"]
    everyone = S.SFMNParams.from_preset("standard")
    assert S.test_cell_lines(list("abcdef"), everyone) == list("abcdef")


def test_three_cell_lines_without_features_train_and_pass_the_contract(tmp_path):
    paths = user_files(tmp_path)
    params = S.SFMNParams.from_preset("quick", pairs=str(paths["pairs"]), sequences=str(paths["sequences"]),
                                      motifs=str(paths["motifs"]), output_dir=str(tmp_path / "run"), epochs=2,
                                      phase2_epochs=1, progress=False, test_cell_lines=["Beta"])
    data = S.load(params)
    params, notes = S.fit_to_data(params, data)
    assert params.cell_encoder == "support" and params.n_val_cell_lines == 1
    assert params.alpha == 0 and params.delta == 0 and any("alpha and delta → 0" in n for n in notes)
    split = S.loco_splits(data, params)[0]
    inputs = S.PairInputs(data, params.encoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.GateWarning)
        for kind in S.MODELS:
            trained = S.train_model(kind, data, inputs, split, params, 0)  # runs train.fit's contract check
            row = S.evaluate(trained, data, inputs, split)
            assert np.isfinite(row["test_aupr"]) and "gate_recovery_unseen" not in row  # no truth: not scored


def test_two_cell_lines_are_refused_with_the_reason(tmp_path):
    paths = user_files(tmp_path, n_cells=2)
    params = S.SFMNParams.from_preset("quick", pairs=str(paths["pairs"]), sequences=str(paths["sequences"]),
                                      output_dir=str(tmp_path / "run"))
    with pytest.raises(epi.DataError, match=r"pairs.csv .*2 cell line\(s\) \['Alpha', 'Beta'\]; leaving one out"):
        S.fit_to_data(params, S.load(params))


def test_features_requested_without_a_table_names_the_parameter(tmp_path):
    paths = user_files(tmp_path)
    params = S.SFMNParams.from_preset("quick", pairs=str(paths["pairs"]), sequences=str(paths["sequences"]),
                                      cell_encoder="features", output_dir=str(tmp_path / "run"))
    with pytest.raises(ParameterError, match=r"cell_encoder = 'features' needs a cell-line feature table"):
        S.fit_to_data(params, S.load(params))


def test_gate_recovery_uses_only_motifs_the_truth_knows():
    g = np.array([[0.9, 0.1, 0.8, 0.9, 0.1, 0.8], [0.1, 0.9, 0.2, 0.1, 0.9, 0.2]])
    truth = np.array([[1, 0, np.nan], [1, 1, 0]], dtype=float)
    rec = S.gate_recovery(g, truth)
    assert rec[0] == 1.0  # motif 3 unknown for cell line 0: scored on motifs 1 and 2 only
    assert rec[1] == pytest.approx(0.5)  # positives score 0.1 and 0.9, the negative 0.2
    assert np.isnan(S.gate_recovery(g, np.array([[1, 1, np.nan], [np.nan] * 3]))).all()  # one class: no AUROC


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    paths = epi.write_example(tmp_path_factory.mktemp("example"), n_cell_lines=5, pairs_per_cell_line=80, seed=1)
    params = S.SFMNParams.from_preset("quick", pairs=str(paths["pairs"]), genome=str(paths["genome"]),
                                      cell_features=str(paths["cell_features"]), truth=str(paths["truth"]),
                                      output_dir=str(tmp_path_factory.mktemp("run")), epochs=2, phase2_epochs=1,
                                      progress=False)
    data = S.load(params)
    return params, data


@pytest.mark.parametrize("encoder, cell_encoder, gate, beta", [
    ("cnn", "support", "sigmoid", 0.1), ("pwm", "support", "rescaled", 0.1),
    ("pwm", "features", "budget", 0.0), ("cnn", "features", "sparsemax", 0.0),
])
def test_every_configuration_passes_the_contract_on_variable_length_genome_regions(example, encoder, cell_encoder,
                                                                                 gate, beta):
    import dataclasses

    params, data = example
    assert data.enhancers.lengths.min() < data.enhancers.lengths.max()  # regions keep their own lengths
    params = dataclasses.replace(params, encoder=encoder, cell_encoder=cell_encoder, gate=gate, beta=beta)
    params, _ = S.fit_to_data(params, data)
    split = S.loco_splits(data, params)[0]
    inputs = S.PairInputs(data, params.encoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.GateWarning)
        trained = S.train_model("sfmn", data, inputs, split, params, 0)
    row = S.evaluate(trained, data, inputs, split)
    assert np.isfinite(row["test_aupr"])
    assert ("gate_recovery_unseen" in row) == (encoder == "pwm")  # truth scores motif gates, not cnn filters


def test_a_data_folder_finds_its_files_by_name_and_explicit_paths_win(tmp_path):
    old_layout = user_files(tmp_path / "named")  # pairs.csv, sequences.fa, cell_lines.csv, motifs.jaspar, truth
    params = S.SFMNParams.from_preset("quick", data=str(tmp_path / "named"), output_dir=str(tmp_path / "run"))
    data = S.load(params)
    assert data.truth is not None and data.cell_features is not None and len(data.motifs) == 4
    assert str(old_layout["pairs"]) in data.sources["pairs"]
    example = epi.write_example(tmp_path / "coords", n_cell_lines=4, pairs_per_cell_line=60)
    params = S.SFMNParams.from_preset("quick", data=str(tmp_path / "coords"), truth="",
                                      cell_features=str(old_layout["cell_features"]), output_dir=str(tmp_path / "r2"))
    with pytest.raises(epi.DataError, match=r"cell_lines.csv: no features for cell line\(s\)"):
        S.load(params)  # the explicit (wrong) feature table is used, not the folder's own
    params = S.SFMNParams.from_preset("quick", data=str(tmp_path / "coords"), output_dir=str(tmp_path / "r3"))
    data = S.load(params)
    assert "genome coordinates" in data.sources["pairs"] and data.sources["genome"] == str(example["genome"])
    with pytest.raises(epi.DataError, match=r"SFMNParams.data = 'no/such/folder': not a folder"):
        S.load(S.SFMNParams.from_preset("quick", data="no/such/folder", output_dir=str(tmp_path / "r4")))
