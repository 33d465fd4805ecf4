"""Devices: ``train.fit`` and every study take ``device``; on the CPU results are bit-identical.

Only the CPU exists where these tests run; CUDA/MPS availability is monkeypatched to test
how a request is resolved or refused, never to run on a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from latentlab import train
from latentlab.h2 import pipeline as h2
from latentlab.h2.losses import AutoEncoderObjective
from latentlab.h2.model import AutoEncoder
from latentlab.params import ParameterError


def _no_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def _one_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_is_cuda_when_available_else_cpu(monkeypatch):
    _no_gpu(monkeypatch)
    assert train.resolve_device("auto") == torch.device("cpu")
    _one_gpu(monkeypatch)
    assert train.resolve_device("auto") == torch.device("cuda")
    assert train.resolve_device("cuda:0") == torch.device("cuda:0")


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "mps"])
def test_an_unavailable_device_is_refused_naming_parameter_request_and_what_exists(monkeypatch, asked):
    _no_gpu(monkeypatch)
    with pytest.raises(train.DeviceError) as caught:
        train.resolve_device(asked)
    message = str(caught.value)
    assert f"device={asked!r}" in message and "this machine does not have" in message and "['cpu']" in message


def test_a_second_gpu_that_is_not_there_is_refused(monkeypatch):
    _one_gpu(monkeypatch)
    with pytest.raises(train.DeviceError, match=r"device='cuda:1' asks for cuda:1.*\['cpu', 'cuda:0'\]"):
        train.resolve_device("cuda:1")


def test_a_name_that_is_no_device_is_refused():
    with pytest.raises(train.DeviceError, match=r"device='gpu' is not a device name.*'auto'"):
        train.resolve_device("gpu")


def test_fit_refuses_an_unavailable_device_before_training(monkeypatch):
    _no_gpu(monkeypatch)
    model = AutoEncoder(20, latent=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [{"x": torch.rand(8, 20), "context": torch.zeros(8, dtype=torch.long)}]
    with pytest.raises(train.DeviceError, match="device='cuda'"):
        train.fit(AutoEncoderObjective(model), batches, weights={"recon": 1.0}, epochs=1, progress=False, device="cuda")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_study_params_refuse_an_unavailable_device_naming_the_field(monkeypatch):
    _no_gpu(monkeypatch)
    with pytest.raises(ParameterError, match=r"H2Params\.device = 'cuda'.*available: \['cpu'\]"):
        h2.H2Params.from_preset("quick", device="cuda")
    assert h2.H2Params.from_preset("quick", device="cpu").device == "cpu"
    assert h2.H2Params.from_preset("quick").device == "auto"


def _trained(device: str | None, seed: int = 3):
    torch.manual_seed(seed)
    model = AutoEncoder(30, latent=4)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(96, 30, generator=g)
    batches = train.minibatches(96, 16, seed)
    data = lambda epoch: ({"x": x[i], "context": torch.zeros(len(i), dtype=torch.long)} for i in batches(epoch))  # noqa: E731
    kwargs = {} if device is None else {"device": device}
    result = train.fit(AutoEncoderObjective(model), data, weights={"recon": 1.0}, epochs=3, seed=seed, progress=False, **kwargs)
    return model, result.history


def test_cpu_results_are_bit_identical_to_the_default():
    default_model, default_history = _trained(None)
    cpu_model, cpu_history = _trained("cpu")
    for name, value in default_model.state_dict().items():
        assert torch.equal(value, cpu_model.state_dict()[name]), name
    assert default_history.drop(columns="seconds").equals(cpu_history.drop(columns="seconds"))
    assert next(cpu_model.parameters()).device.type == "cpu"


def test_h2_embedding_is_identical_on_default_and_cpu(tmp_path):
    rng = np.random.default_rng(0)
    x = sp.random(120, 40, density=0.3, format="csr", random_state=1, dtype=np.float32)
    import anndata as ad
    import pandas as pd

    adata = ad.AnnData(X=x, obs=pd.DataFrame({"Group": pd.Categorical(rng.choice(["a", "b"], 120))},
                                             index=[f"c{i}" for i in range(120)]))
    runs = [h2.H2Params.from_preset("quick", output_dir=str(tmp_path), epochs=2, progress=False, **extra)
            for extra in ({}, {"device": "cpu"})]
    (z_default, h_default), (z_cpu, h_cpu) = (h2.ae_embedding(adata, p) for p in runs)
    assert np.array_equal(z_default, z_cpu)
    assert h_default.drop(columns="seconds").equals(h_cpu.drop(columns="seconds"))


def test_batches_move_and_other_values_pass_through():
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), 3), "name": "a"}
    moved = train.to_device(batch, torch.device("cpu"))
    assert moved["x"] is batch["x"]  # already there: no copy
    assert moved["pair"][1] == 3 and moved["name"] == "a"


def test_a_checkpoint_is_read_onto_the_cpu(tmp_path, monkeypatch):
    """Device-portable resume: every checkpoint is loaded with map_location='cpu' before it is placed."""
    path = tmp_path / "ckpt.pt"
    model = AutoEncoder(10, latent=2)
    batches = [{"x": torch.rand(4, 10), "context": torch.zeros(4, dtype=torch.long)}]
    train.fit(AutoEncoderObjective(model), batches, weights={"recon": 1.0}, epochs=1, progress=False, checkpoint_path=path, device="cpu")
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    train.load_checkpoint(path)
    assert str(seen.get("map_location")) == "cpu"


@pytest.mark.parametrize("module, params_class", [("h2", "H2Params"), ("sfmn", "SFMNParams"),
                                                   ("recon", "ReconParams"), ("setvae", "SetVAEParams")])
def test_every_study_takes_a_device_with_the_same_validation(monkeypatch, module, params_class):
    import importlib

    cls = getattr(importlib.import_module(f"latentlab.{module}.pipeline"), params_class)
    _no_gpu(monkeypatch)
    assert cls.from_preset("quick").device == "auto"
    assert cls.from_preset("quick", device="cpu").device == "cpu"
    with pytest.raises(ParameterError, match=rf"{params_class}\.device = 'cuda:1'.*available: \['cpu'\]"):
        cls.from_preset("quick", device="cuda:1")
