"""The one training loop every study uses.

``fit`` trains a model whose ``loss_terms(batch)`` returns named scalar terms.
Each term has a configured weight (a number, or a function of the step
context for warm-ups, curricula and switches). Before the first step a
contract check proves the configuration is the model that was designed: a
weight that no term reads, or a term with weight > 0 that is not finite or
sends no gradient to the parameters it should shape, stops the run. This is
the closed loop whose absence let an earlier project train a different model
than the one it described.

Optional model hooks, all duck-typed:

- ``term_targets(name) -> dict[str, list[Parameter]]``: parameter groups a
  term must reach (default: every trainable parameter, as one group).
- ``gated_terms() -> set[str]``: hinge/clamp terms (free bits, margins) whose gradient is
  legitimately zero on a batch inside their flat region. For these the check asks that the
  term's graph *reaches* every target group, not that the first batch's gradient is non-zero.
- ``check_design(batch)``: extra structural checks; raise ``ContractError``.
- ``after_step(ctx)``: explicit per-step state updates (never in ``forward``).
- ``resume_attributes``: the attributes (dotted paths allowed, e.g. ``"task_loss.ema"``) that
  ``after_step`` (or anything outside parameters and buffers) changes during training. A
  checkpoint saves them and a resume restores them, so a resumed run equals an uninterrupted
  one bit for bit. Values may be numbers, strings, bools, None, tensors, numpy arrays, numpy
  ``Generator``s and lists/tuples/dicts of those. A model with ``after_step`` must declare it
  (``()`` when after_step only touches parameters/buffers) before it can be checkpointed.

Checkpoints (``checkpoint_path``) hold the model, optimizer, scheduler, history, early-stopping
state, every RNG (torch, numpy's global, python's ``random``), the declared attributes and a
fingerprint of the configuration (weights, lr, seed, epochs, optimizer, early stopping, the
model's class and state-dict shapes, the first batch). A checkpoint whose fingerprint differs is
refused, naming what differs; an empty, truncated or foreign file is refused naming the file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import math
import pickle
import random
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm


class ContractError(RuntimeError):
    """The configured model is not the designed model (unused weight, dead term, ...)."""


class DivergenceError(FloatingPointError):
    """A loss term became NaN or infinite during training."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be resumed from: unreadable, foreign, or written by another configuration."""


class DeviceError(ValueError):
    """A device was asked for that this machine does not have (or that torch does not know)."""


CHECKPOINT_FORMAT = "latentlab.train.fit/2"


@dataclasses.dataclass(frozen=True)
class StepContext:
    """What a weight schedule may depend on: where training is and this step's term values."""

    epoch: int
    step: int
    epochs: int
    terms: Mapping[str, float] = dataclasses.field(default_factory=dict)


Weight = float | Callable[[StepContext], float]
Batches = Iterable[Any] | Callable[[int], Iterable[Any]]


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best.

    Epochs before ``min_epoch`` (a warm-up, e.g. a curriculum phase with frozen
    gates) are never selected as best and never count towards patience.
    """

    monitor: str
    mode: str = "max"
    patience: int = 5
    min_delta: float = 0.0
    min_epoch: int = 0

    def improved(self, value: float, best: float | None) -> bool:
        if best is None or not math.isfinite(best):
            return math.isfinite(value)
        if self.mode == "max":
            return value > best + self.min_delta
        return value < best - self.min_delta


@dataclasses.dataclass
class FitResult:
    history: pd.DataFrame
    best_epoch: int
    best_score: float | None
    stopped_early: bool
    resumed_from: int | None


def seed_everything(seed: int) -> None:
    """One seed drives python, numpy and torch; CPU runs repeat bit for bit."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def minibatches(n: int, batch_size: int, seed: int, *, shuffle: bool = True) -> Callable[[int], list]:
    """Index batches whose order depends only on (seed, epoch), so resuming is exact."""
    if n <= 0:
        raise ValueError(f"minibatches: need at least one row, got n={n}")
    if batch_size <= 0:
        raise ValueError(f"minibatches: batch_size must be > 0, got {batch_size}")

    def batches(epoch: int) -> list[np.ndarray]:
        order = np.arange(n)
        if shuffle:
            order = np.random.default_rng([seed, epoch]).permutation(n)
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]

    return batches


# --------------------------------------------------------------------------- devices


def available_devices() -> list[str]:
    """The devices torch can use here, e.g. ``["cpu"]`` or ``["cpu", "cuda:0", "cuda:1"]``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def device_problem(device: str | torch.device, parameter: str = "device") -> str | None:
    """Why ``device`` cannot be used here (naming the parameter, the request and what exists), or None."""
    if isinstance(device, str) and device == "auto":
        return None
    here = available_devices()
    try:
        asked = torch.device(device)
    except (RuntimeError, TypeError):
        return (f"{parameter}={device!r} is not a device name; use 'auto' (CUDA when available, else CPU) "
                f"or one of {here}")
    if asked.type == "cpu":
        return None
    name = f"{asked.type}:{asked.index}" if asked.index is not None else asked.type
    if asked.type == "cuda" and f"cuda:{asked.index or 0}" in here:
        return None
    if asked.type == "mps" and "mps" in here and not asked.index:
        return None
    return f"{parameter}={device!r} asks for {name}, which this machine does not have; available: {here} (or 'auto')"


def resolve_device(device: str | torch.device = "auto", parameter: str = "device") -> torch.device:
    """``"auto"`` → CUDA when ``torch.cuda.is_available()``, else CPU; a named device must exist here."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = device_problem(device, parameter)
    if problem:
        raise DeviceError(problem)
    return torch.device(device)


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (tensor, or dicts/lists/tuples of them) on ``device``; other values pass through."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        moved = [to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


def _on_device(batches_for: Callable[[int], Iterable[Any]], device: torch.device) -> Callable[[int], Iterable[Any]]:
    """Loaders stay on the CPU; each batch moves when it is used (nothing is wrapped on the CPU)."""
    if device.type == "cpu":
        return batches_for
    return lambda epoch: (to_device(batch, device) for batch in batches_for(epoch))


def resolve_weight(weight: Weight, ctx: StepContext) -> float:
    value = weight(ctx) if callable(weight) else weight
    return float(value)


def peak_weight(weight: Weight, epochs: int, terms: Mapping[str, float]) -> float:
    """Largest value a weight takes over the planned epochs (for the contract)."""
    if not callable(weight):
        return float(weight)
    probes = {0, max(epochs - 1, 0), epochs // 2}
    steps = (0, 10**6)
    return max(
        resolve_weight(weight, StepContext(epoch=e, step=s, epochs=epochs, terms=terms))
        for e in probes
        for s in steps
    )


def _first_batch(batches: Batches) -> Any:
    iterable = batches(0) if callable(batches) else batches
    for batch in iterable:
        return batch
    raise ValueError("fit: the training data yielded no batch")


def _term_targets(model: nn.Module, name: str) -> dict[str, list[nn.Parameter]]:
    if hasattr(model, "term_targets"):
        targets = model.term_targets(name)
        if targets:
            return {k: [p for p in v if p.requires_grad] for k, v in targets.items()}
    return {"all parameters": [p for p in model.parameters() if p.requires_grad]}


def check_contract(model: nn.Module, batch: Any, weights: Mapping[str, Weight], epochs: int = 1) -> dict[str, Any]:
    """Prove on one batch that every configured weight is read and every active term trains.

    Returns a report (term values, peak weights, gradient norms per target group).
    Model parameters and buffers are left exactly as they were.
    """
    saved = copy.deepcopy(model.state_dict())
    was_training = model.training
    model.train()
    try:
        if hasattr(model, "check_design"):
            model.check_design(batch)
        terms = model.loss_terms(batch)
        names, configured = set(terms), set(weights)
        if configured - names:
            raise ContractError(
                f"configured weight(s) {sorted(configured - names)} are read by no loss term; "
                f"the model computes {sorted(names)}"
            )
        if names - configured:
            raise ContractError(
                f"loss term(s) {sorted(names - configured)} have no configured weight "
                "(configure 0 to log a term without training on it)"
            )
        values = {k: float(v.detach()) for k, v in terms.items()}
        report: dict[str, Any] = {"terms": values, "peak_weights": {}, "grad_norms": {}}
        for name in sorted(names):
            peak = peak_weight(weights[name], epochs, values)
            report["peak_weights"][name] = peak
            if peak <= 0:
                continue
            if not math.isfinite(values[name]):
                raise ContractError(f"loss term {name!r} is {values[name]} on the first batch")
            report["grad_norms"][name] = _check_term_gradient(model, name, terms[name])
        _reject_round_off(report["grad_norms"], _gated(model))
        return report
    finally:
        model.load_state_dict(saved)
        model.train(was_training)


ROUND_OFF = 1e-5  # a gradient this much smaller than another term's on the same group is an exact zero


def _gated(model: nn.Module) -> set[str]:
    return set(model.gated_terms()) if hasattr(model, "gated_terms") else set()


def _reject_round_off(norms: dict[str, dict[str, float]], gated: set[str], rel_tol: float = ROUND_OFF) -> None:
    """A non-zero norm can still be float round-off of an analytically zero gradient (the L1 of a
    sparsemax gate is exactly 1, yet autograd returns ~1e-8): compare every term's norm on a group
    with the largest norm another term sends to that group, and reject what is ``rel_tol`` below it."""
    for name, groups in norms.items():
        if name in gated:
            continue
        for group, norm in groups.items():
            others = [g[group] for other, g in norms.items() if other != name and group in g]
            ref = max(others, default=0.0)
            if ref > 0 and norm < rel_tol * ref:
                raise ContractError(
                    f"loss term {name!r} has weight > 0 but sends no gradient to {group!r} (norm {norm:.1e} = "
                    f"{norm / ref:.1e} × another term's on it: float round-off of an exact zero)")


def _check_term_gradient(model: nn.Module, name: str, term: torch.Tensor) -> dict[str, float]:
    if not term.requires_grad:
        raise ContractError(f"loss term {name!r} has weight > 0 but is not connected to any parameter")
    gated = name in _gated(model)
    norms: dict[str, float] = {}
    for group, params in _term_targets(model, name).items():
        if not params:
            raise ContractError(f"loss term {name!r}: target group {group!r} has no trainable parameter")
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
        if gated and all(g is None for g in grads):
            raise ContractError(f"gated loss term {name!r} is not connected to {group!r} at all")
        if not gated and not norm > 0:
            raise ContractError(
                f"loss term {name!r} has weight > 0 but sends no gradient to {group!r}"
            )
        norms[group] = norm
    return norms


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    from latentlab import io

    io.atomic_write(path, lambda tmp: torch.save(state, tmp))


# --------------------------------------------------------------------------- resume: state and fingerprint


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Every global RNG as weights-only-loadable values (tensors, ints, tuples); CUDA's when training there."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)  # a GPU checkpoint resumed on the CPU simply has no CUDA RNG to set


def _resume_attributes(model: nn.Module) -> tuple[str, ...]:
    declared = getattr(model, "resume_attributes", None)
    if declared is None:
        if hasattr(model, "after_step"):
            raise ContractError(
                f"{type(model).__name__} has after_step but declares no resume_attributes: name the attributes "
                "after_step changes (resume_attributes = ('ema', ...), or () if it only touches parameters and "
                "buffers) so a checkpoint can restore them")
        return ()
    if isinstance(declared, str) or not all(isinstance(a, str) for a in declared):
        raise ContractError(f"{type(model).__name__}.resume_attributes must be a tuple of attribute names, "
                            f"got {declared!r}")
    return tuple(declared)


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _set_path(obj: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)


def _pack(value: Any, where: str) -> Any:
    """A declared attribute's value as weights-only-loadable data (numpy arrays/Generators tagged)."""
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value.detach().clone() if isinstance(value, torch.Tensor) else copy.copy(value)
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(value.copy())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.random.Generator):
        return {"__np_generator__": type(value.bit_generator).__name__, "state": value.bit_generator.state}
    if isinstance(value, list | tuple):
        packed = [_pack(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return packed if isinstance(value, list) else {"__tuple__": packed}
    if isinstance(value, dict):
        return {"__dict__": [[_pack(k, f"{where} key"), _pack(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    raise ContractError(f"resume attribute {where} holds a {type(value).__name__}, which a checkpoint cannot store "
                        "(numbers, strings, tensors, numpy arrays/Generators and lists/dicts of them)")


def _unpack(value: Any) -> Any:
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy().copy()
        if "__np_generator__" in value:
            bit_generator = getattr(np.random, value["__np_generator__"])()
            bit_generator.state = value["state"]
            return np.random.Generator(bit_generator)
        if "__tuple__" in value:
            return tuple(_unpack(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_unpack(k): _unpack(v) for k, v in value["__dict__"]}
    return value


def _digest(obj: Any) -> str:
    """A short content hash of a batch (tensors, arrays, numbers, containers) for the fingerprint."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
        elif isinstance(x, np.ndarray):
            h.update(f"A{x.dtype}{x.shape}".encode() + np.ascontiguousarray(x).tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                h.update(str(k).encode())
                feed(x[k])
        elif isinstance(x, list | tuple):
            h.update(f"L{len(x)}".encode())
            for v in x:
                feed(v)
        else:
            h.update(repr(x).encode() if isinstance(x, int | float | str | bool | type(None)) else type(x).__name__.encode())

    feed(obj)
    return h.hexdigest()[:16]


def _weight_signature(weight: Weight, epochs: int) -> str:
    """A number as itself; a schedule by its values at probe points (its name alone would miss edits)."""
    if not callable(weight):
        return repr(float(weight))
    probes = sorted({0, 1, epochs // 2, max(epochs - 1, 0)})
    values = [resolve_weight(weight, StepContext(epoch=e, step=s, epochs=epochs, terms={}))
              for e in probes for s in (0, 100, 10**6)]
    return "schedule " + ",".join(f"{v:.6g}" for v in values)


def fingerprint(model: nn.Module, first_batch: Any, weights: Mapping[str, Weight], *, epochs: int, lr: float,
                seed: int, optimizer: torch.optim.Optimizer, scheduler: Any, early_stopping: EarlyStopping | None,
                grad_clip: float | None, clip_mode: str) -> dict[str, str]:
    """What a checkpoint must agree on to be resumed from (every value a string, for a readable diff)."""
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    try:
        signatures = {name: _weight_signature(w, epochs) for name, w in sorted(weights.items())}
    except Exception as exc:  # a schedule that needs term values: fall back to its name
        signatures = {name: getattr(w, "__qualname__", repr(w)) for name, w in sorted(weights.items())}
        signatures["note"] = f"schedules not probed ({type(exc).__name__})"
    return {
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "state_shapes": ";".join(f"{k}:{tuple(v.shape)}:{v.dtype}" for k, v in model.state_dict().items()),
        "resume_attributes": ",".join(_resume_attributes(model)),
        "weights": repr(signatures),
        "epochs": str(epochs), "lr": repr(float(lr)), "seed": str(seed),
        "optimizer": f"{type(optimizer).__name__} {groups!r}",
        "scheduler": type(scheduler).__name__ if scheduler is not None else "none",
        "early_stopping": repr(early_stopping),
        "grad_clip": f"{grad_clip!r} {clip_mode}",
        "first_batch": _digest(first_batch),
    }


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ``fit`` checkpoint (weights only); every failure names the file and what it holds."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint (delete it to start afresh)")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, AttributeError, ModuleNotFoundError) as exc:
        raise CheckpointError(
            f"{path}: holds Python objects a safe (weights-only) load refuses ({type(exc).__name__}); it was not "
            f"written by latentlab.train.fit. Delete it or pass another checkpoint_path") from None
    except Exception as exc:  # any parser failure: truncated zip, EOF, plain text, a directory, ...
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint (truncated or another format: {type(exc).__name__}); "
            "delete it to start afresh") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = sorted(map(str, state))[:8] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path}: not a {CHECKPOINT_FORMAT} checkpoint (found {found}); it was written by something else "
            "or an older latentlab. Delete it to start afresh")
    return state


def _check_fingerprint(path: Path, saved: Mapping[str, str], current: Mapping[str, str]) -> None:
    differ = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if differ:
        lines = "; ".join(f"{k}: checkpoint {_clip(saved.get(k))} vs now {_clip(current.get(k))}" for k in differ)
        raise CheckpointError(
            f"{path}: written by a different configuration, refusing to resume from it ({lines}). "
            "Delete it, or pass another checkpoint_path to keep both runs")


def _clip(text: str | None, width: int = 160) -> str:
    text = "missing" if text is None else text
    return text if len(text) <= width else text[: width - 1] + "…"


def fit(
    model: nn.Module,
    train_data: Batches,
    *,
    weights: Mapping[str, Weight],
    epochs: int,
    lr: float = 1e-3,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    validate: Callable[[nn.Module], Mapping[str, float]] | None = None,
    monitors: Callable[[nn.Module, int], Mapping[str, float]] | None = None,
    on_epoch_start: Callable[[nn.Module, int], None] | None = None,
    early_stopping: EarlyStopping | None = None,
    checkpoint_path: str | Path | None = None,
    seed: int = 0,
    grad_clip: float | None = None,
    clip_mode: str = "norm",
    progress: bool = True,
    desc: str = "train",
    device: str | torch.device = "auto",
) -> FitResult:
    """Train ``model`` on ``train_data`` with the named, weighted loss terms.

    ``train_data`` is a re-iterable of batches or ``epoch -> batches`` (see
    ``minibatches``). Returns the per-epoch history (every term, its weight,
    monitors, validation metrics) and restores the best checkpoint when early
    stopping is on. A checkpoint at ``checkpoint_path`` is resumed from.

    ``device`` (``"auto"``: CUDA when available, else CPU; or ``"cpu"``, ``"cuda:1"``, ``"mps"``) is
    where the model and each batch go; the loader stays on the CPU. The model stays on ``device``
    afterwards, and ``validate``/``monitors``/``on_epoch_start`` receive it there (move what you
    feed it with ``to_device``). Checkpoints load onto the CPU first, so they resume on any device.
    """
    if epochs < 1:
        raise ValueError(f"fit: epochs must be >= 1, got {epochs}")
    if clip_mode not in ("norm", "value"):
        raise ValueError(f"fit: clip_mode must be 'norm' or 'value', got {clip_mode!r}")
    where = resolve_device(device)
    model.to(where)
    batches_for = _on_device(train_data if callable(train_data) else (lambda _epoch: train_data), where)
    first_batch = _first_batch(batches_for)
    check_contract(model, first_batch, weights, epochs)

    # fused Adam: ~10x faster optimizer steps on CPU for wide layers (e.g. 18,683-gene decoders)
    opt = optimizer(model) if optimizer else torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    sched = scheduler(opt) if scheduler else None
    history: list[dict[str, Any]] = []
    best_state, best_epoch, best_score, bad_epochs = None, -1, None, 0
    start_epoch, resumed_from = 0, None
    ckpt = Path(checkpoint_path) if checkpoint_path else None
    config = None
    if ckpt:
        config = fingerprint(model, first_batch, weights, epochs=epochs, lr=lr, seed=seed, optimizer=opt,
                             scheduler=sched, early_stopping=early_stopping, grad_clip=grad_clip, clip_mode=clip_mode)
    seed_everything(seed)
    if ckpt and ckpt.exists():
        state = load_checkpoint(ckpt)
        _check_fingerprint(ckpt, state["fingerprint"], config)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
        for name, value in state["attributes"].items():
            _set_path(model, name, _unpack(value))
        history, best_state = state["history"], state["best_state"]
        best_epoch, best_score, bad_epochs = state["best_epoch"], state["best_score"], state["bad_epochs"]
        set_rng_state(state["rng"])
        start_epoch = resumed_from = state["epoch"] + 1
        if state.get("stopped"):
            start_epoch = epochs

    global_step = sum(int(r.get("steps", 0)) for r in history)
    stopped_early = bool(history and history[-1].get("stopped_early"))
    bar = tqdm(range(start_epoch, epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        if on_epoch_start:
            on_epoch_start(model, epoch)
        model.train()
        started = time.perf_counter()
        with denormals_flushed(where):
            row, global_step = _train_epoch(model, batches_for(epoch), opt, weights, epoch, epochs,
                                            global_step, grad_clip, clip_mode)
        if sched:
            sched.step()
        row["seconds"] = time.perf_counter() - started
        row["lr"] = opt.param_groups[0]["lr"]
        model.eval()
        with torch.no_grad():
            if monitors:
                row.update({k: float(v) for k, v in monitors(model, epoch).items()})
        if validate:
            row.update({k: float(v) for k, v in validate(model).items()})
        if early_stopping:
            if early_stopping.monitor not in row:
                raise ValueError(
                    f"early stopping monitors {early_stopping.monitor!r}, "
                    f"but the epoch record has only {sorted(row)}"
                )
            score = row[early_stopping.monitor]
            if epoch < early_stopping.min_epoch:
                pass
            elif early_stopping.improved(score, best_score):
                best_state, best_epoch, best_score, bad_epochs = copy.deepcopy(model.state_dict()), epoch, score, 0
            else:
                bad_epochs += 1
            row["stopped_early"] = bad_epochs >= early_stopping.patience
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.4g}")
        stop = bool(row.get("stopped_early"))
        if ckpt:
            _save_checkpoint(ckpt, {
                "format": CHECKPOINT_FORMAT, "fingerprint": config,
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched else None,
                "attributes": {a: _pack(_get_path(model, a), a) for a in _resume_attributes(model)},
                "epoch": epoch, "history": history, "best_state": best_state,
                "best_epoch": best_epoch, "best_score": best_score, "bad_epochs": bad_epochs,
                "rng": rng_state(where), "stopped": stop,
            })
        if stop:
            stopped_early = True
            break
    if early_stopping and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    frame = pd.DataFrame(history)
    if best_epoch < 0:
        best_epoch = len(history) - 1
    return FitResult(frame, best_epoch, best_score, stopped_early, resumed_from)


@contextlib.contextmanager
def denormals_flushed(device: torch.device):
    """Train with subnormal floats flushed to zero on the CPU; the thread's previous mode is restored.

    Adam's first moment of a parameter whose gradient stays zero (weights from genes a batch never
    expresses, dead ReLU units) decays by 0.9 a step into the subnormal range, where x86 arithmetic
    is ~100x slower: measured 2026-12-03 on Study 1's MMD autoencoder at `full` (one thread, idle),
    the fused Adam step went from 1.8 ms a step over 6 epochs to 7.4 ms over 30, and the whole fit
    from 18.5 s to 12.5-13.3 s CPU with flushing (two runs). Values below 1.2e-38 become 0, which moves no result
    beyond float round-off. The flag is the calling thread's (x86 MXCSR), so each trainer thread sets
    its own; intra-op OpenMP threads keep theirs.
    """
    if device.type != "cpu":
        yield
        return
    before = _flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def _flushing_denormals() -> bool:
    """Whether this thread flushes subnormals now (torch has no getter: a subnormal product tells)."""
    tiny = torch.tensor([1e-30], dtype=torch.float32)
    return bool((tiny * 1e-10).item() == 0.0)


def weighted_sum(terms: Mapping[str, torch.Tensor], used: Mapping[str, float]) -> torch.Tensor | float:
    """Σ w·term over the terms with w ≠ 0, in the terms' order; 0.0 when every weight is 0.

    The same numbers as ``sum(w * t ...)``, with fewer ops on small models: a weight of exactly 1 is
    not multiplied (1·t = t exactly) and the sum starts at the first term, not at 0 (0 + t = t), so
    the forward value and every gradient are bit for bit those of the plain sum (tested).
    """
    total: torch.Tensor | float = 0.0
    first = True
    for name, term in terms.items():
        weight = used[name]
        if weight == 0:
            continue
        part = term if weight == 1 else weight * term
        total = part if first else total + part
        first = False
    return total


def _train_epoch(model, batches, opt, weights, epoch, epochs, global_step, grad_clip, clip_mode):
    sums: dict[str, float] = {}
    n_steps = 0
    for batch in batches:
        terms = model.loss_terms(batch)
        values = {k: float(v.detach()) for k, v in terms.items()}
        ctx = StepContext(epoch=epoch, step=global_step, epochs=epochs, terms=values)
        used = {k: resolve_weight(weights[k], ctx) for k in terms}
        for name, value in values.items():
            if used[name] != 0 and not math.isfinite(value):
                raise DivergenceError(
                    f"loss term {name!r} became {value} at epoch {epoch}, step {global_step}"
                )
        total = weighted_sum(terms, used)
        opt.zero_grad(set_to_none=True)
        if isinstance(total, torch.Tensor) and total.requires_grad:
            total.backward()
            if grad_clip:
                params = [p for p in model.parameters() if p.grad is not None]
                if clip_mode == "norm":
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                else:
                    torch.nn.utils.clip_grad_value_(params, grad_clip)
            opt.step()
        if hasattr(model, "after_step"):
            model.after_step(ctx)
        global_step += 1
        n_steps += 1
        sums["train_loss"] = sums.get("train_loss", 0.0) + float(total.detach() if isinstance(total, torch.Tensor) else total)
        for k, v in values.items():
            sums[f"train_{k}"] = sums.get(f"train_{k}", 0.0) + v
            sums[f"weight_{k}"] = sums.get(f"weight_{k}", 0.0) + used[k]
    if n_steps == 0:
        raise ValueError(f"fit: epoch {epoch} yielded no batch")
    row = {"epoch": epoch, "steps": n_steps}
    row.update({k: v / n_steps for k, v in sums.items()})
    return row, global_step
