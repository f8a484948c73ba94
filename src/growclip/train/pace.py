"""The pace of training over one logging window: samples per second, and how much of the window
went to waiting for batches, which past `LOADER_BOUND` means the loader, not the model, sets the
pace (said once per run, with the flag that helps)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)
LOADER_BOUND = 0.3  # share of a logging window spent waiting for batches that earns a warning


@dataclass(frozen=True)
class Pace:
    samples_per_s: float
    data_wait: float  # share of the window's time spent waiting for batches


class PaceWindow:
    """Counts a logging window's steps and data waits; `close` gives its `Pace` and opens the next.
    `clock` is injectable so that the warning can be tested without a slow loader."""

    def __init__(self, step_samples: int, workers: int, warn: bool = True,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.step_samples, self.workers, self.warn, self.clock = step_samples, workers, warn, clock
        self.speeds: list[float] = []  # samples/s of every closed window
        self.open()

    def open(self) -> None:
        """A new window starts now (also when training starts, after a resume's loading)."""
        self.start, self.steps, self.waited = self.clock(), 0, 0.0

    def stepped(self, waited: float) -> None:
        """One optimizer step, of which `waited` seconds went to waiting for its batches."""
        self.steps += 1
        self.waited += waited

    def close(self) -> Pace:
        seconds = max(self.clock() - self.start, 1e-9)
        pace = Pace(self.steps * self.step_samples / seconds, self.waited / seconds)
        if pace.data_wait > LOADER_BOUND and self.warn:
            self.warn = False
            logger.warning("the data loader limits training: %.0f%% of the last steps' time went to waiting "
                           "for batches; raise --workers (now %d)", 100 * pace.data_wait, self.workers)
        self.speeds.append(pace.samples_per_s)
        self.open()
        return pace
