"""Advisory file locks (flock): one process at a time holds the lock of a path, and the kernel lets
go of it when the process ends however it ends (SIGKILL included), so a lock never outlives its
holder and never needs clearing by hand. The lock file itself stays (deleting it while another
process waits on it would let a third take a lock of the same name at once).

Where flock does not exist (Windows) every lock is taken at once: nothing is serialised there.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:   # Windows
    fcntl = None


class FileLock:
    """The lock of `path` (the lock file, made if missing). Use `with FileLock(p):` to wait for it,
    or `acquire(wait=False)` to take it only if it is free."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, wait: bool = True) -> bool:
        """Take the lock: True once held; with `wait` False, False at once if another process holds
        it. Raises OSError if the lock file cannot be made."""
        if self._fd is not None:
            return True
        if fcntl is None:
            self._fd = -1
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:   # Ctrl-C while waiting, say
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if fd >= 0:
            os.close(fd)   # closing the descriptor lets go of the lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        self.acquire(wait=True)
        return self

    def __exit__(self, *exc) -> None:
        self.release()
