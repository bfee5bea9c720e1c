"""One writer per run folder: run.lock, created exclusively and held for the life of the run.

The file is created with O_CREAT|O_EXCL, so of two processes racing for one folder exactly one
creates it, and it records the holder's pid, host and start time. The holder also keeps an flock on
it: the kernel drops that lock when the process dies in any way (SIGKILL, a crash, a lost NFS client
after its lease), so a later --resume can tell a stale lock from a live one without trusting pids.

    lock = RunLock(Path("runs/x/run.lock")); note = lock.acquire(takeover=False); ...; lock.release()
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

from convtrain.base.errors import ConvtrainError

try:
    import fcntl
except ImportError:  # Windows: liveness falls back to the pid on this host
    fcntl = None


class RunFolderBusy(ConvtrainError):
    """Another live process is training into the run folder."""


class RunLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self, takeover: bool) -> str:
        """Hold the lock, or raise RunFolderBusy naming the live holder. A dead holder's lock is taken
        over only with takeover=True (--resume); returns a one-line note when that happened."""
        for _ in range(5):  # a holder that releases between our steps makes us look again
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
                stale = None
            except FileExistsError:
                try:
                    fd = os.open(self.path, os.O_RDWR)
                except FileNotFoundError:
                    continue
                stale = _read_holder(fd)
            if not _lock(fd):
                os.close(fd)
                raise RunFolderBusy(_busy_message(self.path, stale or {}))
            if not _same_file(fd, self.path):  # released and unlinked while we waited: try afresh
                os.close(fd)
                continue
            if stale is not None and not takeover:
                os.close(fd)
                raise RunFolderBusy(
                    f"run folder {self.path.parent} was left by process {stale.get('pid', '?')} on "
                    f"{stale.get('host', '?')}, which is no longer running; continue it with --resume {self.path.parent}"
                )
            try:
                _write_holder(fd)
            except OSError:  # a full or read-only disk: leave no lock file behind (the caller says why)
                os.close(fd)
                if stale is None:
                    self.path.unlink(missing_ok=True)
                raise
            self.fd = fd
            if stale is None:
                return ""
            return (
                f"took over {self.path.name} from process {stale.get('pid', '?')} on {stale.get('host', '?')} "
                f"(started {stale.get('started', '?')}), which is no longer running"
            )
        raise RunFolderBusy(f"could not take {self.path}: other processes keep replacing it; try again")

    def release(self) -> None:
        if self.fd is None:
            return
        if _same_file(self.fd, self.path):
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # closing drops the flock
        self.fd = None


def _lock(fd: int) -> bool:
    """True if this process now holds the flock (no live holder); False if a live process does."""
    if fcntl is None:
        return _holder_dead(_read_holder(fd))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # a filesystem without flock: judge by the pid, when the holder is on this host
        return _holder_dead(_read_holder(fd))


def _holder_dead(holder: dict | None) -> bool:
    if not holder or holder.get("host") != socket.gethostname():
        return not holder  # another host's holder cannot be checked: treat it as alive
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, KeyError, TypeError):
        return False
    return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        values = json.loads(os.read(fd, 4096).decode() or "{}")
        return values if isinstance(values, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(holder) + "\n").encode())
    os.fsync(fd)


def _busy_message(path: Path, holder: dict) -> str:
    return (
        f"run folder {path.parent} is in use by process {holder.get('pid', '?')} on {holder.get('host', '?')} "
        f"(started {holder.get('started', '?')}); wait for it to finish or stop it, or pass another --out"
    )
