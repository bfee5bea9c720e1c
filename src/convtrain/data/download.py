"""Downloads and checksums for the registered datasets: one file at a time, never half-written.

A download goes to `<file>.<pid>.part` and is renamed into place only once complete and matching its
official md5; anything else deletes it and raises DownloadError saying which file to place by hand.
A file the user placed is read even if its md5 differs (see md5_matches), with a note.

    python -c "from convtrain.data.download import md5_of; print(md5_of('train-images-idx3-ubyte.gz'))"
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

from tqdm import tqdm

from convtrain.base.errors import DownloadError

CHUNK = 1 << 20  # bytes per read: large enough that the progress bar costs nothing
TIMEOUT_S = 60  # seconds without data before giving up on a connection


def md5_of(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest: Path, md5: str, description: str) -> Path:
    """Fetch url to dest (through a .part file), check its md5, and return dest.

    Raises DownloadError with one line naming the url and where to place the file by hand when the
    network fails or the md5 differs; no partial file is left behind either way.
    """
    dest = Path(dest)
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")  # one per process: ranks may fetch at once
    by_hand = f"place {dest.name} by hand at {dest}"
    digest = hashlib.md5()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with urlopen(url, timeout=TIMEOUT_S) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=description, disable=not sys.stderr.isatty()
            ) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
        if total is not None and done != total:
            raise DownloadError(
                f"download of {url} stopped after {done} of {total} bytes; try again or {by_hand}"
            )
    except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError and timeouts are OSErrors
        part.unlink(missing_ok=True)
        reason = e if isinstance(e, HTTPError) else getattr(e, "reason", e)  # "HTTP Error 404: Not Found"
        raise DownloadError(f"could not download {url} ({reason}); {by_hand}") from None
    except BaseException:  # the DownloadError above, or Ctrl-C: never leave the .part file
        part.unlink(missing_ok=True)
        raise
    if md5 and digest.hexdigest() != md5:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url} has md5 {digest.hexdigest()}, not the official {md5}: the download was deleted; try again or {by_hand}"
        )
    os.replace(part, dest)  # atomic: dest is either absent or complete
    return dest


def md5_matches(path: Path, md5: str) -> bool:
    """True if the file's md5 is the official one (or none is known). A user's copy that differs is
    still read when its format checks out; callers note the difference in ImageData.notes."""
    return not md5 or md5_of(path) == md5
