"""open_clip's own virtual environment, for the peer benchmarks and the interop tests.

open_clip pulls its own torch and torchvision (a pair this machine's pip offers; newer ones are CUDA
downloads), so it is never a growclip dependency: growclip is added to its environment with
`--no-deps`, beside growclip's other dependencies, pytest and transformers (via open_clip's
`training` extra).

    python -m benchmarks.peer_env [.venv-peer]      # made once; prints its python
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENV = ROOT / ".venv-peer"
PEER_PACKAGES = ("open-clip-torch[training]==3.3.0", "torch==2.14.1", "torchvision==0.29.1", "pytest>=8")
READY = ".growclip-peer-ready"


def ensure_peer_env(env: Path = DEFAULT_ENV) -> Path:
    """-> the environment's python, making the environment first if it is not ready."""
    python = env / "bin" / "python"
    if (env / READY).exists():
        return python
    print(f"making open_clip's virtual environment in {env} (once; a few minutes)", flush=True)
    subprocess.check_call([sys.executable, "-m", "venv", str(env)])
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.check_call([*pip, *PEER_PACKAGES])
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    subprocess.check_call([*pip, *(d for d in dependencies if not d.startswith("torch"))])
    subprocess.check_call([*pip, "--no-deps", "-e", str(ROOT)])
    (env / READY).touch()
    return python


if __name__ == "__main__":
    print(ensure_peer_env(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_ENV))
