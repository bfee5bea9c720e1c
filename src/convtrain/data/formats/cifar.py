"""CIFAR-10 and CIFAR-100 from the official python files, read without running any code from them.

The files are Python pickles, and unpickling can call any function the file names. The unpickler
here resolves only the few names the official files use (numpy array and dtype reconstruction) and
refuses everything else. The .tar.gz is unpacked into a temporary folder inside the data root,
member by member after checking each path, checked, then renamed into place in one step.

    python -c "from convtrain.data.dataset_registry import load_dataset; print(load_dataset('cifar10', '../shared/datasets'))"
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

import numpy as np
import torch

from convtrain.base.errors import DataError, reason
from convtrain.data.dataset import ImageData, Split
from convtrain.data.download import download_file, md5_matches
from convtrain.data.spec import DatasetSpec

T = TypeVar("T")


@dataclass(frozen=True)
class Layout:
    """Where a CIFAR variant keeps its batches and which keys hold labels and class names."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    labels: bytes
    names: bytes
    md5: dict[str, str]  # each batch file's official md5 (torchvision checks the same ones)


LAYOUTS = {
    "cifar10": Layout(
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        b"labels",
        b"label_names",
        {
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
        },
    ),
    "cifar100": Layout(
        ("train",),
        ("test",),
        "meta",
        b"fine_labels",
        b"fine_label_names",
        {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
    ),
}
PIXELS = 3 * 32 * 32  # one row of b'data': 1024 red, then 1024 green, then 1024 blue values
EXTRACT_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # extra guard where available


# ----- pickles that cannot run code -----


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, 'latin1'); allow only that.
    if encoding not in ("latin1", "latin-1"):
        raise DataError(f"refusing _codecs.encode with encoding {encoding!r} in a CIFAR pickle")
    return text.encode("latin1")


_RECONSTRUCT = np.array(0).__reduce__()[0]  # numpy's _reconstruct, wherever this numpy version keeps it
_SCALAR = np.int64(0).__reduce__()[0]
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that builds numpy arrays, lists, dicts and strings, and refuses any other callable."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED:
            raise DataError(
                f"refusing to load {module}.{name}: CIFAR files hold only arrays, lists and strings"
            )
        return ALLOWED[(module, name)]


def load_pickle(raw: bytes, where: str) -> object:
    """Unpickle raw bytes with RestrictedUnpickler; any failure becomes a one-line DataError naming `where`."""
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except DataError as e:
        raise DataError(f"{where}: {e}; the file is not an official copy, replace it") from None
    except Exception as e:  # malformed pickles raise nearly anything (EOFError, ValueError, KeyError, ...)
        raise DataError(f"{where} is not a readable CIFAR pickle ({reason(e)}); replace it") from None


# ----- checking and reading the batches -----


def _as_dict(obj: object, where: str) -> dict[bytes, object]:
    if not isinstance(obj, dict):
        raise DataError(f"{where} holds a {type(obj).__name__}, expected a dict as in the official files")
    # Official files have bytes keys; a copy re-saved from Python 3 may have str keys.
    return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}


def read_batch(raw: bytes, where: str, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's (N, 3072) uint8 data and (N,) int64 labels, after checking keys, shapes and label range."""
    batch = _as_dict(load_pickle(raw, where), where)
    for key in (b"data", label_key):
        if key not in batch:
            raise DataError(f"{where} has no {key.decode()!r} entry; the file is not an official CIFAR batch")
    data = batch[b"data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != PIXELS
    ):
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(
            f"{where}: 'data' is {shape} {getattr(data, 'dtype', '')}, expected (N, {PIXELS}) uint8"
        )
    try:
        labels = np.asarray(batch[label_key])
    except (TypeError, ValueError):
        labels = np.asarray([])
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise DataError(f"{where}: {label_key.decode()!r} must be {len(data)} integers, one per image")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{where}: labels span {labels.min()}..{labels.max()}, outside 0..{num_classes - 1}")
    return data, labels.astype(np.int64)


def _class_names(folder: Path, layout: Layout, spec: DatasetSpec, shown: str) -> list[str]:
    path = folder / layout.meta
    if not path.is_file():
        return list(spec.classes)  # the meta file only repeats the official names
    meta = _as_dict(load_pickle(path.read_bytes(), f"{shown}/{layout.meta}"), f"{shown}/{layout.meta}")
    names = meta.get(layout.names)
    if isinstance(names, list) and all(isinstance(n, (bytes, str)) for n in names):
        try:  # the official names are ASCII bytes; a damaged file may hold bytes that are not text
            names = [n.decode() if isinstance(n, bytes) else n for n in names]
        except UnicodeDecodeError:
            names = None
    if (
        not isinstance(names, list)
        or not all(isinstance(n, str) for n in names)
        or len(set(names)) != len(names)
        or len(names) != len(spec.classes)
    ):
        raise DataError(
            f"{shown}/{layout.meta}: {layout.names.decode()!r} must list {len(spec.classes)} distinct class names"
        )
    return names


def read_batches(folder: Path, spec: DatasetSpec, shown: str) -> tuple[Split, Split, list[str], list[str]]:
    """Train and test splits, class names, and the batch files whose md5 is not the official one,
    from an extracted folder; `shown` names it in messages."""
    layout = LAYOUTS[spec.name]
    missing = [name for name in layout.train + layout.test if not (folder / name).is_file()]
    if missing:
        needed = ", ".join(layout.train + layout.test)
        raise DataError(
            f"{shown} lacks {', '.join(missing)}: it must hold {needed}; replace it or delete it to extract again"
        )
    splits, differ = [], []
    for names in (layout.train, layout.test):
        raws = {n: (folder / n).read_bytes() for n in names}
        differ += [n for n, raw in raws.items() if hashlib.md5(raw).hexdigest() != layout.md5[n]]
        parts = [read_batch(raw, f"{shown}/{n}", layout.labels, len(spec.classes)) for n, raw in raws.items()]
        data = np.concatenate([p[0] for p in parts])  # (N, 3072)
        labels = np.concatenate([p[1] for p in parts])  # (N,)
        splits.append(
            Split(labels=torch.from_numpy(labels), images=torch.from_numpy(data.reshape(-1, 3, 32, 32)))
        )
    return splits[0], splits[1], _class_names(folder, layout, spec, shown), differ


# ----- the archive -----


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    path = PurePosixPath(member.name)
    if member.name.startswith(("/", "\\")) or path.is_absolute() or ".." in path.parts or ":" in member.name:
        raise DataError(
            f"{archive}: refusing member {member.name!r} (absolute path or '..'); not an official archive"
        )
    if not (member.isfile() or member.isdir()):  # links and devices: official archives have none
        raise DataError(
            f"{archive}: refusing member {member.name!r} (a link or special file); not an official archive"
        )


def safe_extract(archive: Path, target: Path, skip: tuple[str, ...] = ()) -> None:
    """Unpack a tar(.gz) into target, refusing absolute or '..' paths, links and special files.

    Members whose file name is in skip are not written (STL-10's 2.7 GB of unlabelled images).
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                _check_member(member, archive)
                if PurePosixPath(member.name).name not in skip:
                    tar.extract(member, target, **EXTRACT_FILTER)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"cannot unpack {archive} ({reason(e)}): it is corrupt or truncated; delete it and download again"
        ) from None


def read_archive(
    archive: Path,
    root: Path,
    spec: DatasetSpec,
    notes: list[str],
    read: Callable[[Path, DatasetSpec, str], T],
    skip: tuple[str, ...] = (),
) -> tuple[T, str]:
    """read(folder, spec, shown) on the archive's `spec.folder`, unpacked and then renamed into root in one step.

    Returns what read returned and where the data now lives. A read-only root is unpacked into a
    temporary folder and nothing is kept.
    """
    try:
        scratch = Path(tempfile.mkdtemp(prefix=f".{spec.folder}-", suffix=".part", dir=root))
        keep = True
    except OSError:  # a read-only data root: unpack elsewhere and keep nothing
        scratch, keep = Path(tempfile.mkdtemp(prefix="convtrain-")), False
        notes.append(f"{root} is not writable: read {archive.name} without keeping the unpacked copy")
    try:
        safe_extract(archive, scratch, skip)
        if not (scratch / spec.folder).is_dir():
            raise DataError(
                f"{archive} has no {spec.folder}/ folder; it is not the official {spec.name} archive"
            )
        result = read(scratch / spec.folder, spec, f"{archive}:{spec.folder}")
        if keep:
            try:  # one rename: the folder appears complete or not at all
                os.replace(scratch / spec.folder, root / spec.folder)
            except OSError:  # another process (a second training rank) put it there first
                pass
        return result, str(root / spec.folder) if keep else str(archive)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def read_folder_or_archive(
    spec: DatasetSpec,
    root: Path,
    download: bool,
    notes: list[str],
    read: Callable[[Path, DatasetSpec, str], T],
    skip: tuple[str, ...] = (),
) -> tuple[T, str]:
    """read() on `<root>/<spec.folder>/`, else on its archive in root (downloaded if allowed and missing)."""
    folder, published = root / spec.folder, spec.files[0]
    archive = root / published.name
    if folder.is_dir():
        return read(folder, spec, str(folder)), str(folder)
    if archive.is_file():
        if not md5_matches(archive, published.md5):
            notes.append(
                f"{archive} differs from the official archive (md5): reading it since its format checks out"
            )
    elif download:
        download_file(spec.url_base + published.name, archive, published.md5, published.name)
    else:
        raise DataError(
            f"{spec.name} not found: place {published.name} (or its unpacked {spec.folder}/ folder) in {root}, "
            "or allow downloads (drop --no-download)"
        )
    return read_archive(archive, root, spec, notes, read, skip)


def load_cifar(spec: DatasetSpec, root: Path, download: bool) -> ImageData:
    """CIFAR-10/100 from `<root>/<spec.folder>/`, else from its archive in root (downloaded if allowed)."""
    notes: list[str] = []
    from_archive = not (root / spec.folder).is_dir()  # its md5 vouches for the batches in it, or is noted
    (train, test, classes, differ), source = read_folder_or_archive(spec, root, download, notes, read_batches)
    if differ and not from_archive:
        notes.append(
            f"{source}: {', '.join(differ)} differ from the official {spec.name} files (md5): "
            "reading them since their format checks out"
        )
    return ImageData(
        name=spec.name,
        classes=classes,
        channels=3,
        image_size=32,
        mean=spec.mean,
        std=spec.std,
        train=train,
        test=test,
        source=source,
        notes=notes,
    )
