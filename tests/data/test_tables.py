"""csv:PATH (a label file with images beside it) and parquet:PATH (the Hugging Face layout).

.venv/bin/python -m pytest tests/data/test_tables.py -q -p no:cacheprovider
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convtrain.base.errors import DataError
from convtrain.data.dataset_registry import DataWarning, load_dataset

RNG = np.random.default_rng(0)


def png_bytes(value: int, size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(out, format="PNG")
    return out.getvalue()


def refused(name: str, match: str, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as e:
        load_dataset(name, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


# ----- csv -----


def kaggle(tmp_path: Path, rows: list[str], header: str = "id,label", folder: str = "train") -> Path:
    """train.csv with bare ids, and train/<id>.png beside it; a pixel value of 10 x the row number."""
    (tmp_path / folder).mkdir(exist_ok=True)
    for i, row in enumerate(rows):
        name = row.split(",")[0]
        if not name.startswith("missing"):
            (tmp_path / folder / (name if "." in name else f"{name}.png")).write_bytes(png_bytes(10 * i))
    path = tmp_path / "train.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_kaggle_ids_with_names_as_labels(tmp_path):
    path = kaggle(tmp_path, ["a1,dog", "a2,cat", "a3,dog", "a4,cat"])
    data = load_dataset(f"csv:{path}")
    assert data.classes == ["cat", "dog"] and data.train.labels.tolist() == [1, 0, 1, 0]
    assert data.train.images[:, 0, 0, 0].tolist() == [0, 10, 20, 30] and data.name == "train"
    assert data.source == f"csv:{path.resolve()}"


def test_paths_integer_labels_and_a_split_column(tmp_path):
    rows = [
        "img/a.png,0,train",
        "img/b.png,1,train",
        "img/c.png,1,val",
        "img/d.png,0,test",
        "img/e.png,1,Test",
    ]
    (tmp_path / "img").mkdir()
    for i, row in enumerate(rows):
        (tmp_path / row.split(",")[0]).write_bytes(png_bytes(i))
    (tmp_path / "labels.csv").write_text("Filename,Target,split\n" + "\n".join(rows) + "\n")
    data = load_dataset(f"csv:{tmp_path / 'labels.csv'}")
    assert data.classes == ["0", "1"] and (len(data.train), len(data.val), len(data.test)) == (2, 1, 2)
    assert data.test.labels.tolist() == [0, 1]


def test_column_names_given(tmp_path):
    path = kaggle(tmp_path, ["a1,x", "a2,y"], header="picture,kind")
    refused(f"csv:{path}", r"columns picture, kind but no a path column or a label column")
    data = load_dataset(f"csv:{path}", csv_columns="picture,kind")
    assert data.classes == ["x", "y"]


def test_missing_and_unreadable_files_are_skipped_in_one_note_or_refused(tmp_path):
    path = kaggle(tmp_path, ["a1,dog", "a2,cat", "missing1,dog", "missing2,cat", "a5,cat"])
    (tmp_path / "train" / "a5.png").write_bytes(b"not a png")
    with pytest.warns(DataWarning) as record:
        data = load_dataset(f"csv:{path}")
    notes = [str(w.message) for w in record]
    assert len(data.train) == 2 and len(notes) == 1
    assert "skipped 3 files" in notes[0] and "missing1" in notes[0] and "a5.png" in notes[0]
    refused(f"csv:{path}", "3 files .* not readable images", strict=True)


def test_streamed_csv_gives_the_files(tmp_path):
    path = kaggle(tmp_path, ["a1,dog", "a2,cat"])
    data = load_dataset(f"csv:{path}", in_memory=False)
    assert data.train.files == [tmp_path / "train" / "a1.png", tmp_path / "train" / "a2.png"]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("name,colour\na.png,red\n", "no a path column or a label column"),
        ("file,label\na.png,0.5\nb.png,1\n", "neither a class name nor an integer"),
        ("file,label\na.png,-1\nb.png,1\n", "negative"),
        ("file,label\na.png,\n", "has no label"),
        ("file,label,split\na.png,x,holdout\n", "split 'holdout'"),
        ("file,label\n", "no rows"),
        ("file,label\nnowhere.png,cat\nnone.png,dog\n", "no readable training images"),
    ],
)
def test_bad_label_files(tmp_path, text, problem):
    (tmp_path / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "b.png").write_bytes(png_bytes(2))
    (tmp_path / "l.csv").write_text(text)
    refused(f"csv:{tmp_path / 'l.csv'}", problem)


def test_a_csv_that_is_not_text(tmp_path):
    (tmp_path / "l.csv").write_bytes(b"\xff\xfe\x00binary")
    refused(f"csv:{tmp_path / 'l.csv'}", "cannot read .*UTF-8")
    refused(f"csv:{tmp_path / 'absent.csv'}", "does not exist")


# ----- parquet -----


def write_parquet(
    path: Path, values: list[int], labels: list[int], struct: bool = True, names: list[str] | None = None
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    images = [{"bytes": png_bytes(v), "path": f"{v}.png"} if struct else png_bytes(v) for v in values]
    table = pa.table({"image": images, "label": pa.array(labels, pa.int64())})
    if names is not None:  # the Hub's metadata: features with a ClassLabel
        features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_hub_layout_with_splits_and_class_names(tmp_path):
    write_parquet(
        tmp_path / "data" / "train-00000-of-00001.parquet",
        [0, 50, 100, 150],
        [0, 1, 2, 1],
        names=["a", "b", "c"],
    )
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", [7, 9], [2, 0], names=["a", "b", "c"])
    write_parquet(tmp_path / "data" / "validation-00000-of-00001.parquet", [3], [1], struct=False)
    data = load_dataset(f"parquet:{tmp_path}")
    assert data.classes == ["a", "b", "c"] and (len(data.train), len(data.val), len(data.test)) == (4, 1, 2)
    assert data.train.images[:, 0, 0, 0].tolist() == [0, 50, 100, 150]
    assert torch.equal(data.test.labels, torch.tensor([2, 0])) and data.val.images[0, 0, 0, 0] == 3


def test_a_lone_file_is_the_training_split(tmp_path):
    write_parquet(tmp_path / "mine.parquet", [1, 2], [0, 1], struct=False)
    data = load_dataset(f"parquet:{tmp_path / 'mine.parquet'}")
    assert data.classes == ["0", "1"] and data.test is None


def test_bad_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"pixels": [b"x"], "label": [0]}), tmp_path / "train.parquet")
    refused(f"parquet:{tmp_path / 'train.parquet'}", "columns pixels, label but no image column")
    pq.write_table(pa.table({"image": [png_bytes(1)], "label": ["cat"]}), tmp_path / "train.parquet")
    refused(f"parquet:{tmp_path / 'train.parquet'}", "expected integer labels")
    (tmp_path / "train.parquet").write_bytes(b"PAR1 not really")
    refused(f"parquet:{tmp_path / 'train.parquet'}", "cannot read .* as parquet")
    refused(f"parquet:{tmp_path / 'empty'}", "holds no .parquet files")
