"""Study parameters: one dataclass per study, named presets, strict validation.

A notebook's ``parameters`` cell holds plain literals; papermill injects
overrides below it. ``None`` in that cell means "take the preset's value", so
``papermill -p preset standard`` and ``-p seed 3`` both do what they say.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

P = TypeVar("P", bound="StudyParams")

PRESET_NAMES = ("quick", "standard", "full")


class ParameterError(ValueError):
    """A study parameter is unknown, of the wrong type or out of range."""


@dataclasses.dataclass(frozen=True)
class StudyParams:
    """Base class: subclasses add fields, ``PRESETS`` and ``check()``."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    preset: str = "quick"
    seed: int = 0
    output_dir: str = "runs/study"

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_preset(cls: type[P], preset: str = "quick", **overrides: Any) -> P:
        """Build a preset, apply overrides (``None`` = keep the preset value), validate."""
        if preset not in cls.PRESETS:
            raise ParameterError(
                f"{cls.__name__}: unknown preset {preset!r}; choose one of {sorted(cls.PRESETS)}"
            )
        unknown = sorted(set(overrides) - set(cls.field_names()))
        if unknown:
            raise ParameterError(
                f"{cls.__name__}: unknown parameter(s) {unknown}; "
                f"valid names are {sorted(cls.field_names())}"
            )
        values = {**cls.PRESETS[preset], "preset": preset}
        values.update({k: v for k, v in overrides.items() if v is not None})
        params = cls(**values)
        params._check_types()
        params.check()
        return params

    @classmethod
    def from_namespace(cls: type[P], namespace: Mapping[str, Any]) -> P:
        """Pick this study's fields out of a notebook's globals (the parameters cell)."""
        names = set(cls.field_names())
        chosen = {k: v for k, v in namespace.items() if k in names}
        preset = chosen.pop("preset", None) or "quick"
        return cls.from_preset(preset, **chosen)

    def _check_types(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = _plain_type(f.type)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
                continue
            if expected is not None and not isinstance(value, expected):
                raise ParameterError(
                    f"{type(self).__name__}.{f.name}: expected {f.type}, got {value!r}"
                )

    def check(self) -> None:
        """Range checks; subclasses extend and call ``require``."""
        self.require(self.seed >= 0, "seed", "must be >= 0")

    def require(self, condition: bool, name: str, message: str) -> None:
        if not condition:
            raise ParameterError(
                f"{type(self).__name__}.{name} = {getattr(self, name)!r}: {message}"
            )

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


def _plain_type(annotation: Any) -> type | tuple[type, ...] | None:
    """Map a field annotation (a string under postponed evaluation) to isinstance types."""
    table: dict[str, type | tuple[type, ...]] = {
        "int": int,
        "float": (float, int),
        "str": str,
        "bool": bool,
        "list": list,
        "tuple": tuple,
    }
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if text == "float":
        return float
    base = text.split("[", 1)[0].strip()
    if "|" in text or "None" in text:
        return None
    return table.get(base)
