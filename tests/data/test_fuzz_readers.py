"""Fuzzed readers: random bytes, truncations and one-byte mutations of valid files.

Every reader of outside bytes (IDX raw and gzipped, CIFAR pickles and archives, npz, image files,
YAML configs) must either read the damaged file or refuse it with a ConvtrainError whose message is
one line. Any other exception fails the test, as does a file left behind outside the data folder.
Examples are derandomised and bounded so the whole module runs in well under 30 s; set
CONVTRAIN_FUZZ_EXAMPLES=2000 for a longer hunt.

    .venv/bin/python -m pytest tests/data/test_fuzz_readers.py -q -p no:cacheprovider
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cifar_files import py2_pickle, write_cifar10
from convtrain.base.errors import ConvtrainError
from convtrain.config.train_config import TrainConfig, read_yaml
from convtrain.data.dataset import ImageData
from convtrain.data.dataset_registry import DATASETS, load_dataset
from convtrain.data.formats.cifar import read_batch
from convtrain.data.formats.idx import parse_idx, read_idx
from convtrain.data.formats.image_folder import decode_image, read_folder
from convtrain.data.formats.npz import read_npz
from helpers import REPO
from idx_files import NAMES, idx_bytes, write_idx_set

pytestmark = pytest.mark.filterwarnings("ignore::convtrain.data.dataset_registry.DataWarning")
SCALE = int(os.environ.get("CONVTRAIN_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int) -> settings:
    """Bounded, reproducible runs; no example database written into the checkout."""
    return settings(
        max_examples=SCALE or examples,
        deadline=None,
        derandomize=not SCALE,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ----- damaged bytes -----


def _mutate(valid: bytes, at: int, value: int) -> bytes:
    return valid[:at] + bytes([value]) + valid[at + 1 :]


def damaged(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, a truncation, or one byte changed (half the time inside the first 64, where headers are)."""
    last = len(valid) - 1
    position = st.one_of(st.integers(0, min(63, last)), st.integers(0, last))
    return st.one_of(
        st.binary(max_size=512),
        st.integers(0, last).map(lambda n: valid[:n]),
        st.tuples(position, st.integers(0, 255)).map(lambda t: _mutate(valid, *t)),
    )


def reads_or_refuses(read: Callable[[], object]) -> None:
    """The one allowed outcome besides success: a ConvtrainError in one line. Notes are one line too."""
    try:
        result = read()
    except ConvtrainError as e:
        assert str(e).strip() and "\n" not in str(e), repr(str(e))
        return
    if isinstance(result, ImageData):
        assert all("\n" not in note for note in result.notes), result.notes


@contextlib.contextmanager
def sandbox(*allowed: str) -> Iterator[Path]:
    """A fresh data root; afterwards it may hold only `allowed` names, and the working folder stays empty."""
    with tempfile.TemporaryDirectory() as tmp:
        root, cwd = Path(tmp) / "data", Path(tmp) / "cwd"
        root.mkdir()
        cwd.mkdir()
        before = os.getcwd()
        os.chdir(cwd)
        try:
            yield root
        finally:
            os.chdir(before)
        assert not any(cwd.iterdir()), sorted(p.name for p in cwd.iterdir())
        left = sorted(p.name for p in root.iterdir() if p.name not in allowed)
        assert not left, f"left behind in the data folder: {left}"


# ----- IDX -----

RNG = np.random.default_rng(0)
IDX_IMAGES = idx_bytes(RNG.integers(0, 256, (3, 28, 28)))
IDX_LABELS = idx_bytes(np.arange(3) % 10)


@fuzz(150)
@given(kind=st.sampled_from(["images", "labels"]), data=st.data())
def test_idx_parser(kind, data):
    raw = data.draw(damaged(IDX_IMAGES if kind == "images" else IDX_LABELS))
    reads_or_refuses(lambda: parse_idx(raw, "x-idx-ubyte", kind))


@fuzz(60)
@given(data=st.data(), gz=st.booleans())
def test_idx_files_raw_and_gzipped(data, gz):
    """One of the four Fashion-MNIST files damaged: as gzip bytes, or gzipped after damage, or raw."""
    name = data.draw(st.sampled_from(NAMES))
    with sandbox("FashionMNIST") as root:
        folder = root / "FashionMNIST" / "raw"
        write_idx_set(folder, n_train=3, n_test=2, gz=gz)
        path = folder / (name + ".gz" if gz else name)
        if gz and data.draw(st.booleans()):
            path.write_bytes(data.draw(damaged(path.read_bytes())))
        elif gz:
            path.write_bytes(gzip.compress(data.draw(damaged(gzip.decompress(path.read_bytes())))))
        else:
            path.write_bytes(data.draw(damaged(path.read_bytes())))
        kind = "images" if "images" in name else "labels"
        reads_or_refuses(lambda: read_idx(path, kind))
        reads_or_refuses(lambda: load_dataset("fashion-mnist", str(root), download=False))


# ----- CIFAR -----

BATCH = py2_pickle(
    {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [1, 7],
        b"data": RNG.integers(0, 256, (2, 3072)).astype(np.uint8),
        b"filenames": [b"a.png", b"b.png"],
    }
)


@fuzz(150)
@given(data=st.data())
def test_cifar_pickle(data):
    raw = data.draw(damaged(BATCH))
    reads_or_refuses(lambda: read_batch(raw, "data_batch_1", b"labels", 10))


def _tar_gz(files: dict[str, bytes], folder: str = "cifar-10-batches-py") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


@fuzz(60)
@given(data=st.data(), where=st.sampled_from(["gz", "tar", "member", "folder"]))
def test_cifar_archive_and_folder(data, where):
    """The tar.gz damaged as a whole, its tar inside the gzip, one pickle inside it, or one unpacked file."""
    spec = DATASETS["cifar10"]
    with sandbox(spec.files[0].name, spec.folder) as root:
        files = write_cifar10(root, per_batch=2, archive=where != "folder")
        if where == "folder":
            path = data.draw(st.sampled_from(sorted(files.path.iterdir())))
            path.write_bytes(data.draw(damaged(path.read_bytes())))
        else:
            archive = files.path.read_bytes()
            if where == "gz":
                archive = data.draw(damaged(archive))
            elif where == "tar":
                archive = gzip.compress(data.draw(damaged(gzip.decompress(archive))))
            else:
                with tarfile.open(files.path) as tar:
                    members = {
                        Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()
                    }
                name = data.draw(st.sampled_from(sorted(members)))
                members[name] = data.draw(damaged(members[name]))
                archive = gzip.compress(_tar_gz(members))
            files.path.write_bytes(archive)
        reads_or_refuses(lambda: load_dataset("cifar10", str(root), download=False))


# ----- npz -----


def _npz(compressed: bool) -> bytes:
    out = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(
        out,
        x_train=RNG.integers(0, 256, (4, 5, 5, 3)).astype(np.uint8),
        y_train=np.arange(4) % 2,
        x_test=RNG.integers(0, 256, (2, 5, 5, 3)).astype(np.uint8),
        y_test=np.arange(2),
        classes=np.array(["cat", "dog"]),
    )
    return out.getvalue()


NPZ = {False: _npz(False), True: _npz(True)}


@fuzz(150)
@given(data=st.data(), compressed=st.booleans())
def test_npz(data, compressed):
    with sandbox("d.npz") as root:
        path = root / "d.npz"
        path.write_bytes(data.draw(damaged(NPZ[compressed])))
        reads_or_refuses(lambda: read_npz(path))


# ----- image files and folders -----


def _image(fmt: str) -> bytes:
    out = io.BytesIO()
    pixels = RNG.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


IMAGES = {fmt: _image(fmt) for fmt in ("PNG", "JPEG", "BMP", "WEBP")}
SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "WEBP": ".webp"}


@fuzz(150)
@given(data=st.data(), fmt=st.sampled_from(sorted(IMAGES)))
def test_image_decode(data, fmt):
    with sandbox("x" + SUFFIX[fmt]) as root:
        path = root / ("x" + SUFFIX[fmt])
        path.write_bytes(data.draw(damaged(IMAGES[fmt])))
        reads_or_refuses(lambda: decode_image(path))
        reads_or_refuses(lambda: decode_image(path, channels=1, image_size=8))


@fuzz(60)
@given(data=st.data(), fmt=st.sampled_from(sorted(IMAGES)), strict=st.booleans(), stream=st.booleans())
def test_image_folder(data, fmt, strict, stream):
    """Two classes of two images each, one of them damaged; strict or not, in memory or streamed."""
    with sandbox("set") as root:
        for label in ("a", "b"):
            (root / "set" / label).mkdir(parents=True)
            for i in range(2):
                (root / "set" / label / f"{i}{SUFFIX[fmt]}").write_bytes(IMAGES[fmt])
        victim = root / "set" / data.draw(st.sampled_from(["a", "b"])) / f"0{SUFFIX[fmt]}"
        victim.write_bytes(data.draw(damaged(IMAGES[fmt])))
        reads_or_refuses(lambda: read_folder(root / "set", strict=strict, in_memory=not stream))


# ----- csv label files, parquet, SVHN .mat -----

CSV = b"id,label,split\n0,cat,train\n1,dog,train\n2,dog,test\n"


@fuzz(80)
@given(data=st.data())
def test_csv_label_file(data):
    with sandbox("l.csv", "0.png", "1.png", "2.png") as root:
        for i in range(3):
            (root / f"{i}.png").write_bytes(IMAGES["PNG"])
        (root / "l.csv").write_bytes(data.draw(damaged(CSV)))
        reads_or_refuses(lambda: load_dataset(f"csv:{root / 'l.csv'}"))


def _parquet() -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    out = io.BytesIO()
    images = [{"bytes": IMAGES["PNG"], "path": "x.png"}] * 2
    pq.write_table(pa.table({"image": images, "label": pa.array([0, 1], pa.int64())}), out)
    return out.getvalue()


@fuzz(80)
@given(data=st.data())
def test_parquet(data):
    valid = _parquet()
    with sandbox("train.parquet") as root:
        (root / "train.parquet").write_bytes(data.draw(damaged(valid)))
        reads_or_refuses(lambda: load_dataset(f"parquet:{root / 'train.parquet'}"))


def _mat() -> bytes:
    scipy_io = pytest.importorskip("scipy.io")
    out = io.BytesIO()
    x = RNG.integers(0, 256, (32, 32, 3, 2)).astype(np.uint8)
    scipy_io.savemat(out, {"X": x, "y": np.array([[10], [3]], np.uint8)})
    return out.getvalue()


@fuzz(80)
@given(data=st.data())
def test_svhn_mat(data):
    from convtrain.data.formats.svhn import read_mat

    valid = _mat()
    with sandbox("t.mat") as root:
        (root / "t.mat").write_bytes(data.draw(damaged(valid)))
        reads_or_refuses(lambda: read_mat(root / "t.mat"))


# ----- YAML configs -----

CONFIG = (REPO / "src/convtrain/config/recipes/mnist-fast.yaml").read_bytes()


@fuzz(150)
@given(data=st.data())
def test_yaml_config(data):
    with sandbox("c.yaml") as root:
        path = root / "c.yaml"
        # Bytes that are not UTF-8 are test_yaml_config_not_utf8's case; here they become U+FFFD.
        path.write_text(data.draw(damaged(CONFIG)).decode("utf-8", errors="replace"))
        reads_or_refuses(
            lambda: TrainConfig.from_dict(
                {k: v for k, v in read_yaml(path).items() if k not in ("description", "published")},
                source=str(path),
            )
        )


def test_yaml_config_not_utf8_or_with_a_bad_date(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"epochs: 3\n\x80\n")
    reads_or_refuses(lambda: read_yaml(tmp_path / "c.yaml"))
    (tmp_path / "d.yaml").write_text("epochs: 2001-13-01\n")
    reads_or_refuses(lambda: read_yaml(tmp_path / "d.yaml"))


@pytest.mark.parametrize("reader", ["idx", "npz", "image"])
def test_the_fuzz_inputs_are_valid_to_start_with(reader, tmp_path):
    """The files mutated above read cleanly when intact, so the tests do probe past the first check."""
    if reader == "idx":
        assert parse_idx(IDX_IMAGES, "x", "images").shape == (3, 28, 28)
    elif reader == "npz":
        (tmp_path / "d.npz").write_bytes(NPZ[True])
        assert read_npz(tmp_path / "d.npz").classes == ["cat", "dog"]
    else:
        for fmt, raw in IMAGES.items():
            (tmp_path / f"x{SUFFIX[fmt]}").write_bytes(raw)
            assert decode_image(tmp_path / f"x{SUFFIX[fmt]}").shape == (3, 8, 8)
