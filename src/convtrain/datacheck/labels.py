"""Confident learning: find images whose given label is probably wrong, from predicted probabilities.

Written from the paper (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 2021), as Northcutt, Athalye and Mueller (2021) applied it to test sets:
1. Per-class thresholds t_j: the mean probability of class j over the images labelled j (the
   model's average self-confidence in that class).
2. The confident joint C[i, j]: images labelled i whose probability of j reaches t_j; an image
   that clears several thresholds counts once, for the class it is most probable in.
3. Label issues: the images off the diagonal of C (labelled i, confidently j != i); j is the
   suggested label. `prune_by_noise_rate` instead calibrates C to the joint Q of given and true
   labels (rows scaled to the class counts) and flags, per pair (i, j), the n * Q[i, j] images
   labelled i with the largest margin p_j - p_i.
4. Ranking: ascending self-confidence p_given, or normalised margin p_given - max_{j != given} p_j.
5. For review (`rank_suspicious`): every image of the split ranked the same way, the first `top`
   kept whether or not step 3 flagged them: the list a person reads, beside the strict set.

Probabilities must be out-of-sample (each image predicted by a model that did not train on it):
see crossval.py. cleanlab implements the same method under the AGPL; this file shares no code with it.

    python -c "import torch; from convtrain.datacheck.labels import find_label_issues as f; print(f(torch.tensor([[.9,.1],[.2,.8],[.9,.1]]), torch.tensor([0,1,1])))"
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convtrain.base.errors import ConfigError

METHODS = ("confident_joint", "prune_by_noise_rate")
RANKINGS = ("self_confidence", "normalized_margin")
DEFAULT_TOP = 100  # images ranked for review per split: the size of the paper's MNIST candidate list


@dataclass
class LabelIssues:
    """The flagged images of one split, worst first, and the statistics that flagged them."""

    indices: torch.Tensor  # (M,) positions in the split, ranked
    suggested: torch.Tensor  # (M,) the label the model is confident in
    scores: torch.Tensor  # (M,) the ranking score (lower is more suspicious)
    confidence: torch.Tensor  # (M,) probability of the suggested label
    thresholds: torch.Tensor  # (K,) per-class thresholds t_j
    joint: torch.Tensor  # (K, K) confident joint counts: given (rows) x confident (columns)

    def __len__(self) -> int:
        return len(self.indices)


def per_class_thresholds(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """t_j = mean of p_j over images labelled j: (K,). A class with no images gets 1 (never reached)."""
    num_classes = probs.shape[1]
    sums = torch.zeros(num_classes, dtype=probs.dtype).index_add_(
        0, labels, probs[torch.arange(len(labels)), labels]
    )
    counts = torch.bincount(labels, minlength=num_classes).to(probs.dtype)
    return torch.where(counts > 0, sums / counts.clamp_min(1), torch.ones_like(sums))


def confident_labels(probs: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Each image's confident class: the most probable among those whose probability reaches their
    threshold; -1 where none does. (N,)"""
    above = probs >= thresholds  # (N, K)
    masked = torch.where(above, probs, torch.full_like(probs, -1.0))
    best = masked.argmax(1)
    return torch.where(above.any(1), best, torch.full_like(best, -1))


def confident_joint(labels: torch.Tensor, confident: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C[i, j] = images labelled i whose confident class is j: (K, K) counts."""
    keep = confident >= 0
    flat = labels[keep] * num_classes + confident[keep]
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def calibrated_joint(joint: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Q: C with each row rescaled to that class's image count, then divided by the total. (K, K)"""
    counts = torch.bincount(labels, minlength=len(joint)).double()
    rows = joint.double() / joint.sum(1, keepdim=True).clamp_min(1) * counts[:, None]
    return rows / rows.sum().clamp_min(1)


@dataclass
class Ranked:
    """The `top` most suspicious images of a split, most suspicious first."""

    indices: torch.Tensor  # (M,) positions in the split
    suggested: torch.Tensor  # (M,) the likeliest label other than the given one
    confidence: torch.Tensor  # (M,) probability of the suggested label
    scores: torch.Tensor  # (M,) the ranking score (lower is more suspicious)

    def __len__(self) -> int:
        return len(self.indices)


def rank_suspicious(
    probs: torch.Tensor, labels: torch.Tensor, top: int, rank_by: str = "self_confidence"
) -> Ranked:
    """The `top` images whose given label the probabilities (N, K) trust least, ranked by `rank_by`
    (ties by index), each with the likeliest other label."""
    if rank_by not in RANKINGS:
        raise ConfigError(f"rank_by must be one of {', '.join(RANKINGS)}; got {rank_by!r}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise ConfigError(f"top must be a whole number of at least 0, got {top!r}")
    probs, labels = probs.double(), labels.long()
    scores = ranking_scores(probs, labels, rank_by)
    indices = scores.argsort(stable=True)[:top]
    others = probs[indices].scatter(1, labels[indices, None], -1.0)  # (M, K) the given label ruled out
    confidence, suggested = others.max(1)
    return Ranked(indices, suggested, confidence.float(), scores[indices].float())


def ranking_scores(probs: torch.Tensor, labels: torch.Tensor, rank_by: str) -> torch.Tensor:
    """Lower is more suspicious: p_given (self_confidence) or p_given - best other (normalized_margin)."""
    given = probs[torch.arange(len(labels)), labels]
    if rank_by == "self_confidence":
        return given
    others = probs.scatter(1, labels[:, None], -1.0)
    return given - others.amax(1)


def find_label_issues(
    probs: torch.Tensor,
    labels: torch.Tensor,
    method: str = "confident_joint",
    rank_by: str = "self_confidence",
) -> LabelIssues:
    """Confident learning on out-of-sample probabilities (N, K) and given labels (N,)."""
    if method not in METHODS:
        raise ConfigError(f"label method must be one of {', '.join(METHODS)}; got {method!r}")
    if rank_by not in RANKINGS:
        raise ConfigError(f"rank_by must be one of {', '.join(RANKINGS)}; got {rank_by!r}")
    probs, labels = probs.double(), labels.long()
    num_classes = probs.shape[1]
    thresholds = per_class_thresholds(probs, labels)
    confident = confident_labels(probs, thresholds)
    joint = confident_joint(labels, confident, num_classes)
    off_diagonal = (confident >= 0) & (confident != labels)
    if method == "confident_joint":
        flagged, suggested = off_diagonal, confident
    else:
        flagged, suggested = _prune_by_noise_rate(probs, labels, calibrated_joint(joint, labels))
    scores = ranking_scores(probs, labels, rank_by)
    indices = flagged.nonzero().flatten()
    indices = indices[scores[indices].argsort(stable=True)]
    return LabelIssues(
        indices=indices,
        suggested=suggested[indices],
        scores=scores[indices].float(),
        confidence=probs[indices, suggested[indices]].float(),
        thresholds=thresholds.float(),
        joint=joint,
    )


def _prune_by_noise_rate(
    probs: torch.Tensor, labels: torch.Tensor, joint: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each pair i != j, flag the round(n * Q[i, j]) images labelled i with the largest p_j - p_i."""
    n, num_classes = len(labels), probs.shape[1]
    flagged = torch.zeros(n, dtype=torch.bool)
    suggested = probs.argmax(1)
    margin_of = torch.full((n,), -2.0, dtype=probs.dtype)
    for i in range(num_classes):
        members = (labels == i).nonzero().flatten()
        for j in range(num_classes):
            count = int(round(n * float(joint[i, j])))
            if i == j or count == 0 or len(members) == 0:
                continue
            margin = probs[members, j] - probs[members, i]  # how much more the model believes j
            top = margin.topk(min(count, len(members))).indices
            chosen = members[top]
            better = margin[top] > margin_of[chosen]  # an image picked for two classes keeps the likelier
            flagged[chosen] = True
            suggested[chosen[better]] = j
            margin_of[chosen[better]] = margin[top][better]
    return flagged, suggested
