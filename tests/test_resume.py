"""Resuming ``train.fit`` from checkpoints: exact after SIGKILL, refused when it cannot be exact.

The training script below is run in subprocesses: a model whose loss draws from numpy's global
RNG, python's ``random`` and its own numpy ``Generator``, and whose ``after_step`` keeps a running
scale that feeds back into the loss (declared in ``resume_attributes``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from latentlab import train

SCRIPT = r'''
import random, sys, time
import numpy as np, torch
from torch import nn
from latentlab import io, train

class Noisy(nn.Module):
    resume_attributes = ("scale", "rng", "switches")

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.1), nn.Linear(16, 1))
        self.x = torch.randn(192, 4)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 0.0])
        self.scale, self.rng, self.switches = 1.0, np.random.default_rng(7), []

    def loss_terms(self, idx):
        time.sleep(float(sys.argv[3]))  # make an epoch long enough to be killed inside
        noise = torch.from_numpy(np.random.normal(0.0, 0.1, len(idx)).astype(np.float32))
        keep = torch.from_numpy(self.rng.random(len(idx)) < 0.8)
        err = (self.net(self.x[idx]).squeeze(-1) - self.y[idx] - noise)[keep]
        return {"mse": err.pow(2).mean() * (1 + 0.01 * random.random()) / self.scale,
                "l2": sum(p.pow(2).sum() for p in self.net.parameters())}

    def after_step(self, ctx):
        self.scale = 0.9 * self.scale + 0.1 * (1.0 + ctx.terms["mse"])
        if ctx.terms["mse"] < 0.5 and not self.switches:
            self.switches.append(ctx.step)

def announce(model, epoch):
    print(f"epoch {epoch}", flush=True)

train.seed_everything(0)
model = Noisy()
ckpt = None if sys.argv[1] == "-" else sys.argv[1]
train.fit(model, train.minibatches(192, 16, seed=0), weights={"mse": 1.0, "l2": 1e-3}, epochs=8, seed=0,
          lr=1e-2, checkpoint_path=ckpt, on_epoch_start=announce, progress=False)
io.atomic_write(sys.argv[2], lambda p: torch.save({"state": model.state_dict(), "scale": model.scale,
                                                   "switches": model.switches}, p))
print("done", flush=True)
'''
STEP_SECONDS = "0.02"  # 12 steps per epoch: ~0.25 s per epoch


def start(tmp_path: Path, ckpt: str, out: Path) -> subprocess.Popen:
    script = tmp_path / "train_noisy.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), ckpt, str(out), STEP_SECONDS], stdout=subprocess.PIPE,
                            text=True, env=env)


def test_sigkilled_mid_epoch_three_times_resumes_to_the_uninterrupted_weights(tmp_path):
    reference = start(tmp_path, "-", tmp_path / "reference.pt")
    assert reference.wait(timeout=180) == 0
    ckpt, out = tmp_path / "run.ckpt", tmp_path / "resumed.pt"
    killed_in = []
    for target in (1, 3, 5):  # kill inside these epochs; each run resumes from the last finished one
        proc = start(tmp_path, str(ckpt), out)
        for line in proc.stdout:
            if line.startswith("epoch ") and int(line.split()[1]) >= target:
                time.sleep(0.1)  # inside the epoch: its checkpoint is not written yet
                proc.send_signal(signal.SIGKILL)
                killed_in.append(int(line.split()[1]))
                break
        assert proc.wait(timeout=60) == -signal.SIGKILL
        saved = train.load_checkpoint(ckpt)
        assert saved["epoch"] == killed_in[-1] - 1  # the epoch in progress was lost: killed mid-epoch
    finished = start(tmp_path, str(ckpt), out)
    lines = finished.stdout.read().split()
    assert finished.wait(timeout=180) == 0 and "done" in lines
    assert killed_in == [1, 3, 5] and not out.with_name(out.name + ".tmp").exists()
    a, b = torch.load(tmp_path / "reference.pt"), torch.load(out)
    assert a["scale"] == b["scale"] and a["switches"] == b["switches"]
    for name, tensor in a["state"].items():
        assert torch.equal(tensor, b["state"][name]), name


# --------------------------------------------------------------------------- refused checkpoints


class Small(nn.Module):
    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.Linear(hidden, 1))
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(32, 3, generator=g), torch.randn(32, generator=g)

    def loss_terms(self, idx):
        return {"mse": (self.net(self.x[idx]).squeeze(-1) - self.y[idx]).pow(2).mean()}


def fit_small(ckpt: Path, *, hidden: int = 8, rows: int = 32, **overrides) -> train.FitResult:
    kwargs = {"weights": {"mse": 1.0}, "epochs": 2, "lr": 1e-3, "seed": 0, **overrides}
    return train.fit(Small(hidden), train.minibatches(rows, 8, seed=0), checkpoint_path=ckpt, progress=False,
                     **kwargs)


def foreign_pickle(path: Path) -> None:
    torch.save({"model": Small()}, path)  # a whole module pickled: a weights-only load refuses it


BAD_FILES = {  # name: (how to write it, what the message must say)
    "empty": (lambda p: p.write_bytes(b""), "empty file, not a checkpoint"),
    "text": (lambda p: p.write_text("epoch,loss\n1,0.5\n"), "not a readable torch checkpoint"),
    "truncated": (lambda p: (fit_small(p), p.write_bytes(p.read_bytes()[:300])), "not a readable torch checkpoint"),
    "pickled objects": (foreign_pickle, "holds Python objects a safe (weights-only) load refuses"),
    "a bare state_dict": (lambda p: torch.save(Small().state_dict(), p), "not a latentlab.train.fit/2 checkpoint"),
    "a tensor": (lambda p: torch.save(torch.zeros(3), p), "not a latentlab.train.fit/2 checkpoint (found Tensor)"),
    "the old format": (lambda p: torch.save({"model": {}, "torch_rng": torch.zeros(2), "epoch": 0}, p),
                       "found ['epoch', 'model', 'torch_rng']"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_unreadable_or_foreign_checkpoints_are_refused_naming_the_file(tmp_path, kind):
    ckpt = tmp_path / f"{kind.replace(' ', '_')}.ckpt"
    write, message = BAD_FILES[kind]
    write(ckpt)
    with pytest.raises(train.CheckpointError) as caught:
        fit_small(ckpt)
    text = str(caught.value)
    assert str(ckpt) in text and message in text
    assert "weights_only=False" not in text and "delete it" in text.lower()


MISMATCHES = {  # what changed: (fit_small overrides, the fingerprint entry named)
    "lr": ({"lr": 1e-2}, "lr: checkpoint 0.001 vs now 0.01"),
    "weights": ({"weights": {"mse": 0.5}}, "weights: checkpoint {'mse': '1.0'} vs now {'mse': '0.5'}"),
    "a weight schedule": ({"weights": {"mse": lambda ctx: 1.0 + ctx.epoch}}, "weights: checkpoint"),
    "seed": ({"seed": 1}, "seed: checkpoint 0 vs now 1"),
    "epochs": ({"epochs": 3}, "epochs: checkpoint 2 vs now 3"),
    "architecture": ({"hidden": 16}, "state_shapes: checkpoint net.0.weight:(8, 3)"),
    "data": ({"rows": 24}, "first_batch: checkpoint"),
    "grad clipping": ({"grad_clip": 1.0}, "grad_clip: checkpoint None norm vs now 1.0 norm"),
    "early stopping": ({"early_stopping": train.EarlyStopping("train_mse", mode="min")}, "early_stopping: checkpoint None"),
}


@pytest.mark.parametrize("what", sorted(MISMATCHES))
def test_a_checkpoint_from_another_configuration_is_refused_naming_what_differs(tmp_path, what):
    ckpt = tmp_path / "run.ckpt"
    fit_small(ckpt, epochs=2 if what != "epochs" else 2)
    overrides, message = MISMATCHES[what]
    with pytest.raises(train.CheckpointError) as caught:
        fit_small(ckpt, **overrides)
    text = str(caught.value)
    assert str(ckpt) in text and "written by a different configuration" in text and message in text


def test_the_same_configuration_resumes_and_a_directory_is_refused(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    fit_small(ckpt)
    assert fit_small(ckpt).resumed_from == 2  # finished: nothing left to train, history kept
    (tmp_path / "dir.ckpt").mkdir()
    with pytest.raises(train.CheckpointError, match=r"dir.ckpt: not a readable torch checkpoint"):
        fit_small(tmp_path / "dir.ckpt")


def test_after_step_state_must_be_declared_and_storable(tmp_path):
    class Undeclared(Small):
        def after_step(self, ctx):
            self.count = getattr(self, "count", 0) + 1

    with pytest.raises(train.ContractError, match="Undeclared has after_step but declares no resume_attributes"):
        train.fit(Undeclared(), train.minibatches(32, 8, seed=0), weights={"mse": 1.0}, epochs=1, progress=False,
                  checkpoint_path=tmp_path / "a.ckpt")

    class Unstorable(Undeclared):
        resume_attributes = ("log",)
        log = open  # a function: no checkpoint can hold it

    with pytest.raises(train.ContractError, match="resume attribute log holds a builtin_function_or_method"):
        train.fit(Unstorable(), train.minibatches(32, 8, seed=0), weights={"mse": 1.0}, epochs=1, progress=False,
                  checkpoint_path=tmp_path / "b.ckpt")
    assert train.fit(Undeclared(), train.minibatches(32, 8, seed=0), weights={"mse": 1.0}, epochs=1,
                     progress=False).history.shape[0] == 1  # without a checkpoint nothing needs declaring
