"""train.fit: the contract check, history, early stopping, divergence, resume, repeatability."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentlab import train


class Regression(nn.Module):
    """y = w·x with an optional penalty; the knobs below build deliberately broken variants."""

    def __init__(self, *, dead_penalty: bool = False, nan_at_step: int | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.dead_penalty = dead_penalty
        self.nan_at_step = nan_at_step
        self.calls = 0

    def loss_terms(self, batch):
        x, y = batch
        self.calls += 1
        mse = (self.linear(x).squeeze(-1) - y).pow(2).mean()
        if self.nan_at_step is not None and self.calls > self.nan_at_step:
            mse = mse * float("nan")
        weight = self.linear.weight.detach() if self.dead_penalty else self.linear.weight
        return {"mse": mse, "l2": weight.pow(2).sum()}


def data(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(n, generator=g)
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]


def test_unused_weight_is_rejected_with_its_name():
    with pytest.raises(train.ContractError, match=r"\['align'\] are read by no loss term"):
        train.fit(Regression(), data(), weights={"mse": 1.0, "l2": 0.1, "align": 0.5}, epochs=1, progress=False)


def test_term_without_weight_is_rejected():
    with pytest.raises(train.ContractError, match="have no configured weight"):
        train.fit(Regression(), data(), weights={"mse": 1.0}, epochs=1, progress=False)


def test_term_without_gradient_is_rejected():
    with pytest.raises(train.ContractError, match="'l2' has weight > 0 but is not connected"):
        train.fit(Regression(dead_penalty=True), data(), weights={"mse": 1.0, "l2": 0.1}, epochs=1, progress=False)


class Hinge(Regression):
    """MSE plus a hinge max(0, |w| − radius) that is flat (zero gradient) while the weights are small."""

    def __init__(self, *, declare: bool, miswired: bool = False) -> None:
        super().__init__()
        self.declare, self.miswired = declare, miswired

    def loss_terms(self, batch):
        terms = super().loss_terms(batch)
        penalised = self.linear.bias if self.miswired else self.linear.weight  # the hinge must shape weight
        terms["l2"] = torch.relu(penalised.norm() - 100.0)  # flat at initialisation
        return terms

    def term_targets(self, name: str) -> dict:
        return {"weight": [self.linear.weight]} if name == "l2" else {}

    def gated_terms(self) -> set[str]:
        return {"l2"} if self.declare else set()


def test_flat_hinge_needs_to_be_declared_gated():
    weights = {"mse": 1.0, "l2": 0.1}
    with pytest.raises(train.ContractError, match="'l2' has weight > 0 but sends no gradient"):
        train.check_contract(Hinge(declare=False), data()[0], weights)
    report = train.check_contract(Hinge(declare=True), data()[0], weights)
    assert report["grad_norms"]["l2"] == {"weight": 0.0}
    with pytest.raises(train.ContractError, match="'l2' is not connected to 'weight'"):  # never excuses miswiring
        train.check_contract(Hinge(declare=True, miswired=True), data()[0], weights)


class RoundOff(Regression):
    """A penalty whose true gradient is zero but whose computed one is float noise (~1e-9)."""

    def loss_terms(self, batch):
        terms = super().loss_terms(batch)
        w = self.linear.weight
        terms["l2"] = (w * 1e-9).sum() - (w.detach() * 1e-9).sum()  # constant value, gradient 1e-9 per weight
        return terms


def test_round_off_gradient_is_rejected_relative_to_the_other_terms():
    with pytest.raises(train.ContractError, match=r"'l2' has weight > 0 but sends no gradient .*round-off"):
        train.check_contract(RoundOff(), data()[0], {"mse": 1.0, "l2": 0.1})
    report = train.check_contract(RoundOff(), data()[0], {"mse": 1.0, "l2": 0.0})  # logged only: fine
    assert "l2" not in report["grad_norms"]


def test_dead_term_with_zero_weight_is_only_logged():
    result = train.fit(Regression(dead_penalty=True), data(), weights={"mse": 1.0, "l2": 0.0}, epochs=2,
                       progress=False)
    assert {"train_l2", "weight_l2"} <= set(result.history.columns)
    assert (result.history.weight_l2 == 0).all()


def test_scheduled_weight_counts_by_its_peak():
    ramp = lambda ctx: 0.1 * ctx.epoch  # noqa: E731 - zero at epoch 0, positive later
    with pytest.raises(train.ContractError, match="'l2'"):
        train.fit(Regression(dead_penalty=True), data(), weights={"mse": 1.0, "l2": ramp}, epochs=3, progress=False)


def test_term_that_misses_a_target_group_is_rejected():
    class Split(Regression):
        def term_targets(self, name):
            if name == "l2":
                return {"bias": [self.linear.bias]}  # l2 only touches the weight
            return {}

    with pytest.raises(train.ContractError, match="sends no gradient to 'bias'"):
        train.fit(Split(), data(), weights={"mse": 1.0, "l2": 0.1}, epochs=1, progress=False)


def test_contract_leaves_the_model_unchanged():
    model = Regression()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = train.check_contract(model, data()[0], {"mse": 1.0, "l2": 0.1})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert report["grad_norms"]["mse"]["all parameters"] > 0


def test_history_has_every_term_weight_monitor_and_validation_metric():
    result = train.fit(
        Regression(), data(), weights={"mse": 1.0, "l2": 0.01}, epochs=3, progress=False,
        monitors=lambda m, e: {"weight_norm": m.linear.weight.norm()},
        validate=lambda m: {"val_mse": float((m.linear(data(seed=1)[0][0]).squeeze(-1) - data(seed=1)[0][1]).pow(2).mean().detach())},
    )
    expected = {"epoch", "train_loss", "train_mse", "train_l2", "weight_mse", "weight_l2", "weight_norm", "val_mse",
                "seconds", "lr"}
    assert expected <= set(result.history.columns)
    assert len(result.history) == 3
    assert result.history.train_mse.iloc[-1] < result.history.train_mse.iloc[0]


def test_nan_stops_training_naming_term_and_step():
    with pytest.raises(train.DivergenceError, match=r"'mse' became nan at epoch 1, step 4"):
        # calls: 1 = contract, 2-5 = epoch 0 (steps 0-3), 6 = epoch 1 step 4
        train.fit(Regression(nan_at_step=5), data(), weights={"mse": 1.0, "l2": 0.0}, epochs=3, progress=False)


def test_early_stopping_restores_the_best_epoch():
    scores = iter([0.5, 0.9, 0.6, 0.7, 0.65, 0.6])
    snapshots = {}

    def validate(model):
        score = next(scores)
        snapshots[score] = model.linear.weight.detach().clone()
        return {"val_score": score}

    model = Regression()
    result = train.fit(model, data(), weights={"mse": 1.0, "l2": 0.0}, epochs=6, progress=False, validate=validate,
                       early_stopping=train.EarlyStopping("val_score", mode="max", patience=2))
    assert result.stopped_early and result.best_epoch == 1 and len(result.history) == 4
    assert torch.equal(model.linear.weight, snapshots[0.9])


def test_same_seed_gives_bit_identical_runs():
    def run():
        train.seed_everything(3)
        model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))
        wrapper = _Wrap(model)
        train.fit(wrapper, train.minibatches(64, 16, seed=3), weights={"mse": 1.0}, epochs=3, seed=3, progress=False)
        return torch.cat([p.flatten() for p in model.parameters()])

    assert torch.equal(run(), run())


class _Wrap(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.x, self.y = data(64)[0][0].repeat(4, 1), data(64)[0][1].repeat(4)

    def loss_terms(self, idx):
        return {"mse": (self.net(self.x[idx]).squeeze(-1) - self.y[idx]).pow(2).mean()}


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    def build():
        train.seed_everything(0)
        return _Wrap(nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1)))

    batches = train.minibatches(64, 16, seed=0)
    reference = build()
    train.fit(reference, batches, weights={"mse": 1.0}, epochs=5, progress=False)

    def crash(model, epoch):
        if epoch == 3:
            raise KeyboardInterrupt

    ckpt = tmp_path / "run.pt"
    interrupted = build()
    with pytest.raises(KeyboardInterrupt):
        train.fit(interrupted, batches, weights={"mse": 1.0}, epochs=5, progress=False, checkpoint_path=ckpt,
                  on_epoch_start=crash)
    resumed = build()
    result = train.fit(resumed, batches, weights={"mse": 1.0}, epochs=5, progress=False, checkpoint_path=ckpt)
    assert result.resumed_from == 3 and len(result.history) == 5
    for a, b in zip(reference.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_minibatches_cover_every_row_once_and_depend_only_on_epoch():
    batches = train.minibatches(10, 3, seed=1)
    rows = sorted(int(i) for b in batches(0) for i in b)
    assert rows == list(range(10))
    assert all((a == b).all() for a, b in zip(batches(2), train.minibatches(10, 3, seed=1)(2), strict=True))


def test_early_stopping_ignores_warm_up_epochs():
    scores = iter([0.99, 0.5, 0.6, 0.55, 0.5, 0.4])
    result = train.fit(Regression(), data(), weights={"mse": 1.0, "l2": 0.0}, epochs=6, progress=False,
                       validate=lambda m: {"val_score": next(scores)},
                       early_stopping=train.EarlyStopping("val_score", patience=2, min_epoch=1))
    assert result.best_epoch == 2 and result.best_score == 0.6 and len(result.history) == 5


class _RecordsFlushing(Regression):
    """Notes, at every step, whether subnormal floats are flushed on the training thread."""

    def __init__(self) -> None:
        super().__init__()
        self.flushing: list[bool] = []

    def loss_terms(self, batch):
        self.flushing.append(train._flushing_denormals())
        return super().loss_terms(batch)


@pytest.mark.parametrize("before", [False, True])
def test_training_flushes_subnormals_and_restores_the_threads_mode(before):
    # Adam's decaying moments of never-updated weights fall into the subnormal range, ~100x slower on x86
    model = _RecordsFlushing()
    torch.set_flush_denormal(before)
    try:
        train.fit(model, data(), weights={"mse": 1.0, "l2": 0.1}, epochs=2, progress=False, device="cpu")
        after = train._flushing_denormals()
    finally:
        torch.set_flush_denormal(False)
    steps = 2 * len(data())  # the calls before these are the contract check's, outside training
    assert len(model.flushing) > steps and all(model.flushing[-steps:])
    assert after is before
