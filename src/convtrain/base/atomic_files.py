"""Atomic file writes: every file convtrain writes goes through here.

The bytes go to a temporary file beside the target, are flushed and fsynced, and only then renamed
over it, so a crash, a full disk or Ctrl-C never leaves half a file, and a reader (evaluate, predict,
a second terminal) always sees either the old file or the new one.

    write_text_atomic(Path("runs/x/metrics.csv"), "epoch,...\n")
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call write(file_object) on a temporary file beside `path`, fsync it, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name points at it
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda file: file.write(text.encode()))


def write_json_atomic(path: str | Path, values: Any, compact: bool = False) -> Path:
    text = json.dumps(values, separators=(",", ":")) if compact else json.dumps(values, indent=2) + "\n"
    return write_text_atomic(path, text)
