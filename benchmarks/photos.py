"""A folder of camera photos read to training size three ways: the old reader, the new one, torchvision.

Generates N camera-size JPEGs (4032x3024, quality 90, a third with EXIF orientation 6, as phones
write them) in three class folders under a temp folder, then reads them to 3x64x64 uint8:
(a) the reader as it was before data/decode.py (kept below as a faithful copy: one thread, full
decode, torch resize); (b) convtrain's reader (read_folder: draft decode, EXIF, threads); (b') the same decode in a
process pool, to compare threads against processes;
(c) torchvision.datasets.ImageFolder + Resize + DataLoader with 2 workers. Each runs in its own
subprocess, so its peak RSS (ru_maxrss) is its own; first-epoch wall time is one full pass over the
folder, images/s is N over it.

    python -m benchmarks.run --only photos [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import REPO, table

SIZE = 64  # training side: what the new reader picks for photos with a zoo model
CAMERA = (4032, 3024)
CLASSES = ("cats", "dogs", "birds")
ORIENTATION_TAG = 0x0112


def make_photos(root: Path, count: int) -> None:
    """count camera-size JPEGs (smooth gradients plus noise, so they compress like photos)."""
    rng = np.random.default_rng(0)
    width, height = CAMERA
    ys, xs = np.mgrid[0:height:8, 0:width:8]
    for i in range(count):
        small = np.stack(
            [(xs * (i + 1) // 7) % 256, (ys * (i + 3) // 5) % 256, ((xs + ys) // (i + 2)) % 256], axis=-1
        ).astype(np.uint8)
        noise = rng.integers(0, 24, small.shape, dtype=np.uint8)
        image = Image.fromarray(small + noise).resize(CAMERA, Image.Resampling.BILINEAR)
        exif = Image.Exif()
        if i % 3 == 0:
            exif[ORIENTATION_TAG] = 6  # stored sideways, shown upright
        folder = root / CLASSES[i % len(CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"IMG_{i:04d}.jpg", quality=90, exif=exif)


# ----- (a) the reader as it was: kept here to compare against -----


def old_decode_image(path: Path, image_size: int):
    """The pre-decode.py decode_image for an RGB file: full-size decode, torch antialiased resize."""
    import torch
    import torch.nn.functional as F

    with Image.open(path) as im:
        pixels = np.array(im.convert("RGB"))  # (H, W, 3) at full size
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    y = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8)[0]


def read_old(root: Path) -> int:
    import torch

    files = sorted(p for folder in sorted(root.iterdir()) for p in sorted(folder.iterdir()))
    images = torch.empty((len(files), 3, SIZE, SIZE), dtype=torch.uint8)
    for i, path in enumerate(files):  # one thread, in order
        images[i] = old_decode_image(path, SIZE)
    return len(images)


def read_new(root: Path) -> int:
    from convtrain.data.formats.image_folder import read_folder

    return len(read_folder(root, image_size=SIZE).train)


def _decode_rgb(path: Path):
    from convtrain.data.decode import decode_image

    return decode_image(path, 3, SIZE)


def read_new_processes(root: Path) -> int:
    """The new decode path over processes instead of threads (what decode_many could have used)."""
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from convtrain.data.decode import decode_workers

    files = sorted(p for folder in sorted(root.iterdir()) for p in sorted(folder.iterdir()))
    with ProcessPoolExecutor(max_workers=decode_workers()) as pool:
        images = torch.stack(list(pool.map(_decode_rgb, files, chunksize=4)))  # (N, 3, S, S)
    return len(images)


def read_torchvision(root: Path) -> int:
    import torch
    import torchvision
    from torchvision import transforms

    dataset = torchvision.datasets.ImageFolder(
        str(root), transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.PILToTensor()])
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, num_workers=2)
    return sum(len(x) for x, _ in loader)


def read_nothing(root: Path) -> int:
    """The baseline: a process that imports torch and reads nothing (torch's import alone is ~0.7 GB here)."""
    import torch  # noqa: F401

    return 0


READERS = {
    "baseline": read_nothing,
    "old": read_old,
    "new": read_new,
    "processes": read_new_processes,
    "torchvision": read_torchvision,
}


def peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM, which (unlike ru_maxrss) starts afresh at
    exec, so the parent's memory is not counted."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def child(name: str, root: str) -> None:
    """Run one reader in this process and print its figures as JSON."""
    import resource

    started = time.perf_counter()
    count = READERS[name](Path(root))
    seconds = time.perf_counter() - started
    # DataLoader workers are forked: their ru_maxrss counts the pages they share with this process
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"images": count, "seconds": seconds, "peak": peak_rss(), "worker_peak": workers}))


def measure(name: str, root: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.photos", name, str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> str:
    count = 6 if quick else 30
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        make_photos(root, count)
        megabytes = sum(p.stat().st_size for p in root.rglob("*.jpg")) / 2**20
        figures = {name: measure(name, root) for name in READERS}
        print(f"  photos: {json.dumps(figures)}", flush=True)
    rate = {name: f["images"] / f["seconds"] for name, f in figures.items() if f["images"]}
    baseline = figures["baseline"]["peak"]
    decoded = count * 3 * SIZE * SIZE / 2**20
    rows = [
        [
            label,
            f"{rate[name]:.1f}",
            f"{figures[name]['seconds']:.1f}",
            f"{figures[name]['peak'] / 2**20:.0f} ({(figures[name]['peak'] - baseline) / 2**20:+.0f})"
            + (
                f" (+ 2 workers, each at most {figures[name]['worker_peak'] / 2**20:.0f} incl. shared pages)"
                if name in ("torchvision", "processes")
                else ""
            ),
            f"{rate['new'] / rate[name]:.1f}x",
        ]
        for name, label in (
            ("old", "(a) old reader: 1 thread, full decode"),
            ("new", "(b) convtrain read_folder (threads)"),
            ("processes", "(b') the same decode over a process pool"),
            ("torchvision", "(c) ImageFolder + Resize + DataLoader(2 workers)"),
        )
    ]
    header = [
        "reader",
        "images/s",
        "first epoch (s)",
        f"peak RSS MB (over the {baseline / 2**20:.0f} MB of a process that only imports torch)",
        "(b) speed-up over it",
    ]
    return (
        f"### A folder of photos read to 3x{SIZE}x{SIZE} ({count} JPEGs 4032x3024 q90, {megabytes:.0f} MB, "
        f"a third EXIF-rotated; decoded split {decoded:.1f} MB)\n\n" + table(header, rows)
    )


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
