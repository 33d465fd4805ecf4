"""Study parameters: one dataclass per study, named presets, strict validation.

A notebook's ``parameters`` cell holds plain literals; papermill injects
overrides below it. ``None`` in that cell means "take the preset's value", so
``papermill -p preset standard`` and ``-p seed 3`` both do what they say.

Inside a notebook, ``from_namespace(globals())`` reads the parameters from the
*cells that set them* (IPython's input history, ``In``), not from whatever the
globals hold now: a result variable that shares a parameter's name (``data``,
``beagle``) is never taken for a parameter when a user reruns cells, and a name
the study does not know (papermill ``-p chip_efect 0``) fails the run.

Validation, in order: unknown names (with the nearest valid name), types from
the field annotations (``bool`` is not an ``int``; ``list[int]`` checks every
element; a bare ``list`` checks elements against the types of its default),
non-finite floats (``inf``/``nan`` never pass), the declared ``LIMITS``, then the
subclass's ``check()``.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import math
import types
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

P = TypeVar("P", bound="StudyParams")

PRESET_NAMES = ("quick", "standard", "full")
MAX_SEED = 2**32 - 1  # numpy's seed range; one seed drives numpy, torch and python
INJECTED_HEADER = "# Parameters"  # the first line of the cell papermill injects


class ParameterError(ValueError):
    """A study parameter is unknown, of the wrong type or out of range."""


@dataclasses.dataclass(frozen=True)
class StudyParams:
    """Base class: subclasses add fields, ``PRESETS``, optional ``LIMITS`` and ``check()``."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    # inclusive (low, high) per numeric field, or per element of a list field; None = unbounded
    LIMITS: ClassVar[dict[str, tuple[float | None, float | None]]] = {}

    preset: str = "quick"
    seed: int = 0
    output_dir: str = "runs/study"

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_preset(cls: type[P], preset: str = "quick", **overrides: Any) -> P:
        """Build a preset, apply overrides (``None`` = keep the preset value), validate."""
        if not isinstance(preset, str) or preset not in cls.PRESETS:
            raise ParameterError(
                f"{cls.__name__}: unknown preset {preset!r}; choose one of {sorted(cls.PRESETS)}"
            )
        cls.reject_unknown(overrides)
        values = {**cls.PRESETS[preset], "preset": preset}
        values.update({k: v for k, v in overrides.items() if v is not None})
        params = cls(**values)
        params._check_types()
        params._check_limits()
        params.check()
        return params

    @classmethod
    def reject_unknown(cls, names: Mapping[str, Any] | list[str], where: str = "") -> None:
        """Refuse names that are not fields, suggesting the nearest valid one."""
        fields = cls.field_names()
        unknown = sorted(set(names) - set(fields))
        if not unknown:
            return
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParameterError(
            f"{cls.__name__}: unknown parameter(s) {unknown}{where}: {', '.join(hints)}; "
            f"valid names are {sorted(fields)}"
        )

    @classmethod
    def from_namespace(cls: type[P], namespace: Mapping[str, Any]) -> P:
        """Parameters as a notebook's cells set them (see the module docstring).

        With IPython's input history in ``namespace`` (a kernel's ``globals()``), values come from
        the latest executed parameters cell (only ``name = literal`` lines, one of them ``preset``),
        papermill's injected cell and later literal-only cells that set only parameters. Without
        stored history (a plain mapping; nbval, which executes cells without storing them), the
        fields are picked out of the mapping.
        """
        history = namespace.get("In") or namespace.get("_ih")
        chosen = None
        # a kernel asked not to store history (nbval runs cells with store_history=False) has only ''
        stored = isinstance(history, list) and all(isinstance(s, str) for s in history) and any(
            s.strip() for s in history)
        if stored:
            chosen = cls._values_from_history(history)
            if chosen is None:
                warnings.warn(f"{cls.__name__}.from_namespace: no parameters cell (name = literal lines "
                              "setting preset) was executed; reading the notebook's globals instead",
                              stacklevel=2)
        if chosen is None:
            names = set(cls.field_names())
            chosen = {k: v for k, v in namespace.items() if k in names}
        preset = chosen.pop("preset", None) or "quick"
        return cls.from_preset(preset, **chosen)

    @classmethod
    def _values_from_history(cls, history: list[str]) -> dict[str, Any] | None:
        fields = set(cls.field_names())
        values: dict[str, Any] | None = None
        for number, source in enumerate(history):
            assigned = _assignments(source)
            if not assigned:
                continue
            injected = source.lstrip().startswith(INJECTED_HEADER)
            full = "preset" in assigned and not injected
            partial = not full and not injected and set(assigned) <= fields and _all_literal(assigned)
            if not (full or injected or partial):
                continue
            where = " in papermill's injected parameters" if injected else f" in the parameters cell (In[{number}])"
            cls.reject_unknown(assigned, where)
            parsed = {name: _literal_value(node, name, cls.__name__, where) for name, node in assigned.items()}
            values = parsed if full else {**(values or {}), **parsed}
        return values

    def _check_types(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            where = f"{type(self).__name__}.{f.name}"
            hint = hints.get(f.name, Any)
            value = _coerce(getattr(self, f.name), hint, where, self._default_of(f))
            object.__setattr__(self, f.name, value)

    @classmethod
    def _default_of(cls, f: dataclasses.Field) -> Any:
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return None

    def _check_limits(self) -> None:
        self.require_range("seed", 0, MAX_SEED)
        for name, (low, high) in self.LIMITS.items():
            self.require_range(name, low, high)

    def check(self) -> None:
        """Range checks; subclasses extend (call ``super().check()``) with ``require``/``require_range``."""

    def require(self, condition: bool, name: str, message: str) -> None:
        """Fail naming the parameter unless ``condition``; a non-finite number never passes."""
        value = getattr(self, name)
        if not condition or not _all_finite(value):
            raise ParameterError(f"{type(self).__name__}.{name} = {value!r}: {message}")

    def require_range(self, name: str, low: float | None = None, high: float | None = None) -> None:
        """``low <= value <= high`` for a number, or for every element of a list/tuple (or dict values)."""
        value = getattr(self, name)
        items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        for i, item in enumerate(items):
            ok = (isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item)
                  and (low is None or item >= low) and (high is None or item <= high))
            if not ok:
                at = f" (element {i}: {item!r})" if isinstance(value, list | tuple | dict) else ""
                raise ParameterError(f"{type(self).__name__}.{name} = {value!r}{at}: must be in {bounds}")

    @property
    def output_path(self) -> Path:
        """``output_dir`` as a path; relative paths are taken from the project root, not the cwd."""
        path = Path(self.output_dir)
        return path if path.is_absolute() else project_root() / path

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def project_root() -> Path:
    """The checkout this package lives in (editable install), else the working directory.

    nbval runs notebooks from ``notebooks/`` and papermill from anywhere; resolving
    against the root keeps every run's outputs under the same ``runs/``.
    """
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else Path.cwd()


# --------------------------------------------------------------------------- reading cells


def _assignments(source: str) -> dict[str, ast.expr] | None:
    """``{name: value node}`` when every statement of a cell assigns one plain name, else None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    out: dict[str, ast.expr] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            out[stmt.targets[0].id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            out[stmt.target.id] = stmt.value
        else:
            return None
    return out or None


def _all_literal(assigned: dict[str, ast.expr]) -> bool:
    try:
        for name, node in assigned.items():
            _literal_value(node, name, "", "")
    except ParameterError:
        return False
    return True


def _literal_value(node: ast.expr, name: str, owner: str, where: str) -> Any:
    """A literal, or papermill's spelling of a non-finite float (``float('inf')``)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return float(node.args[0].value)
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ParameterError(
            f"{owner}.{name}{where}: `{name} = {ast.unparse(node)}` is not a plain literal "
            "(the parameters cell holds numbers, strings, booleans, None, lists and dicts only)"
        ) from exc


# --------------------------------------------------------------------------- types


def _coerce(value: Any, hint: Any, where: str, default: Any = None) -> Any:
    """``value`` checked against the annotation ``hint`` (ints widen to float); raises naming ``where``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _coerce(value, option, where, default)
            except ParameterError:
                continue
        raise ParameterError(f"{where}: expected {_type_name(hint)}, got {value!r}")
    if hint is type(None):
        if value is None:
            return value
        raise ParameterError(f"{where}: expected None, got {value!r}")
    container = origin or hint
    if container in (list, tuple, dict):
        return _coerce_container(value, container, args, where, default)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ParameterError(f"{where}: {value!r} is not a finite number")
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif isinstance(hint, type):
        if isinstance(value, hint):
            return value
    else:
        return value  # an annotation we do not model (Literal, a Protocol, ...): the subclass checks it
    raise ParameterError(f"{where}: expected {_type_name(hint)}, got {value!r} ({type(value).__name__})")


def _coerce_container(value: Any, container: type, args: tuple, where: str, default: Any) -> Any:
    if isinstance(value, str):
        value = _parse_json_container(value, container, where)
    expected = (list, tuple) if container in (list, tuple) else dict
    if not isinstance(value, expected):
        raise ParameterError(f"{where}: expected a {container.__name__}, got {value!r} ({type(value).__name__})")
    if container is dict:
        key_t, value_t = args if len(args) == 2 else (_element_type(default, keys=True), _element_type(default))
        return {_coerce(k, key_t, f"{where}[{k!r}] (key)"): _coerce(v, value_t, f"{where}[{k!r}]")
                for k, v in value.items()}
    if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(args) != len(value):
            raise ParameterError(f"{where}: expected {len(args)} elements, got {len(value)} in {value!r}")
        return tuple(_coerce(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, args, strict=True)))
    element = args[0] if args else _element_type(default)
    items = [_coerce(v, element, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if container is tuple else items


def _parse_json_container(text: str, container: type, where: str) -> Any:
    """papermill ``-p arms '["C"]'`` arrives as a string: read it as JSON (or a Python literal)."""
    stripped = text.strip()
    opener = "{" if container is dict else "["
    hint = (f"pass a {container.__name__} with papermill's -y, e.g. -y \"{where.rsplit('.', 1)[-1]}: "
            + ("{a: 1}" if container is dict else "[a, b]") + "\", or as JSON text")
    if not stripped.startswith(opener):
        raise ParameterError(f"{where}: expected a {container.__name__}, got the string {text!r}; {hint}")
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError) as exc:
            raise ParameterError(f"{where}: the string {text!r} is not a valid {container.__name__}; {hint}") from exc


def _element_type(default: Any, *, keys: bool = False) -> Any:
    """For a bare ``list``/``dict`` annotation: the one type its default's elements share (else Any).

    Lists of lists recurse (``{"mmd": [0.1, 0.3]}`` → values ``list[float]``).
    """
    if isinstance(default, dict):
        items = list(default) if keys else list(default.values())
    elif isinstance(default, list | tuple):
        items = list(default)
    else:
        return Any
    if items and all(isinstance(v, list) for v in items):
        inner = {_element_type(v) for v in items if v}
        inner = {float} if inner == {int, float} else inner
        return list[inner.pop()] if len(inner) == 1 else list
    kinds = {type(v) for v in items}
    if not kinds or not kinds <= {int, float, str, bool}:
        return Any
    if kinds == {int, float}:
        return float
    return kinds.pop() if len(kinds) == 1 else Any


def _type_name(hint: Any) -> str:
    if typing.get_args(hint) or not hasattr(hint, "__name__"):
        return str(hint).replace("typing.", "")
    return hint.__name__


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True
