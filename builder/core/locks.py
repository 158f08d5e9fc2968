"""One run per directory: a lock file naming its holder (host and pid), stale ones cleared.

``DIR/.run.lock`` is held with ``flock`` for as long as the run lives, and holds
``{"host": ..., "pid": ...}`` of the process that took it. The kernel releases an ``flock``
when its holder dies however it dies (``kill -9`` included), so a lock file left by a dead
process is stale by construction: the next run takes it over and says so. Both the runner
(``run-network DIR``) and the sweep farm use this one helper; the farm takes the lock of a run
before starting its child and hands the open descriptor to the child (:data:`FD_ENV`), which
adopts it, so a runner that outlives a killed farm keeps its run locked.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from pathlib import Path

from .errors import RunError

__all__ = ["LOCK_FILE", "FD_ENV", "RunLock", "LockedError", "holder"]

log = logging.getLogger("builder.core.locks")

LOCK_FILE = ".run.lock"
#: Environment variable through which a parent hands an already held lock to its child.
FD_ENV = "L5NET_RUN_LOCK_FD"


class LockedError(RunError):
    """The directory is being run by another process."""


def _host() -> str:
    return socket.gethostname()


def _read(fd: int) -> dict[str, object]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode() or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def _describe(info: dict[str, object]) -> str:
    if not info:
        return "another process"
    return f"process {info.get('pid', '?')} on {info.get('host', '?')}"


def holder(directory: str | os.PathLike) -> dict[str, object] | None:
    """Who holds the lock of ``directory`` (host, pid), or None when nobody does."""
    path = Path(directory) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or {"host": "?", "pid": "?"}
        return None
    finally:
        os.close(fd)


class RunLock:
    """The lock of one run directory; use as a context manager.

    Parameters
    ----------
    directory : path-like
        The directory to lock (``directory/.run.lock``).
    what : str
        What the lock protects, for the message of a refused second run.

    Raises
    ------
    LockedError
        On entry, when a live process holds the lock (the message names its host and pid).
    RunError
        The lock file cannot be created (e.g. the directory is not writable).
    """

    def __init__(self, directory: str | os.PathLike, what: str = "run") -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.what = what
        self.fd: int | None = None

    # -------------------------------------------------------------- acquire / release
    def acquire(self) -> RunLock:
        inherited = os.environ.pop(FD_ENV, None)
        if inherited is not None and self._adopt(int(inherited)):
            return self
        for _ in range(5):  # retry if the file was replaced between open and flock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunError(
                    f"{self.path}: cannot create the run lock ({exc.strerror or exc})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read(fd)
                os.close(fd)
                raise LockedError(
                    f"{self.directory}: already being run by {_describe(info)} "
                    f"(lock {self.path}); wait for it to finish or stop it first"
                ) from None
            if not self._same_file(fd):
                os.close(fd)
                continue
            stale = _read(fd)
            if stale:
                log.info("%s: cleared the stale lock of %s", self.path, _describe(stale))
            self.fd = fd
            self._write()
            return self
        raise RunError(f"{self.path}: the lock file keeps changing; is something removing it?")

    def _adopt(self, fd: int) -> bool:
        """Take over a lock our parent holds (same file, still locked by the shared handle)."""
        try:
            if not self._same_file(fd):
                return False
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already: succeeds at once
        except OSError:
            return False
        self.fd = fd
        self._write()
        return True

    def _same_file(self, fd: int) -> bool:
        try:
            st, sp = os.fstat(fd), os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (sp.st_dev, sp.st_ino)

    def _write(self) -> None:
        assert self.fd is not None
        text = json.dumps({"host": _host(), "pid": os.getpid()}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text, 0)

    def release(self) -> None:
        """Clear and release the lock (the file stays: removing it would race a new holder)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
