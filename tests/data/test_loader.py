"""Loaders: every image once per epoch, seeded order, exact normalisation, sharding, streaming.

.venv/bin/python -m pytest tests/data/test_loader.py -q
"""

import pytest
import torch
from PIL import Image

from convtrain.base.errors import ConfigError, ImageError
from convtrain.cli import main
from convtrain.data.augment import parse_augment
from convtrain.data.dataset import ImageData, Split
from convtrain.data.formats.image_folder import decode_image
from convtrain.data.loader import DeviceLoader, StreamLoader, make_loader
from convtrain.data.show import save_batch_grid

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _split(n=50, size=8, seed=0) -> Split:
    """Labels are the image indices, so a batch's labels say exactly which images it holds."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return Split(labels=torch.arange(n), images=images)


def _loader(split, cls=DeviceLoader, **overrides):
    args = dict(mean=MEAN, std=STD, batch_size=16, device="cpu", shuffle=True, drop_last=False, seed=0)
    args["num_classes"] = len(split)
    return cls(split, **(args | overrides))


def _epoch(loader, epoch=0):
    loader.set_epoch(epoch)
    return list(loader)


def _reference(images):
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def test_every_image_once_per_epoch_and_normalised_exactly():
    split = _split()
    loader = _loader(split)
    batches = _epoch(loader)
    assert len(batches) == len(loader) == 4 and [len(y) for _, y in batches] == [16, 16, 16, 2]
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(labels.sort().values, torch.arange(50)) and not torch.equal(labels, torch.arange(50))
    for x, y in batches:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8)
        torch.testing.assert_close(x, _reference(split.images[y]), rtol=1e-5, atol=1e-5)


def test_drop_last_serves_only_full_batches():
    loader = _loader(_split(), drop_last=True)
    batches = _epoch(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [16, 16, 16]
    assert len(torch.cat([y for _, y in batches]).unique()) == 48


def test_unshuffled_order_is_the_dataset_order():
    split = _split()
    x = torch.cat([x for x, _ in _epoch(_loader(split, shuffle=False))])
    torch.testing.assert_close(x, _reference(split.images), rtol=1e-5, atol=1e-5)


def test_order_depends_only_on_seed_and_epoch():
    split, aug = _split(), parse_augment("flip,crop:2,cutout:3")
    first = _loader(split, augment=aug, seed=3)
    run = [_epoch(first, e) for e in range(3)]
    resumed = _loader(split, augment=aug, seed=3)  # a fresh process resuming at epoch 2
    for (xa, ya), (xb, yb) in zip(run[2], _epoch(resumed, 2), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(run[0][0][1], run[1][0][1])  # a new order each epoch
    other = _epoch(_loader(split, augment=aug, seed=4))
    assert not torch.equal(other[0][1], run[0][0][1])


def test_mixup_gives_soft_targets_and_channels_last_keeps_values():
    split = _split()
    x, y = next(iter(_loader(split, augment=parse_augment("mixup:0.3"))))
    assert y.shape == (16, 50) and torch.allclose(y.sum(1), torch.ones(16))
    plain = next(iter(_loader(split, shuffle=False)))[0]
    fast = next(iter(_loader(split, shuffle=False, channels_last=True)))[0]
    assert fast.is_contiguous(memory_format=torch.channels_last) and torch.equal(plain, fast)


@pytest.mark.parametrize("n, drop_last", [(64, False), (50, False), (51, False), (50, True)])
def test_training_shards_are_disjoint_and_cover_the_epoch(n, drop_last):
    split = _split(n)
    ranks = [_loader(split, drop_last=drop_last, rank=r, world_size=2, seed=5) for r in range(2)]
    single = _epoch(_loader(split, drop_last=drop_last, seed=5))
    per_rank = [_epoch(loader, 0) for loader in ranks]
    assert len(ranks[0]) == len(ranks[1]) == len(per_rank[0]) == len(per_rank[1])
    for (_, y0), (_, y1) in zip(*per_rank, strict=True):
        assert len(y0) == len(y1) and set(y0.tolist()).isdisjoint(y1.tolist())
    for step, (_, y) in enumerate(single[: len(per_rank[0])]):  # each global batch is split between ranks
        together = torch.cat([per_rank[0][step][1], per_rank[1][step][1]])
        assert set(together.tolist()) <= set(y.tolist())
    seen = torch.cat([y for rank in per_rank for _, y in rank])
    assert len(seen.unique()) == len(seen)
    expected = (n // 16) * 16 if drop_last else n - n % 16 % 2  # at most world_size - 1 left over
    assert len(seen) == expected


def test_evaluation_shards_cover_every_image_once():
    split = _split(50)
    shards = [_epoch(_loader(split, shuffle=False, rank=r, world_size=3)) for r in range(3)]
    labels = torch.cat([y for shard in shards for _, y in shard])
    assert torch.equal(labels, torch.arange(50))  # contiguous shards, in rank order


def test_bad_rank_or_batch_is_a_config_error():
    with pytest.raises(ConfigError, match="rank"):
        _loader(_split(), rank=2, world_size=2)
    with pytest.raises(ConfigError, match="batch_size"):
        _loader(_split(), batch_size=2, world_size=4)


def test_stream_loader_serves_the_device_loader_batches():
    split, aug = _split(), parse_augment("flip,translate:2,mixup:0.4")
    device = _epoch(_loader(split, augment=aug, seed=2), 1)
    for workers in (0, 2):
        stream = _epoch(_loader(split, StreamLoader, augment=aug, seed=2, workers=workers), 1)
        assert len(stream) == len(device)
        for (xa, ya), (xb, yb) in zip(device, stream, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_stream_loader_reads_files_to_the_same_pixels(tmp_path):
    split = _split(12)
    files = []
    for i, image in enumerate(split.images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(files[-1])  # PNG is lossless
    assert torch.equal(decode_image(files[0], 3, 8), split.images[0])  # the reader the stream workers call
    streamed = Split(labels=split.labels, files=files)
    data = ImageData("toy", [str(i) for i in range(12)], 3, 8, MEAN, STD, train=streamed)
    loader = make_loader(streamed, data, batch_size=5, device="cpu", train=False, workers=1)
    assert isinstance(loader, StreamLoader)
    device = _epoch(_loader(split, shuffle=False, batch_size=5))
    stream = _epoch(loader)
    assert [len(y) for _, y in stream] == [5, 5, 2]
    for (xa, ya), (xb, yb) in zip(device, stream, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_make_loader_train_and_eval_modes():
    split = _split(40)
    data = ImageData("toy", [str(i) for i in range(40)], 3, 8, MEAN, STD, train=split)
    train = make_loader(split, data, 16, "cpu", train=True, augment=parse_augment("mixup:1"), seed=0)
    assert isinstance(train, DeviceLoader) and len(train) == 2 and train.augment is not None
    evaluate = make_loader(split, data, 16, "cpu", train=False, augment=parse_augment("mixup:1"))
    labels = torch.cat([y for _, y in evaluate])
    assert len(evaluate) == 3 and evaluate.augment is None and torch.equal(labels, torch.arange(40))
    small = make_loader(split, data, 64, "cpu", train=True)  # smaller than a batch: nothing dropped
    assert len(torch.cat([y for _, y in small])) == 40


def test_show_writes_a_png(tmp_path):
    split = _split(20)
    data = ImageData("toy", [f"class{i}" for i in range(20)], 3, 8, MEAN, STD, train=split)
    path = save_batch_grid(data, tmp_path / "out" / "grid.png", augment_spec="flip,cutmix:1", count=6)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 100
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]


def test_a_picture_is_written_in_the_format_its_name_says(tmp_path, capsys):
    split = _split(20)
    data = ImageData("toy", [f"class{i}" for i in range(20)], 3, 8, MEAN, STD, train=split)
    for name, kind in (("grid.jpg", "JPEG"), ("grid", "PNG")):  # no suffix: .png, as matplotlib adds
        path = save_batch_grid(data, tmp_path / name, count=4)
        with Image.open(path) as image:
            assert image.format == kind and path.suffix in (".jpg", ".png")
    assert (tmp_path / "grid.png").is_file() and not (tmp_path / "grid").exists()
    with pytest.raises(ConfigError, match=r"grid.txt: end the name in .png, .jpg"):
        save_batch_grid(data, tmp_path / "grid.txt", count=4)
    # the CLI refuses a bad name before it reads the data, and says the name it wrote
    assert main(["data", "show", "mnist", "--out", str(tmp_path / "batch.txt")]) == 2
    assert "batch.txt: end the name in .png" in capsys.readouterr().err
    assert main(["data", "show", "mnist", "--count", "4", "--out", str(tmp_path / "batch")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'batch.png'}"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_file_in_a_worker_is_one_line_image_error(tmp_path, workers):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    split = Split(labels=torch.tensor([0]), files=[bad])
    loader = _loader(
        split, StreamLoader, shuffle=False, workers=workers, channels=3, image_size=8, num_classes=2
    )
    with pytest.raises(ImageError) as error:
        list(loader)
    assert "bad.png" in str(error.value) and "\n" not in str(error.value)
    assert not str(error.value).startswith("convtrain")


@pytest.mark.parametrize("loader", ["device", "stream"])
def test_rows_serve_the_batches_of_the_subset(loader):
    """rows=R gives exactly the batches of split.subset(R), augmentation included; the device loader
    serves them from the split's own images, not from a copy of the subset."""
    split = _split(60)
    data = ImageData("toy", [str(i) for i in range(60)], 3, 8, MEAN, STD, train=split)
    rows = torch.randperm(60, generator=torch.Generator().manual_seed(1))[:37]
    options = dict(augment=parse_augment("flip,crop:2"), seed=3, loader=loader, workers=0)
    by_rows = make_loader(split, data, 16, "cpu", train=True, rows=rows, **options)
    by_subset = make_loader(split.subset(rows), data, 16, "cpu", train=True, **options)
    assert len(by_rows) == len(by_subset) == 2  # 37 images, the short batch dropped
    for epoch in (0, 1):
        for (x, y), (x0, y0) in zip(_epoch(by_rows, epoch), _epoch(by_subset, epoch), strict=True):
            assert torch.equal(x, x0) and torch.equal(y, y0)
    if loader == "device":
        assert by_rows.images.data_ptr() == split.images.data_ptr()
    evaluation = make_loader(split, data, 16, "cpu", train=False, rows=rows, loader=loader, workers=0)
    assert torch.equal(torch.cat([y for _, y in evaluation]), split.labels[rows])  # in order, every one
