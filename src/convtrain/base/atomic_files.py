"""Atomic file writes: every file convtrain writes goes through here.

The bytes go to a temporary file beside the target, are flushed and fsynced, and only then renamed
over it, so a crash, a full disk or Ctrl-C never leaves half a file, and a reader (evaluate, predict,
a second terminal) always sees either the old file or the new one. A disk that is full or read-only,
or a folder that vanished, is a one-line DiskError naming the file, what it needed and what is free.

    write_text_atomic(Path("runs/x/metrics.csv"), "epoch,...\n")
    atomic_write(Path("runs/x/last.pt"), lambda file: torch.save(state, file), size=2_600_000)
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from convtrain.base.errors import DiskError

# what an OSError of each kind means for a file about to be written
DISK_PROBLEMS = {
    errno.ENOSPC: "no space left on its disk",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "its file system is read-only",
    errno.EACCES: "its folder may not be written to",
    errno.EPERM: "its folder may not be written to",
    errno.ENOENT: "its folder no longer exists",
}


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any], size: int | None = None) -> Path:
    """Call write(file_object) on a temporary file beside `path`, fsync it, then rename it into place.
    `size`, the bytes the file will take if known, is checked against the free space first, so a file
    that cannot fit is refused before anything is written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if size is not None:
            check_room(path.parent, size, f"writing {path}")
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise disk_error(path, error, size) from None
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name points at it
        os.replace(temporary, path)
    except BaseException as error:
        written = _size(temporary)
        Path(temporary).unlink(missing_ok=True)
        cause = os_error_in(error)
        if cause is None or (cause.errno == errno.ENOENT and path.parent.is_dir()):
            raise  # not a disk problem (a missing file the writer read is its own error)
        raise disk_error(path, cause, size, written) from None
    return path


def check_room(
    folder: str | Path, needed: int, what: str, fix: str = "free some space there or write to another disk"
) -> None:
    """Raise a one-line DiskError when the disk holding `folder` has less than `needed` bytes free."""
    free = free_bytes(folder)
    if free is not None and free < needed:
        raise DiskError(
            f"{what} needs {human_bytes(needed)} and its disk ({_mount(folder)}) has {human_bytes(free)} free; {fix}"
        )


def disk_error(path: Path, error: OSError, size: int | None = None, written: int = 0) -> DiskError:
    """The one line for an OSError met while writing `path`: what went wrong, the space, the fix."""
    problem = DISK_PROBLEMS.get(error.errno)
    if problem is None:
        return DiskError(f"cannot write {path} ({error.strerror or error}); check the folder and the disk")
    free = free_bytes(path.parent)
    space = ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        needs = f"it needs {human_bytes(size)}, and " if size else ""
        needs = needs or (f"it needs more than the {human_bytes(written)} written, and " if written else "")
        space = f": {needs}{human_bytes(free or 0)} is free on {_mount(path.parent)}"
    fix = "free some space there or write to another disk" if space else "choose a folder that can be written"
    return DiskError(f"cannot write {path}, {problem}{space}; {fix}")


def os_error_in(error: BaseException) -> OSError | None:
    """The OSError of a disk problem behind `error`, itself or in its chain (torch.save turns a full
    disk into a RuntimeError 'unexpected pos' raised while handling the OSError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in DISK_PROBLEMS:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def free_bytes(folder: str | Path) -> int | None:
    """Free bytes on the disk holding `folder` (its nearest existing parent), or None if unknown."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        return shutil.disk_usage(existing).free
    except OSError:
        return None


def human_bytes(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def _mount(folder: str | Path) -> str:
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    while not os.path.ismount(existing) and existing != existing.parent:
        existing = existing.parent
    return str(existing)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda file: file.write(text.encode()))


def write_json_atomic(path: str | Path, values: Any, compact: bool = False) -> Path:
    text = json.dumps(values, separators=(",", ":")) if compact else json.dumps(values, indent=2) + "\n"
    return write_text_atomic(path, text)
