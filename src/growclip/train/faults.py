"""Stopping a run without losing it: preemption signals and non-finite steps.

Schedulers stop jobs with SIGTERM (SLURM sends SIGUSR1 first when asked to), people with Ctrl-C;
a run that gets one finishes its current step (or ends its wait), saves a checkpoint and exits with
128 + the signal number (143 for SIGTERM, 138 for SIGUSR1, 130 for SIGINT), the code a shell
reports for a job killed by that signal, so
that a scheduler or `torchrun --max-restarts` sees a preempted run, and `--resume latest`
continues it bit for bit.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from growclip.train.distributed import launched_size

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)  # SIGINT: Ctrl-C
PAUSE_SLICE = 0.1  # seconds: how soon a wait notices a stop request
_received: list[int] = []
_depth = [0]  # nested `preemption_signals` blocks: the outermost installs and restores the handlers


class Preempted(Exception):  # a stop that was asked for, not an error
    """Raised at the first step boundary after a preemption signal, once the checkpoint is saved."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class NonFiniteError(RuntimeError):
    """Too many steps in a row had a non-finite loss or gradient; the run stops without saving them."""


@contextmanager
def preemption_signals() -> Iterator[None]:
    """While inside, SIGTERM, SIGUSR1 and SIGINT (Ctrl-C; twice: at once) only ask the run to stop at
    the next step boundary or within a `pause` (`stop_requested`); outside, and off the main thread,
    signals keep their usual handlers. SIGINT is handled even where a shell started the job with it
    ignored (a background job), so `kill -INT` stops a run as Ctrl-C does.

    Under torchrun, SIGTERM keeps its usual effect: the agent sends it to the surviving ranks when
    one dies, and a rank that waited for the next step boundary would wait in a collective with the
    dead one. SIGUSR1 (the scheduler's warning) still stops every rank at the same step."""
    if threading.current_thread() is not threading.main_thread() or _depth[0]:
        yield
        return
    deferred = [s for s in PREEMPTION_SIGNALS
                if not (s == signal.SIGTERM and launched_size() > 1)]
    previous = {signum: signal.signal(signum, _request_stop) for signum in deferred}
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received.clear()


def _request_stop(signum: int, _frame: object) -> None:
    if signum == signal.SIGINT and signal.SIGINT in _received:
        raise KeyboardInterrupt  # Ctrl-C twice: stop now (the last completed step is still saved)
    _received.append(signum)


def stop_requested() -> int:
    """The first preemption signal received (0: none)."""
    return _received[0] if _received else 0


def pause(seconds: float) -> None:
    """`time.sleep` for the waits of a run (a watched folder's next chunk): a stop request ends it
    within PAUSE_SLICE by raising Preempted, so a preempted run never sits out its grace period."""
    deadline = time.monotonic() + seconds
    while True:
        if stop_requested():
            raise Preempted(stop_requested())
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, PAUSE_SLICE))
