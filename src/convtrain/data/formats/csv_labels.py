"""A label file with images beside it (`csv:PATH`), the Kaggle layout.

PATH is a CSV with a header row. One column names each image, relative to the CSV's folder (or to
a folder beside it named like the CSV, `images/` or `<csv name>_images/`): `path`, `file`,
`filename`, `image`, `image_id` or `id`; a bare id gets its extension from the file on disk. One
column holds the label: `label`, `class` or `target`, or name both with csv_columns="path,label"
(`--csv-columns`). An optional `split` column holds train/val/test. Labels are class names (sorted
into classes, as folders are) or integers from 0. Missing and unreadable files are skipped and named
in one note, or refused with strict. The images decode through folder.from_files, as folders do.

    printf 'file,label\ncats/1.png,cat\ndogs/1.png,dog\n' > labels.csv
    python -c "from convtrain.data.formats.csv_labels import read_csv; print(read_csv('labels.csv').classes)"
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from convtrain.base.errors import ConfigError, DataError, reason
from convtrain.data.dataset import ImageData
from convtrain.data.decode import IMAGE_EXTENSIONS, ImageBytes
from convtrain.data.formats.image_folder import SPLIT_NAMES, first_few, from_files, probe_all

PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "image_id", "id")
LABEL_COLUMNS = ("label", "class", "target")
INTEGER = re.compile(r"[+-]?\d+")
PROBE_ROWS = 20  # rows tried when finding the folder the images are in


def _columns(header: list[str], csv_columns: str | None, path: Path) -> tuple[str, str, str | None]:
    """The (path, label, split) column names, matched case-insensitively; split may be absent."""
    lower = {name.strip().lower(): name for name in header}
    if csv_columns:
        wanted = [c.strip().lower() for c in csv_columns.split(",")]
        if len(wanted) != 2 or not all(wanted):
            raise ConfigError(
                f"csv_columns must name two columns, path and label: 'file,label', got {csv_columns!r}"
            )
    else:
        wanted = [
            next((c for c in PATH_COLUMNS if c in lower), ""),
            next((c for c in LABEL_COLUMNS if c in lower), ""),
        ]
    absent = [
        w or kind
        for w, kind in zip(wanted, ("a path column", "a label column"), strict=True)
        if w not in lower
    ]
    if absent:
        expected = (
            "" if csv_columns else f" (path: {', '.join(PATH_COLUMNS)}; label: {', '.join(LABEL_COLUMNS)})"
        )
        raise DataError(
            f"{path} has columns {', '.join(header) or 'none'} but no {' or '.join(absent)}{expected}; "
            "name them with --csv-columns PATH_COLUMN,LABEL_COLUMN"
        )
    return lower[wanted[0]], lower[wanted[1]], lower.get("split")


def _rows(path: Path, csv_columns: str | None) -> list[tuple[int, str, str, str]]:
    """(line, file, label, split) for every non-empty row; the split is train/val/test."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            pcol, lcol, scol = _columns(reader.fieldnames or [], csv_columns, path)
            rows = []
            for row in reader:
                file, label = (row.get(pcol) or "").strip(), (row.get(lcol) or "").strip()
                split = (row.get(scol) or "train").strip().lower() if scol else "train"
                if not file and not label:
                    continue
                if split not in SPLIT_NAMES:
                    raise DataError(
                        f"{path} line {reader.line_num}: split {split!r} is not train, val or test"
                    )
                if not label:
                    raise DataError(
                        f"{path} line {reader.line_num}: {file!r} has no label; give every row one"
                    )
                rows.append((reader.line_num, file, label, SPLIT_NAMES[split]))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"cannot read {path} as a CSV label file ({reason(e)}); save it as UTF-8 CSV"
        ) from None
    if not rows:
        raise DataError(f"{path} has a header but no rows: add one row per image")
    return rows


def _class_of(rows: list[tuple[int, str, str, str]], path: Path) -> tuple[list[str], dict[str, int]]:
    """Classes and the index of each label: integers from 0 as they are, else names in sorted order."""
    labels = {label for _, _, label, _ in rows}
    if all(INTEGER.fullmatch(label) for label in labels):
        indices = {label: int(label) for label in labels}
        if min(indices.values()) < 0:
            raise DataError(f"{path}: label {min(indices.values())} is negative; integer labels count from 0")
        return [str(i) for i in range(max(indices.values()) + 1)], indices
    for line, _, label, _ in rows:
        try:
            float(label)
        except ValueError:
            continue
        raise DataError(
            f"{path} line {line}: label {label!r} is neither a class name nor an integer; "
            "write the class name or its index from 0"
        )
    classes = sorted(labels)
    return classes, {name: i for i, name in enumerate(classes)}


def _resolve(base: Path, name: str) -> Path | None:
    path = base / name
    if path.is_file():
        return path
    if path.suffix.lower() not in IMAGE_EXTENSIONS:  # a bare id such as Kaggle's: find its extension
        for ext in sorted(IMAGE_EXTENSIONS):
            for candidate in (path.with_name(path.name + ext), path.with_name(path.name + ext.upper())):
                if candidate.is_file():
                    return candidate
    return None


def _image_dir(path: Path, names: list[str]) -> Path:
    """The folder the file column is relative to: the CSV's, or the images folder beside it."""
    folder = path.parent
    candidates = [folder, folder / path.stem, folder / "images", folder / f"{path.stem}_images"]
    sample = names[:PROBE_ROWS]
    found = [sum(_resolve(c, n) is not None for n in sample) if c.is_dir() else 0 for c in candidates]
    return candidates[found.index(max(found))]


def read_csv(
    path: Path,
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    in_memory: bool = True,
    csv_columns: str | None = None,
) -> ImageData:
    """A CSV label file and its images as ImageData (in memory, or file lists for the streaming loader)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV label file {path} does not exist")
    rows = _rows(path, csv_columns)
    classes, index = _class_of(rows, path)
    base = _image_dir(path, [file for _, file, _, _ in rows])
    files: dict[str, list[tuple[Path | ImageBytes, int]]] = {"train": [], "val": [], "test": []}
    headers: dict = {}
    bad: list = []
    for _, file, label, split in rows:
        found = _resolve(base, file)
        if found is None:
            bad.append((base / file, "no such file"))
        else:
            files[split] += probe_all([(found, index[label])], headers, bad)
    if not files["train"]:
        shown = first_few([str(p) for p, _ in bad])
        raise DataError(
            f"{path}: no readable training images in {base} (e.g. {shown}); check the path column"
        )
    files = {split: entries for split, entries in files.items() if entries or split == "train"}
    return from_files(
        files, classes, headers, bad, base, path.stem, f"csv:{path.resolve()}",
        image_size, channels, strict, in_memory,
    )  # fmt: skip
