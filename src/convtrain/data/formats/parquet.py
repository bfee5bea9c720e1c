"""Parquet files as the Hugging Face Hub stores image classification sets (`parquet:PATH`).

PATH is one .parquet file or a folder of them (searched recursively). The split comes from each
file's name: `train-*`, `validation-*` / `valid-*` / `val-*`, `test-*`; a lone file of another
name is the training split. One column holds the encoded images, as `{bytes, path}` structs (the
Hub's Image feature) or raw bytes: `image` or `img`. One holds integer labels: `label`, `labels`
or `fine_label`. Class names come from the Hub's `huggingface` schema metadata (a ClassLabel's
names), else '0'..'K-1'. Metadata is read as JSON only; nothing is executed. Images decode through
folder.from_files, as folders do. Needs pyarrow: pip install 'convtrain[parquet]'.

    python -c "from convtrain.data.formats.parquet import read_parquet; print(read_parquet('mnist/').classes)"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convtrain.base.errors import DataError, reason
from convtrain.data.dataset import ImageData
from convtrain.data.decode import ImageBytes
from convtrain.data.formats.image_folder import first_few, from_files, probe_all

IMAGE_COLUMNS = ("image", "img")
LABEL_COLUMNS = ("label", "labels", "fine_label")
SPLIT_PREFIXES = (
    ("train", "train"),
    ("validation", "val"),
    ("valid", "val"),
    ("val", "val"),
    ("test", "test"),
)


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading parquet datasets needs pyarrow: pip install 'convtrain[parquet]'") from None
    return pa, pq


def _split_of(file: Path, lone: bool) -> str | None:
    name = file.name.lower()
    for prefix, split in SPLIT_PREFIXES:
        if name.startswith(prefix) and not name[len(prefix) : len(prefix) + 1].isalpha():
            return split
    return "train" if lone else None


def _column(names: list[str], wanted: tuple[str, ...], what: str, file: Path) -> str:
    lower = {n.lower(): n for n in names}
    for w in wanted:
        if w in lower:
            return lower[w]
    raise DataError(
        f"{file} has columns {', '.join(names) or 'none'} but no {what} column ({', '.join(wanted)}); "
        "convtrain reads the Hugging Face image classification layout"
    )


def _class_names(metadata: dict | None, label: str) -> list[str] | None:
    """A ClassLabel's names from the Hub's schema metadata, or None when absent or not understood."""
    try:
        info = json.loads((metadata or {}).get(b"huggingface", b"{}"))
        feature = info["info"]["features"][label]
    except (ValueError, KeyError, TypeError):
        return None
    names = feature.get("names") if isinstance(feature, dict) else None
    if (
        isinstance(names, list)
        and names
        and all(isinstance(n, str) for n in names)
        and len(set(names)) == len(names)
    ):
        return names
    return None


def _read_file(file: Path, pa: Any, pq: Any) -> tuple[list[tuple[ImageBytes | None, int]], list[str] | None]:
    """(image bytes or None, label) per row, and the class names in the file's metadata."""
    try:
        table = pq.read_table(file)
    except Exception as e:  # pyarrow's errors (ArrowInvalid, ArrowIOError, ...) for anything not parquet
        raise DataError(f"cannot read {file} as parquet ({reason(e)}); replace the file") from None
    image_col = _column(table.column_names, IMAGE_COLUMNS, "image", file)
    label_col = _column(table.column_names, LABEL_COLUMNS, "integer label", file)
    labels = table.column(label_col)
    if not pa.types.is_integer(labels.type):
        raise DataError(f"{file}: column {label_col} holds {labels.type}, expected integer labels from 0")
    rows = []
    for i, (cell, label) in enumerate(
        zip(table.column(image_col).to_pylist(), labels.to_pylist(), strict=True)
    ):
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if label is None or label < 0:
            raise DataError(f"{file} row {i}: label {label} (unlabelled); keep labelled rows only")
        rows.append(
            (ImageBytes(f"{file.name} row {i}", data) if isinstance(data, bytes) and data else None, label)
        )
    return rows, _class_names(table.schema.metadata, label_col)


def read_parquet(
    path: Path, image_size: int | None = None, channels: int | None = None, strict: bool = False
) -> ImageData:
    """Parquet file(s) in the Hugging Face layout as ImageData, decoded in memory."""
    path = Path(path)
    pa, pq = _pyarrow()
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if not files:
        raise DataError(f"parquet dataset {path} does not exist or holds no .parquet files")
    splits = {file: _split_of(file, len(files) == 1) for file in files}
    unknown = [f.name for f, split in splits.items() if split is None]
    if unknown:
        raise DataError(
            f"{path}: cannot tell the split of {first_few(unknown)}; name files train-*, validation-* or test-*"
        )
    entries: dict[str, list] = {"train": [], "val": [], "test": []}
    headers: dict = {}
    bad: list = []
    names: list[str] | None = None
    for file, split in splits.items():
        rows, file_names = _read_file(file, pa, pq)
        names = names or file_names
        missing = [
            (ImageBytes(f"{file.name} row {i}", b""), "no image bytes")
            for i, (s, _) in enumerate(rows)
            if s is None
        ]
        bad += missing
        entries[split] += probe_all([(s, label) for s, label in rows if s is not None], headers, bad)
    if not entries["train"]:
        raise DataError(f"{path}: no readable training images (name the training files train-*.parquet)")
    num_labels = max(label for split in entries.values() for _, label in split) + 1
    if names is None or len(names) < num_labels:
        names = [str(i) for i in range(num_labels)]
    entries = {split: rows for split, rows in entries.items() if rows or split == "train"}
    root = path if path.is_dir() else path.parent
    return from_files(
        entries, names, headers, bad, root, path.stem if path.is_file() else path.resolve().name,
        f"parquet:{path.resolve()}", image_size, channels, strict, in_memory=True,
    )  # fmt: skip
