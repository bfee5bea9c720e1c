"""Where do the heat maps fall? The README's figures for `--explain`, measured.

1. Squares: the synthetic set of tests/evaluation/test_explain.py (16 px noise, the class decided only by where
   a bright 6x6 square sits). A small network is trained, then for 128 test images we count those
   with more than half of the map's mass inside the square, per method and network.
2. Squares on CIFAR-sized images (32 px RGB noise, an 8x8 square at one of 9 places, 2 px jitter): the
   CIFAR networks, with Grad-CAM on each conv block or layer as well as the default, and the mean
   share of the map's mass inside the square (a uniform map scores 0.0625).
3. A trained MNIST run: the share of each test image's map that lies on the digit's stroke (pixels
   >= 128), against the stroke's share of the image (what a uniform map would score).

    python benchmarks/explain_localisation.py squares
    python benchmarks/explain_localisation.py squares32 --models fastnet-small lenet5-bn fourconv-cnn
    python benchmarks/explain_localisation.py mnist runs/mnist-fast --images 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluation"))

from test_explain import CORNERS, SIZE, mass_inside, normalise, square_images  # noqa: E402

from convtrain.evaluation.explain import default_layer, explain  # noqa: E402
from convtrain.models import build_model  # noqa: E402

METHODS = ("gradcam", "saliency", "ig")


def train_on_squares(name: str, seed: int) -> nn.Module:
    """The tests' recipe: 512 images, 3 epochs of Adam at 3e-3, batch 32."""
    torch.manual_seed(seed)
    images, labels, _ = square_images(512, seed=1)
    model = build_model(name, in_channels=1, num_classes=len(CORNERS), image_size=SIZE)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = normalise(images)
    for _ in range(3):
        for batch in torch.randperm(len(x)).split(32):
            loss = nn.functional.cross_entropy(model(x[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def squares(models: list[str], seeds: int) -> None:
    images, labels, masks = square_images(128, seed=2)
    x = normalise(images)
    print("model         seed  acc    layer        " + "  ".join(f"{m:>16}" for m in METHODS))
    for name in models:
        for seed in range(seeds):
            model = train_on_squares(name, seed)
            with torch.no_grad():
                acc = (model(x).argmax(1) == labels).float().mean().item()
            cells = []
            for method in METHODS:
                inside = mass_inside(explain(model, x, method), masks)  # (N,)
                cells.append(f"{100 * (inside > 0.5).float().mean():5.1f}% med {inside.median():.2f}")
            layer = default_layer(model, x[:1])
            print(f"{name:<13} {seed:>4}  {acc:.3f}  {layer:<11}  " + "  ".join(f"{c:>16}" for c in cells))


PLACES32 = [(3, 3), (3, 12), (3, 21), (12, 3), (12, 12), (12, 21), (21, 3), (21, 12), (21, 21)]


def squares32(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised images (N, 3, 32, 32) of noise with one bright 8x8 square, labels (N,), masks (N, 32, 32)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % len(PLACES32)
    images = torch.randint(0, 140, (count, 3, 32, 32), generator=g)
    masks = torch.zeros(count, 32, 32, dtype=torch.bool)
    jitter = torch.randint(-2, 3, (count, 2), generator=g)
    for i, (label, (dy, dx)) in enumerate(zip(labels.tolist(), jitter.tolist(), strict=True)):
        y, x = PLACES32[label][0] + dy, PLACES32[label][1] + dx
        masks[i, y : y + 8, x : x + 8] = True
    images[masks[:, None].expand(-1, 3, -1, -1)] += 110
    return (images.clamp(0, 255).float() / 255 - 0.35) / 0.25, labels, masks


def squares_on_cifar_sizes(models: list[str], seed: int = 0) -> None:
    """Each network trained 4 epochs (Adam 2e-3, batch 64) on 2,048 images, then scored on 256."""
    x, y, _ = squares32(2048, seed=1)
    test_x, test_y, masks = squares32(256, seed=2)
    for name in models:
        torch.manual_seed(seed)
        model = build_model(name, in_channels=3, num_classes=len(PLACES32), image_size=32)
        if hasattr(model, "fit_to_data"):
            model.fit_to_data(x[:1000])
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        for _ in range(4):
            for batch in torch.randperm(len(x)).split(64):
                loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            acc = (model(test_x).argmax(1) == test_y).float().mean().item()
        default = default_layer(model, test_x[:1])
        layers = [None] + [
            n
            for n, m in model.named_modules()
            if n.startswith("features.")
            and n.count(".") == 1
            and any(isinstance(c, nn.Conv2d) for c in m.modules())
        ]
        cells = []
        for layer in layers:
            inside = mass_inside(explain(model, test_x, "gradcam", layer=layer), masks).mean()
            cells.append(f"gradcam {layer or 'default (' + default + ')'} {inside:.3f}")
        for method in ("saliency", "ig"):
            cells.append(f"{method} {mass_inside(explain(model, test_x, method), masks).mean():.3f}")
        print(f"{name}: acc {acc:.3f}; mean share inside the square: " + "; ".join(cells), flush=True)


def mnist(run_dir: str, count: int, batch: int = 100) -> None:
    import convtrain
    from convtrain.data.pixels import preprocess
    from convtrain.evaluation.scoring import load_run_data, pick_split

    run = convtrain.load_run(run_dir)
    model, card = run.load_model(None, "cpu")
    split = pick_split(run, load_run_data(run), "test")
    images = split.images[:count]  # (N, 1, 28, 28) uint8
    stroke = images[:, 0] >= 128  # (N, 28, 28): the digit
    print(
        f"run {run_dir}: {card['architecture']}, {count} test images; Grad-CAM layer "
        f"{default_layer(model, preprocess(card, images[:1]))}"
    )
    print(f"stroke (pixels >= 128): {100 * stroke.float().mean():.1f}% of the image area")
    for method in METHODS:
        start, shares = time.perf_counter(), []
        for part, mask in zip(images.split(batch), stroke.split(batch), strict=True):
            shares.append(mass_inside(explain(model, preprocess(card, part), method), mask))
        share = torch.cat(shares)
        print(
            f"{method:<9} mean share of the map on the stroke {100 * share.mean():.1f}% "
            f"(median {100 * share.median():.1f}%), {1000 * (time.perf_counter() - start) / count:.1f} ms/image"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("squares")
    s.add_argument("--models", nargs="+", default=["twoconv-cnn", "mnist-cnn", "lenet5"])
    s.add_argument("--seeds", type=int, default=3)
    s32 = sub.add_parser("squares32")
    s32.add_argument("--models", nargs="+", default=["fastnet-small", "lenet5-bn", "fourconv-cnn"])
    m = sub.add_parser("mnist")
    m.add_argument("run")
    m.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    if args.what == "squares":
        squares(args.models, args.seeds)
    elif args.what == "squares32":
        squares_on_cifar_sizes(args.models)
    else:
        mnist(args.run, args.images)


if __name__ == "__main__":
    main()
