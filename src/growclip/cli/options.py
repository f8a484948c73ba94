"""Shared flag handling: config files (YAML/JSON) overridden by flags given on the command line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from growclip.train.settings import AT_LEAST_0, AT_LEAST_1, SEED, Range


def in_range(kind: type[int] | type[float], limits: Range) -> Callable[[str], int | float]:
    """An argparse type: a number of `kind` within `limits` (finite), else argparse's error naming the flag."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not limits.admits(value):
            raise argparse.ArgumentTypeError(f"must be {limits.describe()}, got {text}")
        return value

    return parse


COUNT, SIZE, SEED_VALUE = in_range(int, AT_LEAST_0), in_range(int, AT_LEAST_1), in_range(int, SEED)


def int_list(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def float_list(text: str) -> tuple[float, ...]:
    """'1,0.9' -> (1.0, 0.9)."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def float_pair(text: str) -> tuple[float, float]:
    """'0.9,1.0' -> (0.9, 1.0)."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two comma-separated numbers, got {text!r}") from None
    return low, high


def separator(text: str) -> str:
    """A one-character column separator; '\\t' as typed in a shell means a tab."""
    text = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected one character (or '\\t'), got {text!r}")
    return text


def add_overwrite_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --output that is not empty (replaces only what growclip writes there)")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping of setting names (dashes or underscores) to values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot parse config ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings at the top level")
    return {key.replace("-", "_"): value for key, value in data.items()}


def given_options(args: argparse.Namespace, exclude: tuple[str, ...] = ("command", "config")) -> dict[str, Any]:
    """Only the flags the user typed: options default to argparse.SUPPRESS and so are absent otherwise."""
    return {key: value for key, value in vars(args).items() if key not in exclude}


def merged_settings(args: argparse.Namespace, check: Callable[[dict[str, Any]], object] | None = None
                    ) -> dict[str, Any]:
    """The config file's settings overridden by the flags given. `check` validates the file's settings
    on their own first, so that an error in the file names the file."""
    file_settings = load_config_file(args.config) if getattr(args, "config", None) else {}
    if file_settings and check is not None:
        try:
            check(file_settings)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{args.config}: {err}") from None
    return {**file_settings, **given_options(args)}
