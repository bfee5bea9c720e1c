"""Hold out a validation set: a seeded, stratified split of the training images, saved with the run.

Every class gives up the same share of its images, so a rare class is not left out of validation by
chance, and the same seed always picks the same images. The indices go to `split.json` in the run
folder (RunDir.write_split), so `convtrain evaluate` can score a run on exactly the images it never
trained on.

    >>> train_idx, val_idx = split_indices(labels, val_split=0.1, seed=0)
"""

from __future__ import annotations

import torch

from convtrain.base.errors import ConfigError


def split_indices(labels: torch.Tensor, val_split: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (train_idx, val_idx): val_split is a fraction below 1, a count of images, or 0 for none."""
    labels = labels.cpu().long()
    n = len(labels)
    n_val = _val_count(val_split, n)
    if n_val == 0:
        return torch.arange(n), torch.empty(0, dtype=torch.long)
    per_class = _per_class_counts(torch.bincount(labels), n_val)  # (K,) images of each class held out

    # A random order in which each class's images form one contiguous run, then the first
    # per_class[k] images of class k's run go to validation.
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)  # (N,)
    order = order[torch.argsort(labels[order], stable=True)]  # (N,) grouped by class, random within
    sorted_labels = labels[order]
    class_start = torch.cumsum(torch.bincount(labels), 0) - torch.bincount(labels)  # (K,)
    rank_in_class = torch.arange(n) - class_start[sorted_labels]  # (N,)
    is_val = rank_in_class < per_class[sorted_labels]
    return order[~is_val].sort().values, order[is_val].sort().values


def _val_count(val_split: float, n: int) -> int:
    if val_split < 0 or (val_split >= 1 and val_split != int(val_split)):
        raise ConfigError(
            f"val_split must be a fraction in [0, 1) or a whole count of images, got {val_split}"
        )
    if val_split == 0:
        return 0
    if val_split < 1:
        # At least one image: asking for a validation set and getting none would be a silent surprise.
        count = max(1, round(val_split * n))
        if count >= n:
            raise ConfigError(
                f"val_split {val_split} of {n} images leaves no training images; use a smaller val_split or 0"
            )
        return count
    count = int(val_split)
    if count >= n:
        raise ConfigError(
            f"val_split {count} asks for {count} validation images but the training split has only {n}; "
            f"use fewer than {n}, a fraction such as 0.1, or 0"
        )
    return count


def _per_class_counts(class_sizes: torch.Tensor, n_val: int) -> torch.Tensor:
    """Share n_val among classes in proportion to their sizes (largest remainders get the leftovers)."""
    n = int(class_sizes.sum())
    quota = class_sizes.double() * n_val / n  # (K,)
    counts = quota.floor().long()
    leftover = n_val - int(counts.sum())
    # Leftover images go first to classes where one more would still leave a training image,
    # then by largest remainder; ties go to the lower class index so the result is deterministic.
    empties = (counts + 1 >= class_sizes).double()
    priority = empties * 2.0 - (quota - counts)  # lower is better
    ranked = sorted(range(len(class_sizes)), key=lambda k: (float(priority[k]), k))
    for k in ranked[:leftover]:
        counts[k] += 1
    return counts
