"""Edited copies: pairs of images that show the same shot after a crop, a shift, a rescale, a colour
change or JPEG, found in two steps on gray images at 32x32 (for colour images, half luma and half
HSV value, so that a hue rotation changes little).

1. Candidates. Each image is summarised as REGIONS thumbnails: its centre region (BASE = 28 px)
   and that region shifted by 3 px or zoomed in by 1.22x and shifted (a cropped copy is a zoomed-in
   copy), each averaged down to THUMB x THUMB and made a unit vector (so brightness and contrast
   drop out). Every image's variants are compared with every image's centre by one matrix product
   per chunk; a pair's similarity is that of its best variant, and each image keeps its NEIGHBOURS
   most similar others, with the variant that matched. The plain shifts cover half the plane: a pair
   shifted the other way is found from its other image.
2. Alignment. Each candidate pair is aligned: from the matched variant, a hill climb over shift and
   zoom (steps of 1 px and 4%) maximises the score, the mean of two Pearson correlations with the
   other image's centre: of the pixels (which ignores brightness and contrast) and of the gradient
   magnitudes (which a smooth sky or a plain wall cannot match by accident the way pixels can).
   The climb runs on COARSE-px samples; pairs still above COARSE_FLOOR climb again (1 px, then half
   steps) scored on FINE-px samples, and that is the pair's score.

The score's threshold, EDITED_THRESHOLD, was chosen on pairs made from CIFAR-10 training images
with known edits and on the real test images a person looked at (benchmarks/near_duplicates.py;
README, "Edited copies"). All 60,000 CIFAR-10 images take about two minutes on 2 cores.

    python -c "import torch; from convtrain.datacheck.edited_copies import edited_pairs; x = torch.randint(0, 255, (50, 3, 32, 32), dtype=torch.uint8); print(edited_pairs(x))"
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIDE = 32  # images are compared as gray 32x32
BASE = 28  # the centre region compared, px
THUMB = 6  # candidate thumbnails are THUMB x THUMB
NEIGHBOURS = 6  # candidates per image
CANDIDATE_FLOOR = 0.8  # thumbnail similarity below which a pair is never aligned
BLUR = 0.8  # Gaussian sigma (px) applied before comparing: JPEG noise and resampling drop out
EDITED_THRESHOLD = 0.91  # aligned score at which a pair is an edited copy (benchmarks/near_duplicates.py)
COLUMNS = 2048  # candidates per block of that product
CHUNK = 128  # query images per all-to-all product (CHUNK x variants x N floats)
PAIR_CHUNK = 1024  # pairs aligned at a time
LUMA = torch.tensor([0.299, 0.587, 0.114])


def _regions() -> torch.Tensor:
    """(V, 3) variants as (zoom, dy, dx): zoom 1 shifted by 3 px over half the plane, and zoom 1.22
    shifted by up to 3 px either way. Shifts are in px of the 32 px image."""
    rows = [(1.0, dy, dx) for dy in (-3, 0, 3) for dx in (-3, 0, 3) if (dy, dx) >= (0, 0)]
    rows += [(1.22, dy, dx) for dy in (-3, 0, 3) for dx in (-3, 0, 3)]
    return torch.tensor(rows)


REGIONS = _regions()


def gaussian_taps(sigma: float) -> torch.Tensor:
    """(5,) the taps of a Gaussian of width sigma px, summing to 1."""
    taps = torch.arange(-2, 3, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gray32(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, 32, 32) gray, antialiased when resized, then blurred."""
    x = images.float()
    if x.shape[1] == 3:  # half luma, half HSV value (max of R, G, B), which a hue rotation leaves alone
        x = ((x * LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True) + x.amax(1, keepdim=True)) / 2
    if x.shape[-2:] != (SIDE, SIDE):
        x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", antialias=True, align_corners=False)
    kernel = gaussian_taps(BLUR)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1))[:, 0]


def sample(gray: torch.Tensor, params: torch.Tensor, out: int = BASE) -> torch.Tensor:
    """(P, 32, 32) images, (P, 3) (zoom, dy, dx) -> (P, out, out): the BASE-px region centred dy, dx
    px off the image's centre, zoomed in by `zoom`; edges repeat past the border."""
    scale = BASE / SIDE / params[:, 0]
    theta = torch.zeros(len(gray), 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, 0, 2], theta[:, 1, 2] = params[:, 2] * 2 / SIDE, params[:, 1] * 2 / SIDE
    grid = F.affine_grid(theta, [len(gray), 1, out, out], align_corners=False)
    return F.grid_sample(gray[:, None], grid, padding_mode="border", align_corners=False)[:, 0]


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x.flatten(1)
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)


def thumbnails(gray: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """(N, 32, 32) and (V, 3) -> (N, V, THUMB*THUMB) unit thumbnails of each variant."""
    n, v = len(gray), len(params)
    regions = sample(gray.repeat_interleave(v, 0), params.repeat(n, 1), out=THUMB * 4)
    return _unit(F.avg_pool2d(regions[:, None], 4)).view(n, v, -1)


def candidates(gray: torch.Tensor, neighbours: int = NEIGHBOURS) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, 2) pairs (i, j) where one of i's variants resembles j's base, and (P, 3) that variant."""
    n = len(gray)
    k = min(neighbours, n - 1)
    if k < 1:
        return torch.empty((0, 2), dtype=torch.long), torch.empty((0, 3))
    base = thumbnails(gray, torch.tensor([[1.0, 0.0, 0.0]]))[:, 0]  # (N, D)
    pairs, variants = [], []
    for start in range(0, n, CHUNK):
        rows = torch.arange(start, min(n, start + CHUNK))
        queries = thumbnails(gray[rows], REGIONS)  # (B, V, D)
        flat = queries.flatten(0, 1)  # (B*V, D)
        sims = torch.cat(  # (B, N): each column block's best variant, while the block is in cache
            [(flat @ block.T).view(len(rows), len(REGIONS), -1).amax(1) for block in base.split(COLUMNS)], 1
        )
        sims[torch.arange(len(rows)), rows] = -2.0  # not its own neighbour
        best, index = sims.topk(k, dim=1)  # (B, k)
        which = torch.einsum("bvd,bkd->bvk", queries, base[index]).argmax(1)  # (B, k) the variant
        keep = best >= CANDIDATE_FLOOR
        pairs.append(torch.stack([rows[:, None].expand_as(index)[keep], index[keep]], 1))
        variants.append(which[keep])
    return torch.cat(pairs), REGIONS[torch.cat(variants)]


def _gradient(x: torch.Tensor) -> torch.Tensor:
    dy, dx = x[:, 1:, :-1] - x[:, :-1, :-1], x[:, :-1, 1:] - x[:, :-1, :-1]
    return (dy**2 + dx**2 + 1e-6).sqrt()


def _score(region: torch.Tensor, target: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    pixels, edges = target
    return ((_unit(region) * pixels).sum(1) + (_unit(_gradient(region)) * edges).sum(1)) / 2


STEPS = torch.tensor(  # (zoom factor, dy, dx) of one step of the search, at step size 1
    [[1.04, 0, 0], [1 / 1.04, 0, 0], [1.0, 1, 0], [1.0, -1, 0], [1.0, 0, 1], [1.0, 0, -1]]
)
COARSE, FINE = 12, 24  # px the compared regions are sampled at: the search, then the score
COARSE_FLOOR = 0.55  # coarse score below which a pair is dropped before the fine search


def _climb(a: torch.Tensor, target: tuple, start: torch.Tensor, out: int, sizes: tuple) -> tuple:
    """Hill climb of (zoom, dy, dx) from `start`, one round per step size: (P,) best score, (P, 3) where."""
    current = start.clone()
    best = _score(sample(a, current, out), target)
    for size in sizes:
        steps = STEPS.clone()
        steps[:, 0] = steps[:, 0] ** size
        steps[:, 1:] *= size
        trial = current[:, None, :].repeat(1, len(steps), 1)  # (P, S, 3)
        trial[..., 0] = (trial[..., 0] * steps[:, 0]).clamp(0.9, 1.5)
        trial[..., 1:] = (trial[..., 1:] + steps[:, 1:]).clamp(-6.0, 6.0)
        repeat = len(steps)
        tiled = tuple(t.repeat_interleave(repeat, 0) for t in target)
        score = _score(sample(a.repeat_interleave(repeat, 0), trial.view(-1, 3), out), tiled).view(-1, repeat)
        top, pick = score.max(1)
        better = top > best
        current[better] = trial[torch.arange(len(a)), pick][better]
        best = torch.maximum(best, top)
    return best, current


def _targets(b: torch.Tensor, out: int) -> tuple[torch.Tensor, torch.Tensor]:
    region = sample(b, torch.tensor([[1.0, 0.0, 0.0]]).expand(len(b), 3), out)
    return _unit(region), _unit(_gradient(region))


def align(gray: torch.Tensor, pairs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """(P,) the best score of each pair (i, j) over zooms and shifts of i near `params`: a coarse
    search at COARSE px, then, for pairs still above COARSE_FLOOR, a finer one scored at FINE px."""
    scores = torch.full((len(pairs),), -1.0)
    for part, start, index in zip(
        pairs.split(PAIR_CHUNK),
        params.split(PAIR_CHUNK),
        torch.arange(len(pairs)).split(PAIR_CHUNK),
        strict=True,
    ):
        a, b = gray[part[:, 0]], gray[part[:, 1]]
        coarse, where = _climb(a, _targets(b, COARSE), start, COARSE, (1.0, 1.0, 1.0, 1.0))
        keep = coarse >= COARSE_FLOOR
        if keep.any():
            fine, _ = _climb(a[keep], _targets(b[keep], FINE), where[keep], FINE, (1.0, 0.5, 0.5))
            scores[index[keep]] = fine
    return scores


def edited_pairs(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, C, H, W) -> (P, 2) candidate pairs i < j (each once) and (P,) their aligned scores."""
    gray = gray32(images)
    pairs, params = candidates(gray)
    if not len(pairs):
        return pairs, torch.empty(0)
    ordered = pairs.sort(dim=1).values
    _, inverse = torch.unique(ordered[:, 0] * len(gray) + ordered[:, 1], return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(pairs), dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(len(pairs)), reduce="amin")  # one direction each
    return ordered[first], align(gray, pairs[first], params[first])
