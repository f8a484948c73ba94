"""The lock that gives a run folder one owner, with nothing but the standard library, so that the
command line can refuse a folder in use before it loads PyTorch.

Two runs on one `--output` would rotate each other's checkpoints away, interleave their logs and
replace each other's settings; a second run on a held folder is refused at once, naming the holder.
The lock is a POSIX record lock (`fcntl.lockf`) on `RUN/.growclip.lock`, which the kernel releases
when its process ends however it ends (SIGKILL included) and which forked loader workers do not
inherit, so a dead run's folder is free again at once and the next run takes it over (the lock file
still names the dead holder, and the take-over says so).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

LOCK_FILE = ".growclip.lock"
logger = logging.getLogger(__name__)


class RunFolderError(ValueError):
    """The run folder is held by another run, or holds a run this command would replace."""


@dataclass(frozen=True)
class Holder:
    """Who holds a run folder, as written into its lock file."""

    host: str
    pid: int
    started: str
    command: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), datetime.now().astimezone().isoformat(timespec="seconds"),
                   " ".join(sys.argv))

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started} ({self.command})"


class RunLock:
    """An exclusive, non-blocking lock on a run folder; the file names the holder while it is held."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    def _lock(self) -> int | None:
        """An open descriptor holding the lock; None where the file system has no locks (said once).
        Held by another process: RunFolderError naming it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _holder(fd)
            os.close(fd)
            if err.errno not in (errno.EACCES, errno.EAGAIN):  # a file system without locks: train, but say so
                logger.warning("%s: cannot lock the run folder (%s); a second run on it would not be refused",
                               self.path.parent, err.strerror)
                return None
            who = holder.describe() if holder else "another process"
            raise RunFolderError(f"{self.path.parent} is in use by {who}; wait for it to end, stop it, or "
                                 f"choose another --output") from None
        return fd

    def check_free(self) -> None:
        """Refuse at once if another process holds the folder; takes nothing (the run claims it later).
        Needs no PyTorch, so the command line can answer before loading it."""
        if self.path.is_file() and (fd := self._lock()) is not None:
            os.close(fd)  # closing releases a POSIX lock

    def acquire(self) -> None:
        fd = self._lock()
        if fd is None:
            return
        previous = _holder(fd)
        if previous is not None:
            logger.warning("%s: taking over from %s, which ended without releasing it", self.path.parent,
                           previous.describe())
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(Holder.this_process())).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Clears the holder's name, so the next run sees a clean hand-over, and unlocks."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> Holder | None:
    return Holder.parse(os.pread(fd, 1 << 16, 0).decode("utf-8", "replace"))
