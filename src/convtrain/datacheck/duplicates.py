"""The duplicates check: exact and near-duplicate images, within each split and across splits (leaks).

Exact duplicates decode to the same pixels (source.pixel_hash). Near duplicates are found in
three steps, all on gray images at up to 32x32:
1. Candidates: each image's nearest neighbours by the magnitudes of its low spatial frequencies
   (2-D FFT), compared all-to-all by one matrix product per chunk. A shift leaves these magnitudes
   unchanged, and a resize or a brightness change barely moves them; they cannot tell an image from
   its mirror image, which is why step 2 looks at the pixels.
2. Score: the Pearson correlation of the two images, the best over shifts of up to MAX_SHIFT pixels
   each way. Correlation ignores brightness and contrast (a x pixels + b).
3. Pairs that score at least SHORTLIST are scored again with either image blurred (two Gaussian
   widths) and the best kept: a resized copy is a blurred copy, and blurring its original to match
   brings the pair back near 1, where two different images stay below.
A pair scoring at least NEAR_THRESHOLD is a near duplicate. Edited copies (the same shot cropped,
shifted by up to 6 px, rescaled, recoloured or JPEG'd, which the steps above miss) come from
edited_copies.py: a pair scoring at least EDITED_THRESHOLD there is linked too. That search runs on
colour images only: on MNIST, thousands of different digits (a stroke on a blank ground) align as
"edited copies" of each other. Pairs join into groups (connected
components). The threshold was measured on MNIST with planted copies (benchmarks/datacheck_planted.py,
README): brighter, darker, 1-2 px shifted and resized copies score >= 0.99; among the 70,000
original MNIST digits, the closest pairs of different images (thin, straight ones) reach 0.985-0.99.

    python -c "from convtrain.datacheck.duplicates import pair_score; import torch; a = torch.rand(1, 28, 28); print(pair_score(a, a.roll(2, 1)))"
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from convtrain.datacheck.edited_copies import EDITED_THRESHOLD, LUMA, edited_pairs, gaussian_taps
from convtrain.datacheck.source import SplitImages

NEAR_THRESHOLD = 0.99  # best correlation over shifts and blurs (see the module docstring)
SHORTLIST = 0.9  # plain best-shift correlation a pair needs before the blurred comparisons
MAX_SHIFT = 2  # pixels each way at the compared size
BLURS = (0.7, 1.2)  # Gaussian sigmas, in pixels at the compared size
COMPARE_SIDE = 32  # largest side images are compared at
NEIGHBOURS = 6  # candidates per image
CANDIDATE_FLOOR = 0.96  # frequency-embedding similarity below which a pair is never scored
CHUNK = 1024  # rows per all-to-all product: CHUNK x N floats at a time
KEEP_ORDER = ("test", "val", "train")  # which copy a group keeps: the evaluation splits stay whole
KINDS = ("exact", "near", "edited")  # the order groups are listed in


@dataclass
class DuplicateGroup:
    """Images that are copies of each other; `kept` is the one left when the others are removed."""

    id: int
    kind: str  # exact (all decode to the same pixels), near (pixel-level copies) or edited (a link is an edited copy)
    members: list[tuple[str, int]]  # (split, index), kept first
    score: float  # the lowest score of the links that joined the group (1.0 for exact), on its kind's scale

    @property
    def splits(self) -> list[str]:
        return sorted({split for split, _ in self.members})


@dataclass
class DuplicateReport:
    groups: list[DuplicateGroup] = field(default_factory=list)
    pairs: dict[str, dict[str, int]] = field(default_factory=dict)  # "train/test" -> counts
    threshold: float = NEAR_THRESHOLD
    edited_threshold: float | None = EDITED_THRESHOLD  # None: edited copies not searched (gray images)

    def kind_counts(self) -> dict[str, int]:
        """Groups of each kind, in KINDS order."""
        return {kind: sum(g.kind == kind for g in self.groups) for kind in KINDS}

    def flagged(self) -> list[tuple[str, int, int]]:
        """(split, index, group id) of every copy beyond the kept one."""
        return [(split, index, g.id) for g in self.groups for split, index in g.members[1:]]


def gray(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, side, side) gray, antialiased when shrunk."""
    x = images.float()
    if x.shape[1] == 3:
        x = (x * LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)  # (N, 1, H, W)
    if x.shape[-1] != side:
        x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return x[:, 0]  # (N, side, side)


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(1, keepdim=True)  # (N, D)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)


def frequency_embedding(small: torch.Tensor, keep: int = 6) -> torch.Tensor:
    """(N, S, S) gray -> unit vectors of the low-frequency FFT magnitudes (unchanged by a circular shift)."""
    spectrum = torch.fft.rfft2(small - small.mean((1, 2), keepdim=True)).abs()  # (N, S, S//2+1)
    rows = torch.cat([spectrum[:, :keep], spectrum[:, -keep + 1 :]], 1)[:, :, :keep]  # (N, 2k-1, k)
    return _unit(rows.flatten(1)[:, 1:])  # drop the DC term (zero after centring)


def nearest(embedding: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's k most similar other rows: (N, k) indices and cosine similarities."""
    n, k = len(embedding), min(k, len(embedding) - 1)
    indices, scores = torch.empty((n, k), dtype=torch.long), torch.empty((n, k))
    for start in range(0, n, CHUNK):
        rows = torch.arange(start, min(n, start + CHUNK))
        sims = embedding[rows] @ embedding.T  # (B, N)
        sims[torch.arange(len(rows)), rows] = -2.0  # not its own neighbour
        scores[rows], indices[rows] = sims.topk(k, dim=1)
    return indices, scores


def candidate_pairs(small: torch.Tensor) -> torch.Tensor:
    """(P, 2) index pairs i < j worth scoring."""
    indices, scores = nearest(frequency_embedding(small), NEIGHBOURS)
    rows = torch.arange(len(small)).unsqueeze(1).expand_as(indices)  # (N, k)
    keep = scores >= CANDIDATE_FLOOR
    pairs = torch.stack([rows[keep], indices[keep]], 1).sort(dim=1).values  # (P, 2), i < j
    return torch.unique(pairs, dim=0) if len(pairs) else pairs


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(P, S, S) images blurred by a Gaussian of width sigma pixels (separable, 5 taps)."""
    kernel = gaussian_taps(sigma)
    y = F.conv2d(x[:, None], kernel.view(1, 1, 1, 5), padding=(0, 2))  # (P, 1, S, S)
    return F.conv2d(y, kernel.view(1, 1, 5, 1), padding=(2, 0))[:, 0]


def match(a: torch.Tensor, b: torch.Tensor, max_shift: int = MAX_SHIFT) -> torch.Tensor:
    """Best Pearson correlation of b's centre against the windows of a shifted by up to max_shift
    pixels each way, for (P, S, S) pairs: (P,). Normalised cross-correlation, as in template matching:
    one grouped convolution gives every window's dot product with the centred template."""
    count, side = a.shape[0], a.shape[-1]
    inner = side - 2 * max_shift
    template = b[:, max_shift : side - max_shift, max_shift : side - max_shift]  # (P, T, T)
    template = template - template.mean((1, 2), keepdim=True)  # centred: a window's mean drops out
    template_norm = template.flatten(1).norm(dim=1)  # (P,)
    dots = F.conv2d(a[None], template[:, None], groups=count)[0]  # (P, 2m+1, 2m+1)
    mean = F.avg_pool2d(a[:, None], inner, stride=1)[:, 0]  # (P, 2m+1, 2m+1) window means
    square = F.avg_pool2d(a[:, None] ** 2, inner, stride=1)[:, 0]
    window_norm = ((square - mean**2).clamp_min(0) * inner * inner).sqrt()  # of each centred window
    return (dots / (window_norm * template_norm[:, None, None]).clamp_min(1e-6)).flatten(1).amax(1)


def pair_score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The near-duplicate score of (P, S, S) pairs: best-shift correlation both ways, then (for the
    shortlist) the best over blurring either image as well."""
    best = torch.maximum(match(a, b), match(b, a))
    close = best >= SHORTLIST
    if close.any():
        a, b, shortlist = a[close], b[close], best[close]
        for sigma in BLURS:
            shortlist = torch.maximum(shortlist, match(blur(a, sigma), b))
            shortlist = torch.maximum(shortlist, match(blur(b, sigma), a))
        best[close] = shortlist
    return best


def _score(small: torch.Tensor, pairs: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    if not len(pairs):  # split() of an empty tensor still yields one empty chunk
        return torch.empty(0)
    scores = [pair_score(small[part[:, 0]], small[part[:, 1]]) for part in pairs.split(chunk)]
    return torch.cat(scores) if scores else torch.empty(0)


def find_duplicates(
    splits: dict[str, SplitImages],
    threshold: float = NEAR_THRESHOLD,
    edited_threshold: float = EDITED_THRESHOLD,
) -> DuplicateReport:
    """Exact, near-duplicate and edited-copy groups over every split given, with counts per split pair."""
    names = list(splits)
    members = [(name, i) for name in names for i in range(len(splits[name]))]
    hashes = [h for name in names for h in splits[name].hashes]
    side = min(COMPARE_SIDE, splits[names[0]].images.shape[-1])
    small = torch.cat([gray(splits[name].images, side) for name in names])  # (N, S, S)

    parent = list(range(len(members)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    link_score: dict[int, float] = defaultdict(lambda: 1.0)
    edited: set[int] = set()  # roots of groups joined by an edited-copy link
    first_of: dict[str, int] = {}
    for i, h in enumerate(hashes):  # exact copies: same pixels
        parent[root(i)] = root(first_of.setdefault(h, i))

    def link(i: int, j: int, score: float, is_edited: bool) -> None:
        a, b = root(i), root(j)
        low = min(score, link_score[a], link_score[b])
        if a in edited or is_edited:
            edited.add(b)
        parent[a] = b
        link_score[b] = low

    pairs = candidate_pairs(small)
    for (i, j), score in zip(pairs.tolist(), _score(small, pairs).tolist(), strict=True):
        if score >= threshold and hashes[i] != hashes[j]:
            link(i, j, score, False)
    images = torch.cat([splits[name].images for name in names])
    searched = images.shape[1] == 3  # photos: on gray digits and garments, different images align
    for (i, j), score in zip(*(t.tolist() for t in edited_pairs(images)), strict=True) if searched else ():
        if score >= edited_threshold and root(i) != root(j):  # not already exact or near copies
            link(i, j, score, True)

    grouped: dict[int, list[int]] = defaultdict(list)
    for i in range(len(members)):
        grouped[root(i)].append(i)
    groups = []
    for top, items in grouped.items():
        if len(items) < 2:
            continue
        items.sort(key=lambda i: (KEEP_ORDER.index(members[i][0]), members[i][1]))
        exact = len({hashes[i] for i in items}) == 1
        score = 1.0 if exact else round(link_score[top], 4)
        kind = "exact" if exact else "edited" if top in edited else "near"
        groups.append(DuplicateGroup(0, kind, [members[i] for i in items], score))
    groups.sort(key=lambda g: (KINDS.index(g.kind), -len(g.members), g.members[0]))
    for number, group in enumerate(groups):
        group.id = number
    return DuplicateReport(
        groups, pair_counts(groups, names), threshold, edited_threshold if searched else None
    )


def pair_counts(groups: list[DuplicateGroup], names: list[str]) -> dict[str, dict[str, int]]:
    """Per split pair 'a/b': groups holding both, and images of b in them (a/a: images of a in groups
    with two or more of a). train/test 'images' is the number of test images with a copy in train."""
    order = [name for name in ("train", "val", "test") if name in names]
    counts = {}
    for i, a in enumerate(order):
        for b in order[i:]:
            n_groups, n_images = 0, 0
            for group in groups:
                in_a = sum(split == a for split, _ in group.members)
                in_b = sum(split == b for split, _ in group.members)
                if (a == b and in_a >= 2) or (a != b and in_a and in_b):
                    n_groups, n_images = n_groups + 1, n_images + in_b
            counts[f"{a}/{b}"] = {"groups": n_groups, "images": n_images}
    return counts
