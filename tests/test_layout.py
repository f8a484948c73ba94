"""The package layering that docs/architecture.md draws, and the short-function rule, kept by tests."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "growclip"
# what each package may import from growclip (besides itself); everything may import runtime and run_lock
ALLOWED = {"model": set(), "data": {"model"}, "eval": {"model", "data"}, "growth": {"model"},
           "checkpoint": {"model", "data"}, "train": {"model", "data", "eval", "growth", "checkpoint"},
           "interop": {"model", "data", "checkpoint"},
           "cli": {"model", "data", "eval", "growth", "checkpoint", "train", "interop"}}
MAX_FUNCTION_LINES = 40
MAX_TRAIN_FILE_LINES = 250  # the training package is read top to bottom: files it takes one sitting to read


def _growclip_imports(path: Path) -> set[str]:
    packages = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        packages |= {name.split(".")[1] for name in names if name.startswith("growclip.") and name.count(".")}
    return packages


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_the_layers_below_them(package):
    for path in sorted((SRC / package).rglob("*.py")):
        upward = _growclip_imports(path) - ALLOWED[package] - {package, "runtime", "run_lock"}
        assert not upward, f"{path.relative_to(SRC)} imports {sorted(upward)}"


def test_no_function_is_longer_than_40_lines():
    long = [f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(SRC.rglob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long


def test_no_training_module_is_longer_than_250_lines():
    lengths = {path: len(path.read_text().splitlines()) for path in sorted((SRC / "train").glob("*.py"))}
    long = [f"{path.relative_to(SRC)} ({n} lines)" for path, n in lengths.items() if n > MAX_TRAIN_FILE_LINES]
    assert not long, long
