"""How a training setting is declared: one dataclass field carrying its type, default, help,
choices, (if not the usual) flag, range of values, and whether a resumed run may change it. The
CLI's flags, config-file checks and resume checks all read these declarations."""

from __future__ import annotations

import math
from dataclasses import Field, dataclass, field, fields
from typing import Any

_ALLOWED_TYPES = {  # the annotation strings the settings use -> what a value may be
    "str": (str,), "str | None": (str, type(None)), "int": (int,), "int | None": (int, type(None)),
    "float": (int, float), "float | None": (int, float, type(None)), "bool": (bool,),
    "tuple[int, ...]": (tuple,), "tuple[int, ...] | None": (tuple, type(None)),
    "tuple[float, float] | None": (tuple, type(None)),
    "tuple[str, ...] | None": (tuple, type(None)), "tuple[str, ...]": (tuple,), "tuple[float, ...]": (tuple,),
}


@dataclass(frozen=True)
class Range:
    """The values a numeric setting (or each item of a tuple of numbers) may take; always finite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False

    def admits(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        return above and (self.high is None or (value < self.high if self.high_open else value <= self.high))

    def describe(self) -> str:
        bounds = [f"{sign} {_number_text(limit)}" for sign, limit in
                  ((">" if self.low_open else ">=", self.low), ("<" if self.high_open else "<=", self.high))
                  if limit is not None]
        return " and ".join(["a finite number", *bounds]).replace(" and ", " ", 1)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


AT_LEAST_1, AT_LEAST_0, POSITIVE = Range(1), Range(0), Range(0, low_open=True)
FRACTION, MOMENTUM, SEED = Range(0, 1, True, True), Range(0, 1), Range(0, 2**32 - 1)  # NumPy's seeds are 32-bit


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None, flag: str | None = None,
            free: bool = False, limits: Range | None = None) -> Any:
    """A dataclass field carrying its help text, choices, (if not the usual) flag and, for numbers,
    the range of its values; `free`: may differ when a run resumes (where it is written, how it is
    logged or evaluated)."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag, "free": free,
                                            "limits": limits})


def flag_of(f: Field) -> str:
    """The command-line flag of a setting."""
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def check_value(f: Field, value: Any) -> None:
    """Settings from YAML/JSON arrive untyped, and flags parse `inf` and `nan` as numbers: say which
    setting is wrong, by its name and flag, before it fails deep inside or trains on nonsense."""
    allowed = _ALLOWED_TYPES[f.type]
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ValueError(f"setting {f.name} must be {f.type}, got {value!r}")
    choices = f.metadata["choices"]
    if choices is not None and value not in (*choices, None):
        raise ValueError(f"{f.name} must be one of {choices}, got {value!r}")
    limits = f.metadata["limits"]
    items = value if isinstance(value, tuple) else () if value is None else (value,)
    if limits is not None and not all(isinstance(v, int | float) and limits.admits(v) for v in items):
        what = "each item of " if isinstance(value, tuple) else ""
        raise ValueError(f"{what}{f.name} ({flag_of(f)}) must be {limits.describe()}, got {value!r}")


def parse_value(f: Field, value: Any) -> Any:
    """A value as a file gives it, in the setting's type where that is unambiguous: JSON's lists as
    tuples, and YAML 1.1's `1e-3` (read as a string) as the number it means."""
    if f.type.startswith("tuple") and isinstance(value, list | tuple):
        return tuple(value)
    if f.type.startswith("float") and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def as_tuple(value: Any) -> Any:
    """JSON gives lists where the config has tuples."""
    return tuple(as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


class Section:
    """A frozen dataclass of settings that checks each value's type, choices and range when built."""

    def __post_init__(self) -> None:
        for f in fields(self):
            check_value(f, getattr(self, f.name))
