"""Image files to pixels: the one decode path of training, streaming, predict, data show/check and explain.

decode_image() opens a file (or bytes in memory), applies its EXIF orientation (what a photo viewer
shows is what the model sees), takes the first frame of a GIF or multi-page TIFF, converts any mode
(CMYK, palette, RGBA and LA over white, 16-bit, 32-bit int and float) to gray or RGB, and resizes it.
A JPEG is decoded at reduced size when the target allows (Image.draft: the decoder's DCT scaling
by 1/2, 1/4 or 1/8), so a 4032x3024 photo bound for 64x64 is decoded at 504x378, then resized with
antialiasing. decode_many() decodes a list of files on every core with threads (Pillow releases the
GIL while decoding and resizing), in order, skipping broken files; a bar shows for reads over ~2 s.

    python -c "from convtrain.data.decode import decode_image; print(decode_image('photo.jpg', 3, 64).shape)"
"""

from __future__ import annotations

import functools
import io
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from convtrain.base.errors import ImageError, reason

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
HEIC_EXTENSIONS = {".heic", ".heif"}
HEIC_INSTALL = "pip install 'convtrain[heic]'"
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
PIL_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)  # what broken files raise
WHITE = 255
PROGRESS_DELAY = 2.0  # seconds before a read shows a progress bar


@dataclass(frozen=True)
class ImageBytes:
    """An encoded image held in memory (a parquet cell), named for messages like a file."""

    name: str  # e.g. train-00000.parquet row 17
    data: bytes

    def __str__(self) -> str:
        return self.name


# ----- opening -----


def heic_missing(source: str | Path | ImageBytes) -> bool:
    """True for a .heic/.heif file when the pillow-heif extra is not installed."""
    if isinstance(source, ImageBytes) or Path(source).suffix.lower() not in HEIC_EXTENSIONS:
        return False
    return not register_heic()


@functools.cache
def register_heic() -> bool:
    """Teach Pillow to open HEIC/HEIF (iPhone photos) with pillow-heif, if installed; True when it can."""
    try:
        import pillow_heif  # deferred: an optional extra, and registering costs a little
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def heic_message(source: str | Path | ImageBytes) -> str:
    return f"cannot read {source}: HEIC/HEIF photos need the pillow-heif package: {HEIC_INSTALL}"


def open_image(source: str | Path | ImageBytes) -> Image.Image:
    """Image.open on a file or in-memory bytes; a HEIC file without the extra raises one line naming it."""
    if heic_missing(source):
        raise ImageError(heic_message(source))
    return Image.open(io.BytesIO(source.data) if isinstance(source, ImageBytes) else source)


def probe_image(source: str | Path | ImageBytes) -> tuple[tuple[int, int], str] | str:
    """((width, height) as shown, mode) read from the header, or the reason the file is not usable.

    The size is after EXIF orientation: a portrait phone photo stored sideways reports portrait.
    """
    if isinstance(source, Path) and source.suffix.lower() not in IMAGE_EXTENSIONS:
        return "not an image file name (" + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")"
    if heic_missing(source):
        return f"HEIC/HEIF needs the pillow-heif package: {HEIC_INSTALL}"
    try:
        with open_image(source) as im:
            width, height = im.size
            # a PNG's EXIF may follow the pixels, and reading it there decodes them: headers only
            header_exif = im.format != "PNG" or "exif" in im.info
            if header_exif and _orientation(im) in (5, 6, 7, 8):  # rotated a quarter turn
                width, height = height, width
            return (width, height), im.mode
    except PIL_ERRORS as e:
        return reason(e)


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))  # EXIF Orientation tag
    except (*PIL_ERRORS, TypeError):  # a broken EXIF block: show the image as stored
        return 1


# ----- modes -----


def _sixteen_bit_to_8(im: Image.Image) -> Image.Image:
    """16-bit or 32-bit integer gray scaled to 8 bits (65535 -> 255) instead of clipped at 255."""
    values = np.asarray(im, dtype=np.float64)
    return Image.fromarray((values / 257).round().clip(0, 255).astype(np.uint8))


def _float_to_8(im: Image.Image) -> Image.Image:
    """Float gray: values on the 0-1 scale become 0-255; larger ones are taken as 0-255 already."""
    values = np.nan_to_num(np.asarray(im, dtype=np.float64))
    scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
    return Image.fromarray((values * scale).round().clip(0, 255).astype(np.uint8))


def _over_white(im: Image.Image, mode: str) -> Image.Image:
    """An image with alpha composited over a white background, as a viewer on a white page shows it."""
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (WHITE, WHITE, WHITE, 255))
    return Image.alpha_composite(background, rgba).convert(mode)


def to_gray_or_rgb(im: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode as 'L' (channels=1) or 'RGB' (channels=3)."""
    mode = "L" if channels == 1 else "RGB"
    if im.mode.startswith("I;16") or im.mode == "I":
        im = _sixteen_bit_to_8(im)  # 16-bit PNG and TIFF alike
    elif im.mode == "F":
        im = _float_to_8(im)
    elif im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (im.mode == "P" and "transparency" in im.info):
        return _over_white(im, mode)
    return im if im.mode == mode else im.convert(mode)


def default_channels(mode: str) -> int:
    """1 for gray modes, 3 for everything else."""
    return 1 if mode in GRAY_MODES else 3


# ----- decoding -----


def decode_image(
    path: str | Path | ImageBytes, channels: int | None = None, image_size: int | None = None
) -> torch.Tensor:
    """Read one image (a file, or bytes in memory) as uint8 (C, H, W): gray (1) or RGB (3), upright
    by its EXIF orientation, resized to image_size x image_size if given. Bad input raises ImageError."""
    try:
        with open_image(path) as im:
            channels = channels or default_channels(im.mode)
            if image_size is not None and im.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 size
                im.draft("L" if channels == 1 else "RGB", (image_size, image_size))
            im.load()
            im = ImageOps.exif_transpose(im) if _orientation(im) != 1 else im
            im = to_gray_or_rgb(im, channels)
            if image_size is not None and im.size != (image_size, image_size):
                # Pillow's bilinear filter widens with the scale factor when shrinking: antialiased
                im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
            pixels = np.array(im)  # (H, W) or (H, W, 3) uint8
    except PIL_ERRORS as e:
        raise ImageError(f"cannot read image {path} ({reason(e)})") from None
    return torch.from_numpy(pixels).view(*pixels.shape[:2], channels).permute(2, 0, 1).contiguous()


def decode_workers() -> int:
    """Threads for decode_many: one per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def decode_many(
    sources: Sequence[str | Path | ImageBytes],
    channels: int,
    image_size: int,
    workers: int | None = None,
    title: str = "reading images",
) -> tuple[torch.Tensor, list[int], list[tuple[str | Path | ImageBytes, str]]]:
    """Decode files in parallel threads, in order: (uint8 (K, C, S, S) images, the indices of the K
    files that decoded, [(file, reason)] for the ones that did not)."""
    images = torch.empty((len(sources), channels, image_size, image_size), dtype=torch.uint8)
    ok = [False] * len(sources)
    bad: list[tuple[str | Path | ImageBytes, str]] = []

    def one(index: int) -> None:
        try:
            images[index] = decode_image(sources[index], channels, image_size)
            ok[index] = True
        except ImageError as e:  # a valid header over broken pixel data
            bad.append((sources[index], str(e)))

    workers = workers or decode_workers()
    bar = tqdm(
        total=len(sources),
        desc=title,
        unit="img",
        leave=False,
        delay=PROGRESS_DELAY,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
    )
    with bar, ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(one, range(len(sources))):  # map keeps the submission order
            bar.update()
    kept = [i for i, done in enumerate(ok) if done]
    if len(kept) < len(sources):
        images = images[kept].clone()  # drop the rows of skipped files
    order = {source: i for i, source in enumerate(sources)}
    bad.sort(key=lambda item: order[item[0]])  # threads finish in any order; name files as listed
    return images, kept, bad


# ----- memory -----


def available_memory() -> int:
    """Bytes of memory free for new allocations (MemAvailable on Linux; total physical elsewhere)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def decoded_bytes(count: int, channels: int, image_size: int) -> int:
    """Memory that count uint8 images of (channels, image_size, image_size) take."""
    return count * channels * image_size * image_size
