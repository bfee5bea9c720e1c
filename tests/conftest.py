"""Shared fixtures: the real datasets beside the checkout, and tiny synthetic datasets for fast runs.

The test session's environment is set in pytest_configure and put back in pytest_unconfigure, so
that importing this file changes nothing and the session leaves no folder behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

_STASH = pytest.StashKey[dict]()  # what pytest_configure changed, for pytest_unconfigure to put back


def pytest_configure(config: pytest.Config) -> None:
    """The data folder of every test and of every CLI run they start: a temporary folder, so caches
    (decoded images) never go to the user's ~/.cache/convtrain or $CONVTRAIN_DATA. Set in os.environ,
    not by a fixture, so the subprocesses the tests start see it too.

    Under xdist (`make test`: -n 2) the controller makes the folder before it starts the workers, which
    inherit its environment and share the folder (and its cache); each worker runs on one thread."""
    undo = {"environ": {}, "threads": torch.get_num_threads(), "folder": None}
    config.stash[_STASH] = undo

    def setenv(name: str, value: str) -> None:
        undo["environ"].setdefault(name, os.environ.get(name))
        os.environ[name] = value

    if hasattr(config, "workerinput"):  # an xdist worker: the controller has set CONVTRAIN_DATA
        # one thread each keeps the two workers, and the CLI runs they start, from fighting over the cores
        setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
        torch.set_num_threads(1)
    else:
        undo["folder"] = tempfile.mkdtemp(prefix="convtrain-test-data-")
        setenv("CONVTRAIN_DATA", undo["folder"])


def pytest_unconfigure(config: pytest.Config) -> None:
    undo = config.stash.get(_STASH, None)
    if undo is None:
        return
    for name, value in undo["environ"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    torch.set_num_threads(undo["threads"])
    if undo["folder"]:  # the controller's, after its workers have stopped
        shutil.rmtree(undo["folder"], ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    # the slow tests first, so the two xdist workers do not end on one long test while the other idles
    items.sort(key=lambda item: "slow" not in item.keywords)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_torch_thread():
    """Small nets on a busy 2-core machine (and two xdist workers) run several times faster on one
    thread: with two, every op waits at a barrier for a thread that another process holds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "MNIST" / "raw").is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


def make_pattern_images(
    count: int, classes: int, size: int, channels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Learnable synthetic images: each class lights a different horizontal band, plus noise. NHWC uint8."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, size, size, channels))
    band = size // classes
    for c in range(classes):
        images[labels == c, c * band : (c + 1) * band, :, :] += 150
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory) -> Path:
    """A 4-class, 28x28 gray dataset in the npz format: 480 train and 96 test images."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.npz"
    x_train, y_train = make_pattern_images(480, 4, 28, 1, seed=1)
    x_test, y_test = make_pattern_images(96, 4, 28, 1, seed=2)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture(scope="session")
def tiny_rgb_npz(tmp_path_factory) -> Path:
    """A 4-class, 32x32 RGB dataset in the npz format: 256 train and 64 test images."""
    path = tmp_path_factory.mktemp("tiny_rgb") / "tiny_rgb.npz"
    x_train, y_train = make_pattern_images(256, 4, 32, 3, seed=3)
    x_test, y_test = make_pattern_images(64, 4, 32, 3, seed=4)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_npz, tmp_path_factory) -> Path:
    """A finished one-epoch lenet5 run folder on tiny_npz (no pictures), for the after-training commands."""
    import convtrain

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    convtrain.train(
        dataset=f"npz:{tiny_npz}",
        model="lenet5",
        epochs=1,
        batch_size=64,
        augment="none",  # set: a tiny set unset would take the small-data rule's shifts
        out=str(out),
        quiet=True,
        plots=False,
    )
    return out


@pytest.fixture(scope="session")
def reported_run(tiny_rgb_npz, tmp_path_factory) -> Path:
    """A two-epoch lenet5 run on tiny_rgb_npz trained with plots on (training itself makes the pictures and
    report.html) and --eval-before. Shared by every test in a process: tests that change it copy it first."""
    import convtrain

    out = tmp_path_factory.mktemp("reported") / "run"
    convtrain.train(
        dataset=f"npz:{tiny_rgb_npz}",
        model="lenet5",
        epochs=2,
        batch_size=64,
        lr=0.02,
        eval_before=True,
        out=str(out),
        quiet=True,
        plots=True,
    )
    return out
