"""The class-balance check: images per class and split, and the classes under a given share.

A class is flagged in a split when its share of that split's images is below `min_share`; by
default half of an even share (0.5 / number of classes: 5% for ten classes), the point where
plain cross-entropy training starts to neglect a class.

    python -c "import torch; from convtrain.datacheck.balance import class_balance; print(class_balance({'train': torch.tensor([0, 0, 0, 1])}, ['a', 'b']))"
"""

from __future__ import annotations

import torch

from convtrain.base.errors import ConfigError


def class_balance(
    labels: dict[str, torch.Tensor], classes: list[str], min_share: float | None = None
) -> dict:
    """{'min_share', 'counts': {split: {class: n}}, 'flagged': [{split, class, count, share}]}."""
    share = 0.5 / len(classes) if min_share is None else min_share
    if not 0 <= share < 1:
        raise ConfigError(f"min_share must be a fraction in [0, 1), got {min_share}")
    counts, flagged = {}, []
    for split, split_labels in labels.items():
        per_class = torch.bincount(split_labels, minlength=len(classes)).tolist()
        counts[split] = dict(zip(classes, per_class, strict=True))
        total = max(1, sum(per_class))
        for name, count in zip(classes, per_class, strict=True):
            if count / total < share:
                flagged.append(
                    {"split": split, "class": name, "count": count, "share": round(count / total, 4)}
                )
    return {"min_share": round(share, 6), "counts": counts, "flagged": flagged}
