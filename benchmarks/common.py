"""What every benchmark shares: the library's defaults, how a model is named on the command line,
the CPU a figure was measured on, and how seeds are summarised."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from growclip.model import ModelConfig, load_config
from growclip.train.sections import OptimConfig

BATCH = OptimConfig.batch_size  # the library's defaults: a benchmark measures what users get
LR = OptimConfig.lr
RESULTS = Path(__file__).parent / "results"  # committed summaries of finished runs


def parse_model(spec: str) -> ModelConfig:
    """`name[:field=value,...]`; values are read as JSON where they parse (numbers, true/false)."""
    name, _, overrides = spec.partition(":")
    fields = {}
    for item in filter(None, overrides.split(",")):
        key, _, value = item.partition("=")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    return load_config(name, **fields)


def cpu_name() -> str:
    """The CPU model, and whether it has native bf16 (a figure is named with the machine it ran on)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    return model + (", avx512_bf16" if "avx512_bf16" in info else ", no avx512_bf16")


def median_spread(values: list[float], digits: int = 3) -> str:
    """`median [min-max]` over seeds; the median alone for one seed."""
    middle = f"{statistics.median(values):.{digits}f}"
    return middle if len(values) == 1 else f"{middle} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def save_compute_figure(fig, axes, titles: list[str], xlabel: str, path: Path) -> None:
    """Finish panels drawn against training compute (log x, titled, gridded, the first with the
    legend) and write the figure."""
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
