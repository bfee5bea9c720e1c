"""data/decode.py on real files written by Pillow: EXIF orientation, draft decode, file kinds and modes,
the parallel reader, HEIC without its extra, decompression bombs, and the memory check of folders.

.venv/bin/python -m pytest tests/data/test_decode.py -q
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convtrain.base.errors import ImageError
from convtrain.data import decode
from convtrain.data.decode import decode_image, decode_many, probe_image
from convtrain.data.formats.image_folder import read_folder, resize_images

ORIENTATION = 0x0112
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _upright() -> Image.Image:
    """64 wide x 32 high: red, green / blue, white quadrants, on 16-pixel blocks (JPEG-friendly)."""
    pixels = np.zeros((32, 64, 3), np.uint8)
    pixels[:16, :32], pixels[:16, 32:], pixels[16:, :32], pixels[16:, 32:] = RED, GREEN, BLUE, WHITE
    return Image.fromarray(pixels)


def _gradient(path: Path, size: tuple[int, int], fmt: str = "JPEG", **options) -> np.ndarray:
    """A smooth colour picture with some edges, like a photo; returns its pixels (H, W, 3)."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    pixels = np.stack([xs * 255 // w, ys * 255 // h, ((xs // 37 + ys // 29) % 2) * 200], -1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt, **options)
    return pixels


# ----- EXIF orientation -----


@pytest.mark.parametrize(
    "orientation, stored",
    [
        (3, lambda im: im.transpose(Image.Transpose.ROTATE_180)),
        (
            6,
            lambda im: im.transpose(Image.Transpose.ROTATE_90),
        ),  # stored a quarter turn left; shown turned right
        (8, lambda im: im.transpose(Image.Transpose.ROTATE_270)),
    ],
)
def test_exif_orientation_gives_upright_pixels(tmp_path, orientation, stored):
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    stored(_upright()).save(path, quality=95, exif=exif)
    pixels = decode_image(path, 3)  # (3, 32, 64): upright again
    assert pixels.shape == (3, 32, 64)
    for (top, left), colour in zip(
        [(0, 0), (0, 32), (16, 0), (16, 32)], [RED, GREEN, BLUE, WHITE], strict=True
    ):
        block = pixels[:, top + 4 : top + 12, left + 4 : left + 28].float().mean(dim=(1, 2))
        assert torch.allclose(block, torch.tensor(colour, dtype=torch.float), atol=6), (
            orientation,
            top,
            left,
        )
    assert probe_image(path) == ((64, 32), "RGB")  # the header reports the shown size too
    resized = decode_image(path, 3, 16)  # the draft path turns it the same way
    assert resized[0, 2, 2] > 200 and resized[1, 2, 2] < 60  # top left is red


# ----- draft decoding -----


def test_draft_decode_is_close_to_full_decode_and_resize(tmp_path):
    path = tmp_path / "photo.jpg"
    _gradient(path, (1600, 1200), quality=90)
    with Image.open(path) as im:
        full = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)  # (3, 1200, 1600)
    reference = resize_images(full[None], 48)[0].int()
    drafted = decode_image(path, 3, 48).int()
    difference = (drafted - reference).abs()
    assert difference.float().mean() < 2.0 and difference.max() <= 24
    gray = decode_image(path, 1, 48).int()  # draft to L: the JPEG's own luma
    reference_gray = resize_images(torch.from_numpy(np.array(Image.open(path).convert("L")))[None, None], 48)
    assert (gray - reference_gray[0].int()).abs().float().mean() < 2.0


# ----- file kinds and modes -----


def test_tiff_and_gif_first_frame(tmp_path):
    pixels = _gradient(tmp_path / "scan.tif", (20, 10), fmt="TIFF")
    assert torch.equal(decode_image(tmp_path / "scan.tif", 3), torch.from_numpy(pixels).permute(2, 0, 1))
    first = Image.new("P", (6, 4), 1)
    first.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    second = Image.new("P", (6, 4), 0)
    second.putpalette(first.getpalette())
    first.save(tmp_path / "anim.gif", save_all=True, append_images=[second])
    assert decode_image(tmp_path / "anim.gif").reshape(3, -1).unique(dim=1).flatten().tolist() == [
        10,
        200,
        30,
    ]


def test_sixteen_bit_tiff_is_scaled_like_sixteen_bit_png(tmp_path):
    deep = np.array([[0, 257 * 100], [65535, 257 * 7]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "a.png")
    Image.fromarray(deep).save(tmp_path / "a.tif")
    png, tif = decode_image(tmp_path / "a.png"), decode_image(tmp_path / "a.tif")
    assert png.tolist() == tif.tolist() == [[[0, 100], [255, 7]]]


def test_int32_and_float_modes(tmp_path):
    Image.fromarray(np.array([[0, 65535]], dtype=np.int32), "I").save(tmp_path / "i.tif")
    assert decode_image(tmp_path / "i.tif").tolist() == [[[0, 255]]]
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F").save(tmp_path / "f.tif")
    assert decode_image(tmp_path / "f.tif").tolist() == [[[0, 128, 255]]]  # 0-1 floats to 0-255


def test_cmyk_palette_and_alpha_modes(tmp_path):
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putpixel((0, 0), (0, 0, 0, 0))  # no ink: white
    cmyk.putpixel((1, 0), (255, 0, 0, 0))  # full cyan
    cmyk.save(tmp_path / "cmyk.tif")
    assert decode_image(tmp_path / "cmyk.tif").permute(1, 2, 0).tolist() == [[list(WHITE), [0, 255, 255]]]

    palette = Image.new("P", (2, 1))
    palette.putpalette([*RED, *BLUE] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png")
    assert decode_image(tmp_path / "p.png").permute(1, 2, 0).tolist() == [[list(RED), list(BLUE)]]
    palette.save(tmp_path / "p-transparent.png", transparency=1)  # the blue entry is transparent
    assert decode_image(tmp_path / "p-transparent.png").permute(1, 2, 0).tolist() == [
        [list(RED), list(WHITE)]
    ]

    rgba = np.array([[[0, 0, 255, 255], [0, 0, 0, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert decode_image(tmp_path / "rgba.png").permute(1, 2, 0).tolist() == [
        [list(BLUE), list(WHITE), [127, 127, 127]]  # half-transparent black over white
    ]
    la = Image.fromarray(np.array([[[10, 255], [10, 0]]], dtype=np.uint8), "LA")
    la.save(tmp_path / "la.png")
    assert decode_image(tmp_path / "la.png").tolist() == [[[10, 255]]]  # gray, one channel, over white


# ----- the parallel reader -----


def test_parallel_reader_equals_serial_read_and_names_broken_files(tmp_path):
    files = []
    for i in range(24):
        path = tmp_path / f"{i:02d}.jpg"
        _gradient(path, (90 + i, 60), quality=85)
        files.append(path)
    images, kept, bad = decode_many(files, 3, 16, workers=4)
    serial = torch.stack([decode_image(path, 3, 16) for path in files])
    assert kept == list(range(24)) and bad == [] and torch.equal(images, serial)

    truncated = tmp_path / "07.jpg"  # a valid header over cut-off pixel data
    truncated.write_bytes(truncated.read_bytes()[:400])
    empty = tmp_path / "15.jpg"
    empty.write_bytes(b"")
    images, kept, bad = decode_many(files, 3, 16, workers=4)
    assert kept == [i for i in range(24) if i not in (7, 15)]
    assert [path for path, _ in bad] == [truncated, empty] and all(
        "cannot read image" in why for _, why in bad
    )
    assert torch.equal(images, serial[kept])


def test_folder_with_a_broken_photo_skips_and_names_it(tmp_path):
    for c in ("a", "b"):
        for i in range(3):
            _gradient(tmp_path / c / f"{i}.jpg", (40, 30), quality=90)
    broken = tmp_path / "b" / "1.jpg"
    broken.write_bytes(broken.read_bytes()[:300])
    data = read_folder(tmp_path, image_size=16)
    assert len(data.train) == 5 and any("b/1.jpg" in note for note in data.notes)


# ----- bad input: one line -----


def test_heic_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "register_heic", lambda: False)  # as if pillow-heif were not installed
    photo = tmp_path / "a" / "IMG_0001.heic"
    photo.parent.mkdir()
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(32))
    with pytest.raises(ImageError) as error:
        decode_image(photo, 3, 32)
    assert "\n" not in str(error.value) and "pip install 'convtrain[heic]'" in str(error.value)
    for i in range(2):
        _gradient(tmp_path / "a" / f"{i}.jpg", (20, 20))
        _gradient(tmp_path / "b" / f"{i}.jpg", (20, 20))
    data = read_folder(tmp_path)
    assert len(data.train) == 4
    assert "IMG_0001.heic" in data.notes[0] and "convtrain[heic]" in data.notes[0]


def test_heic_with_the_extra(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")  # installed by `make test` (the heic extra)
    pillow_heif.register_heif_opener()
    _upright().save(tmp_path / "photo.heic", quality=95)
    pixels = decode_image(tmp_path / "photo.heic", 3)
    assert pixels.shape == (3, 32, 64) and pixels[0, 4, 4] > 200 and pixels[2, 20, 4] > 200


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height gray pixels: Pillow refuses it from the header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_one_line(tmp_path):
    bomb = tmp_path / "a" / "huge.png"
    bomb.parent.mkdir()
    _png_header_only(bomb, 30000, 30000)
    with pytest.raises(ImageError) as error:
        decode_image(bomb, 3, 32)
    assert "\n" not in str(error.value) and "huge.png" in str(error.value)
    assert isinstance(probe_image(bomb), str)  # the folder reader skips it, with the reason
    for c in ("a", "b"):
        _gradient(tmp_path / c / "ok.jpg", (20, 20))
    data = read_folder(tmp_path)
    assert len(data.train) == 2 and "huge.png" in data.notes[0]


# ----- memory -----


def test_folder_too_big_for_memory_streams_with_a_note(tmp_path):
    for c in ("a", "b"):
        for i in range(3):
            _gradient(tmp_path / c / f"{i}.jpg", (200, 150))
    data = read_folder(tmp_path, memory_limit=1000)  # 6 images at 3x64x64 need 73,728 bytes
    assert data.train.images is None and len(data.train.files) == 6 and data.image_size == 64
    assert any("streaming them from disk" in note for note in data.notes)
    fits = read_folder(tmp_path, memory_limit=10**6)
    assert fits.train.images.shape == (6, 3, 64, 64)


def test_train_streams_a_folder_that_does_not_fit(tmp_path, monkeypatch, capsys):
    from convtrain.cli import main
    from convtrain.data.formats import image_folder

    for c in ("a", "b"):
        for i in range(4):
            _gradient(tmp_path / "photos" / c / f"{i}.jpg", (400, 300))
    monkeypatch.setattr(image_folder, "available_memory", lambda: 1000)  # bytes free, as the reader sees it
    code = main(
        ["train", "--dataset", f"folder:{tmp_path / 'photos'}", "--out", str(tmp_path / "run"), "--epochs", "1",
         "--batch-size", "4", "--val-split", "0", "--no-plots", "--no-cache", "--workers", "0", "--quiet"]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "streaming them from disk" in captured.err + captured.out


def test_channel_stats_matches_a_float64_reference():
    from convtrain.data.info import channel_stats

    images = torch.randint(
        0, 256, (37, 3, 21, 19), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    x = images.double() / 255
    mean, std = channel_stats(images)
    assert np.allclose(mean, x.mean(dim=(0, 2, 3)).numpy(), atol=1e-6)
    assert np.allclose(std, x.std(dim=(0, 2, 3), unbiased=False).numpy(), atol=1e-6)


def test_decoded_cache_holds_photos_at_training_size(tmp_path):
    from convtrain.data.dataset_registry import load_dataset
    from convtrain.data.disk_cache import describe_cache

    for c in ("a", "b"):
        for i in range(2):
            _gradient(tmp_path / "photos" / c / f"{i}.jpg", (640, 480))
    first = load_dataset(f"folder:{tmp_path / 'photos'}", data_dir=str(tmp_path / "data"))
    again = load_dataset(f"folder:{tmp_path / 'photos'}", data_dir=str(tmp_path / "data"))
    assert first.image_size == again.image_size == 64 and torch.equal(first.train.images, again.train.images)
    (entry,) = describe_cache(tmp_path / "data")
    assert entry["images"] == 4 and entry["bytes"] < 4 * 3 * 64 * 64 + 4096  # 64x64 pixels, not 480x480
