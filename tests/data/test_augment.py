"""Batch augmentation: each op against an independent reference built from plain PyTorch ops.

.venv/bin/python -m pytest tests/data/test_augment.py -q
"""

import pytest
import torch
import torch.nn.functional as F

from convtrain.base.errors import ConfigError
from convtrain.data.augment import _beta, cutout, parse_augment, rotate


def _batch(b=16, c=3, h=10, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g), torch.arange(b) % 5


def _run(spec, x, labels, epoch=0, seed=0, gen_seed=0, indices=None, num_classes=5):
    indices = torch.arange(len(x)) if indices is None else indices
    g = torch.Generator().manual_seed(gen_seed)
    return parse_augment(spec)(x, labels, indices, epoch, g, num_classes, seed=seed)


# ----- parsing -----


def test_parse_valid_specs():
    assert parse_augment("none").is_identity and parse_augment("").is_identity
    aug = parse_augment(" Flip, crop:4 ,rotate:15,cutout:8,mixup:0.2 ")
    assert (aug.flip, aug.crop, aug.rotate, aug.cutout, aug.mixup) == (True, 4, 15.0, 8, 0.2)
    assert not aug.is_identity and aug.soft_targets
    assert not parse_augment("altflip,translate:2").soft_targets


@pytest.mark.parametrize(
    "spec, named",
    [("blur", "blur"), ("crop", "crop"), ("crop:x", "crop"), ("crop:2.5", "crop"), ("rotate:200", "rotate"),
     ("mixup:0", "mixup"), ("flip:3", "flip"), ("flip,flip", "flip"), ("flip,altflip", "altflip"),
     ("flip,,crop:2", "''"), ("none,flip", "none"), ("cutout:-2", "cutout")],
)  # fmt: skip
def test_bad_specs_name_the_item(spec, named):
    with pytest.raises(ConfigError) as error:
        parse_augment(spec)
    message = str(error.value)
    assert named in message and "\n" not in message


def test_unknown_item_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid items: none, flip, altflip, crop:PAD"):
        parse_augment("flip,jitter:3")


# ----- flips -----


def _flipped_set(out, x):
    return torch.tensor([torch.equal(o, f) for o, f in zip(out, x.flip(-1).float(), strict=True)])


def test_identity_returns_float_copy_of_pixels():
    x, y = _batch()
    out, targets = _run("none", x, y)
    assert out.dtype == torch.float32 and torch.equal(out, x.float()) and torch.equal(targets, y)


def test_flip_is_torch_flip_or_untouched_and_both_occur():
    x, y = _batch(b=32)
    out, _ = _run("flip", x, y)
    flipped = _flipped_set(out, x)
    kept = torch.tensor([torch.equal(o, k) for o, k in zip(out, x.float(), strict=True)])
    assert (flipped | kept).all() and flipped.any() and kept.any()


def test_altflip_alternates_per_image_and_ignores_generator_and_batch_order():
    x, y = _batch(b=32)
    e0 = _flipped_set(_run("altflip", x, y, epoch=0, gen_seed=1)[0], x)
    e1 = _flipped_set(_run("altflip", x, y, epoch=1, gen_seed=2)[0], x)
    e2 = _flipped_set(_run("altflip", x, y, epoch=2, gen_seed=3)[0], x)
    assert 0 < e0.sum() < 32
    assert torch.equal(e1, ~e0) and torch.equal(e2, e0)
    # The flip belongs to the image (its dataset index), not to its place in the batch.
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(5))
    shuffled = _flipped_set(_run("altflip", x[perm], y[perm], indices=perm)[0], x[perm])
    assert torch.equal(shuffled, e0[perm])
    assert not torch.equal(_flipped_set(_run("altflip", x, y, seed=9)[0], x), e0)


# ----- shifts -----


def _windows(padded, h, w):
    """Every h x w window of one padded image (C, H+2p, W+2p)."""
    hp, wp = padded.shape[-2:]
    return [padded[:, i : i + h, j : j + w] for i in range(hp - h + 1) for j in range(wp - w + 1)]


@pytest.mark.parametrize("spec, mode", [("crop:3", "constant"), ("translate:3", "reflect")])
def test_shift_equals_a_window_of_the_padded_image(spec, mode):
    x, y = _batch(b=24, h=9, w=11)
    out, _ = _run(spec, x, y)
    padded = F.pad(x.float(), (3, 3, 3, 3), mode=mode)  # (B, C, H+6, W+6)
    positions = set()
    for o, p in zip(out, padded, strict=True):
        hits = [k for k, window in enumerate(_windows(p, 9, 11)) if torch.equal(o, window)]
        assert hits, "output is not a shifted window of the padded image"
        positions.add(hits[0])
    assert len(positions) > 5  # the shift really varies from image to image


def test_flip_then_crop_is_a_window_of_the_image_or_its_mirror():
    x, y = _batch(b=24)
    out, _ = _run("flip,crop:2", x, y)
    for o, image in zip(out, x.float(), strict=True):
        candidates = _windows(F.pad(image, (2, 2, 2, 2)), 10, 10) + _windows(
            F.pad(image.flip(-1), (2, 2, 2, 2)), 10, 10
        )
        assert any(torch.equal(o, window) for window in candidates)


def test_uint8_float_and_channels_last_inputs_augment_alike():
    x, y = _batch()
    a, _ = _run("flip,crop:2,translate:1", x, y)
    b, _ = _run("flip,crop:2,translate:1", x.float(), y)
    c, _ = _run("flip,crop:2,translate:1", x.contiguous(memory_format=torch.channels_last), y)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert c.is_contiguous(memory_format=torch.channels_last)  # the layout survives augmentation


def test_crop_larger_than_image_is_a_config_error():
    x, y = _batch(h=4, w=4)
    with pytest.raises(ConfigError, match="crop:4"):
        _run("crop:4", x, y)


# ----- rotate, cutout -----


def test_rotate_zero_is_identity_and_ninety_is_rot90():
    x = torch.rand(3, 2, 7, 7)
    out = rotate(x, torch.tensor([0.0, 90.0, -90.0]))
    torch.testing.assert_close(out[0], x[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], torch.rot90(x[1], 1, (1, 2)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[2], torch.rot90(x[2], -1, (1, 2)), atol=1e-5, rtol=0)


def test_rotate_spec_turns_images_by_varied_angles():
    x = torch.zeros(8, 1, 15, 15)
    x[:, :, 7, :] = 1.0  # a horizontal bar through the centre
    out, _ = _run("rotate:45", x, torch.zeros(8, dtype=torch.long))
    assert not torch.allclose(out, x, atol=1e-3)
    assert out[:, 0, 7, 7].min() > 0.9  # the centre pixel stays on the bar
    assert len({tuple(o.flatten().round(decimals=3).tolist()) for o in out}) > 4  # angles differ per image


def test_cutout_zeroes_one_square_clipped_at_borders():
    size, side = 5, 12
    out = cutout(torch.ones(64, 3, side, side), size, torch.Generator().manual_seed(0))
    clipped = 0
    for image in out:
        zero = image == 0  # (C, H, W)
        assert torch.equal(zero, zero[:1].expand_as(zero))  # same square in every channel
        rows, cols = zero[0].any(1), zero[0].any(0)
        assert torch.equal(zero[0], rows[:, None] & cols[None, :])  # a filled rectangle
        for axis in (rows, cols):
            hit = axis.nonzero().flatten()
            assert hit.numel() > 0 and hit[-1] - hit[0] + 1 == hit.numel()  # contiguous
            at_border = hit[0] == 0 or hit[-1] == side - 1
            assert hit.numel() == size or (at_border and hit.numel() < size)
            clipped += int(hit.numel() < size)
    assert clipped > 0


# ----- mixing -----


def test_mixup_is_the_convex_combination_its_targets_state():
    x = torch.rand(8, 3, 6, 6) * 255
    labels = torch.arange(8)
    out, targets = _run("mixup:0.5", x, labels, num_classes=8)
    assert targets.shape == (8, 8) and targets.dtype == torch.float32
    torch.testing.assert_close(targets.sum(1), torch.ones(8))
    lam = targets[torch.arange(8), labels]  # weight of each image's own class
    torch.testing.assert_close(targets[torch.arange(8), labels.roll(1)], 1 - lam)
    expected = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x.roll(1, 0)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-3)
    assert ((lam >= 0) & (lam <= 1)).all() and lam.std() > 0.05


def test_cutmix_pastes_a_box_whose_area_matches_the_targets():
    x = torch.rand(16, 3, 12, 12) * 255
    labels = torch.arange(16) % 8  # each image's partner (the one before it) has another class
    out, targets = _run("cutmix:1.0", x, labels, num_classes=8)
    torch.testing.assert_close(targets.sum(1), torch.ones(16))
    from_other = (out == x.roll(1, 0)).all(1) & (out != x).any(1)  # (B, H, W) pixels from the partner
    assert ((out == x) | (out == x.roll(1, 0))).all()
    lam = targets[torch.arange(16), labels]
    torch.testing.assert_close(1 - from_other.float().mean((1, 2)), lam)
    for box in from_other:
        rows, cols = box.any(1), box.any(0)
        assert torch.equal(box, rows[:, None] & cols[None, :])


def test_beta_sampler_matches_torch_beta():
    for alpha in (0.3, 2.0):
        ours = _beta(alpha, 20000, torch.Generator().manual_seed(0), torch.device("cpu"))
        torch.manual_seed(0)
        reference = torch.distributions.Beta(alpha, alpha).sample((20000,))
        assert ((ours >= 0) & (ours <= 1)).all()
        q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
        torch.testing.assert_close(ours.quantile(q), reference.quantile(q), atol=0.02, rtol=0)


# ----- determinism -----


def test_same_generator_seed_same_batch_other_seed_differs():
    x, y = _batch()
    spec = "flip,crop:2,rotate:10,cutout:3,mixup:0.4,cutmix:1.0"
    a = _run(spec, x, y, gen_seed=4)
    b = _run(spec, x, y, gen_seed=4)
    c = _run(spec, x, y, gen_seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[1].shape == (16, 5)
