"""IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST): parse and check them, and assemble the registered datasets.

An IDX file is a 4-byte magic number (0, 0, dtype code 0x08 for uint8, number of dims), one
big-endian uint32 per dim, then the values: 2051 for (N, rows, cols) images, 2049 for (N,) labels.
Files may be gzip-compressed or not; MNIST falls back to the copy bundled with convtrain. EMNIST's
files are read from its official zip (`gzip/emnist-<split>-*.gz` inside) unless unpacked beside it;
its images are stored transposed, and its letters count from 1.

    python -c "from convtrain.data.formats.idx import read_idx; print(read_idx('t10k-labels-idx1-ubyte.gz', 'labels').shape)"
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zipfile
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from convtrain.base.errors import DataError, reason
from convtrain.data.dataset import ImageData, Split
from convtrain.data.download import download_file, md5_matches
from convtrain.data.spec import DataFile, DatasetSpec

MAGIC = {"images": 2051, "labels": 2049}
DIMS = {"images": 3, "labels": 1}
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path, raw: bytes | None = None) -> bytes:
    """The uncompressed contents of an IDX file (or of raw, its bytes), gzip or not (told apart by content)."""
    try:
        raw = Path(path).read_bytes() if raw is None else raw
        return gzip.decompress(raw) if raw[:2] == GZIP_MAGIC else raw
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut-off gzip is an EOFError
        raise DataError(f"cannot read {path} ({reason(e)}): corrupt or truncated; replace the file") from None


def read_zip_members(archive: Path, names: list[str]) -> dict[str, bytes]:
    """The named members of a zip, as bytes; a damaged zip or a missing member is a one-line DataError."""
    try:
        with zipfile.ZipFile(archive) as z:
            present = set(z.namelist())
            lacking = [n for n in names if n not in present]
            if lacking:
                raise DataError(
                    f"{archive} lacks {', '.join(lacking)}: it is not the official archive; replace it"
                )
            return {n: z.read(n) for n in names}
    except (
        OSError,
        EOFError,
        ValueError,
        RuntimeError,
        NotImplementedError,
        zipfile.BadZipFile,
        zlib.error,
    ) as e:
        raise DataError(
            f"cannot read {archive} ({reason(e)}): corrupt or truncated; delete it and download again"
        ) from None


def parse_idx(raw: bytes, path: str | Path, kind: str) -> np.ndarray:
    """Check an IDX file's magic number, dims and size; return a uint8 array of shape dims."""
    if len(raw) < 4:
        raise DataError(f"{path} is {len(raw)} bytes long: too short for an IDX file (replace it)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != MAGIC[kind]:
        raise DataError(
            f"{path} starts with magic number {magic}, expected {MAGIC[kind]} for IDX {kind}: not an IDX {kind} file"
        )
    header = 4 + 4 * DIMS[kind]
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header ({len(raw)} bytes); replace the file")
    dims = tuple(int.from_bytes(raw[i : i + 4], "big") for i in range(4, header, 4))
    if kind == "images" and (dims[1] == 0 or dims[1] != dims[2]):
        raise DataError(
            f"{path} holds {dims[1]}x{dims[2]} images; convtrain expects square, non-empty images"
        )
    expected = header + math.prod(dims)  # Python ints: np.prod would wrap around for huge dims
    if len(raw) != expected:
        problem = "is truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(
            f"{path} {problem}: {len(raw)} bytes for dims {dims}, expected {expected}; replace the file"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Read and check one IDX file ('images' -> (N, rows, cols), 'labels' -> (N,)), as uint8."""
    return parse_idx(read_bytes(path), path, kind)


def to_split(images: np.ndarray, labels: np.ndarray, num_classes: int, where: str, first: int = 0) -> Split:
    """A Split from (N, H, W) images and (N,) labels counted from `first`, after checking counts and range."""
    if len(images) != len(labels):
        raise DataError(
            f"{where}: {len(images)} images but {len(labels)} labels; the files do not belong together"
        )
    if len(labels) == 0:
        raise DataError(f"{where}: no images")
    labels = labels.astype(np.int64) - first
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(
            f"{where}: labels span {labels.min() + first}..{labels.max() + first}, outside "
            f"{first}..{num_classes - 1 + first} for {num_classes} classes"
        )
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, H, W), writable copy of the file buffer
    return Split(labels=torch.from_numpy(labels), images=x)


def _find_local(folder: Path, name: str) -> Path | None:
    # Prefer the uncompressed file (faster to read) when both it and the .gz are there.
    for candidate in (folder / name.removesuffix(".gz"), folder / name):
        if candidate.is_file():
            return candidate
    return None


def _bundled(spec: DatasetSpec) -> dict[str, bytes]:
    package = resources.files("convtrain.data") / "bundled"
    return {f.name: gzip.decompress((package / f.name).read_bytes()) for f in spec.files}


def _is_official(f: DataFile, path: Path, raw: bytes) -> bool:
    if f.content_md5:  # the md5 of the uncompressed bytes survives recompression, so check it when known
        return hashlib.md5(raw).hexdigest() == f.content_md5
    return path.name != f.name or md5_matches(path, f.md5)  # only the file as published has a known md5


def _from_archive(spec: DatasetSpec, archive: Path, missing: list[str]) -> dict[str, bytes]:
    """The missing files read from the dataset's zip (downloaded first if absent), by their names inside it."""
    if not archive.is_file():
        download_file(spec.url_base + Path(spec.archive.name).name, archive, spec.archive.md5, archive.name)
    inside = {name: f"{spec.archive_dir}/{name}" for name in missing}
    members = read_zip_members(archive, list(inside.values()))
    return {name: members[member] for name, member in inside.items()}


def load_idx_dataset(spec: DatasetSpec, root: Path, download: bool) -> ImageData:
    """An IDX set from `<root>/<spec.folder>/`, else bundled (MNIST), read from its zip (EMNIST) or downloaded."""
    folder = root / spec.folder
    local = {f.name: _find_local(folder, f.name) for f in spec.files}
    missing = [name for name, path in local.items() if path is None]
    notes: list[str] = []
    if spec.bundled and missing:
        if len(missing) < len(local):
            notes.append(f"{folder} lacks {', '.join(missing)}: using the {spec.name} bundled with convtrain")
        raws = _bundled(spec)
        where = {name: f"bundled {name}" for name in raws}
        source = f"{spec.name} bundled with convtrain"
    else:
        archive = root / spec.archive.name if spec.archive else None
        if missing and not download and not (archive and archive.is_file()):
            also = f", or {spec.archive.name} in {root / Path(spec.archive.name).parent}" if archive else ""
            raise DataError(
                f"{spec.name} not found: place {', '.join(missing)} (gzipped or not) in {folder}{also}, "
                "or allow downloads (drop --no-download)"
            )
        zipped = _from_archive(spec, archive, missing) if archive and missing else {}
        raws, where, differ = {}, {}, []
        for f in spec.files:
            if f.name in zipped:
                raws[f.name], where[f.name] = (
                    read_bytes(f"{archive}:{f.name}", zipped[f.name]),
                    f"{archive}:{f.name}",
                )
                continue
            path = local[f.name] or download_file(spec.url_base + f.name, folder / f.name, f.md5, f.name)
            raws[f.name] = read_bytes(path)
            where[f.name] = str(path)
            if not _is_official(f, path, raws[f.name]):
                differ.append(path.name)
        if differ:
            notes.append(
                f"{folder}: {', '.join(differ)} differ from the official {spec.name} files (md5): "
                "reading them since their format checks out"
            )
        source = str(archive) if zipped else str(folder)
    train_x, train_y, test_x, test_y = (parse_idx(raws[f.name], where[f.name], f.kind) for f in spec.files)
    if spec.transposed:  # EMNIST keeps each image column by column: transpose to read it upright
        train_x, test_x = train_x.transpose(0, 2, 1), test_x.transpose(0, 2, 1)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{folder}: train images are {train_x.shape[1:]} but test images {test_x.shape[1:]}")
    return ImageData(
        name=spec.name,
        classes=list(spec.classes),
        channels=1,
        image_size=train_x.shape[1],
        mean=spec.mean,
        std=spec.std,
        train=to_split(
            train_x, train_y, len(spec.classes), f"{spec.name} train ({source})", spec.first_label
        ),
        test=to_split(test_x, test_y, len(spec.classes), f"{spec.name} test ({source})", spec.first_label),
        source=source,
        notes=notes,
    )
