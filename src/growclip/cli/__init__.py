"""The `growclip` command: `train`, `eval`, `grow`, `report`, `data`, `import` and `export`.

Flags become frozen configs here, at the edge. A `train` into a run folder that another run holds is
refused before PyTorch and the rest are loaded (they take seconds to import), so a second job on the
same folder hears why at once."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from growclip.run_lock import RunFolderError, RunLock


def _given_output(argv: Sequence[str]) -> str | None:
    """`--output` of a `train` command line, when typed there (a config file's is checked later); under
    torchrun only rank 0 claims the folder, so only it checks."""
    if not argv or argv[0] != "train" or os.environ.get("RANK", "0") != "0":
        return None
    for index, arg in enumerate(argv):
        if arg == "--output" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--output="):
            return arg.partition("=")[2]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    output = _given_output(argv)
    if output is not None:
        try:
            RunLock(Path(output)).check_free()
        except RunFolderError as err:
            print(f"growclip train: error: {err}", file=sys.stderr)
            return 2
    from growclip.cli.commands import run_command  # PyTorch and the library: seconds to import

    return run_command(argv)
