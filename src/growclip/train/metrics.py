"""Run metrics: append-only JSONL (one JSON object per line, flushed as written), and optionally
the same numbers as TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS, TENSORBOARD_DIR = "metrics.jsonl", "tensorboard"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a metrics.jsonl; a line cut short by a crash is ignored."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLog:
    """`resume_step`: records after that step (written by the run that was interrupted) are dropped,
    so a resumed run's log reads as if it had never stopped."""

    def __init__(self, path: str | Path, tensorboard: bool = False, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        elif resume_step is None:
            self.path.write_text("", encoding="utf-8")
        self._handle = self.path.open("a", encoding="utf-8")
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported only when asked for: it is slow

            purge = None if resume_step is None else resume_step + 1
            self._writer = SummaryWriter(str(self.path.parent / TENSORBOARD_DIR), purge_step=purge)

    def write(self, record: dict[str, Any], group: str = "train") -> None:
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        if self._writer is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                    self._writer.add_scalar(f"{group}/{name}", value, record["step"])
            self._writer.flush()

    def close(self) -> None:
        self._handle.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
