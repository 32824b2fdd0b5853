"""Normalized-softmax proxy head (Zhai & Wu, BMVC 2019) with class subsampling.

Logits are cosine similarities between the embedding and the class proxies (the rows of a bias-free
FC layer), divided by a temperature; the loss is cross-entropy. With ``sample_negatives=k`` a step
scores only the batch's positive classes plus ``k`` other classes drawn at random, so its cost does not grow
with the number of classes (the proxy rows are gathered, normalized and updated only for those).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NormSoftmaxHead", "candidate_classes"]


def candidate_classes(
    labels: Tensor, num_classes: int, sample_negatives: int, generator: torch.Generator | None = None
) -> Tensor:
    """Sorted class ids to score: the batch's positives plus up to ``sample_negatives`` distinct other classes.

    Negatives are drawn uniformly without replacement in O(k) (oversampled draws, deduplicated, positives
    removed, then trimmed to k), so the cost does not depend on ``num_classes``. When ``k`` covers every
    other class, all classes are returned (the loss then equals the full softmax).
    """
    positives = torch.unique(labels)
    if sample_negatives >= num_classes - positives.numel():
        return torch.arange(num_classes, device=labels.device)
    n_draws = 2 * sample_negatives + positives.numel()
    draws = torch.randint(0, num_classes, (n_draws,), device=labels.device, generator=generator)
    negatives = torch.unique(draws)
    negatives = negatives[~torch.isin(negatives, positives)]
    if negatives.numel() > sample_negatives:
        keep = torch.randperm(negatives.numel(), device=labels.device, generator=generator)[:sample_negatives]
        negatives = negatives[keep]
    return torch.sort(torch.cat([positives, negatives])).values


class NormSoftmaxHead(nn.Module):
    """Cosine logits against class proxies / temperature → cross-entropy (per-sample losses).

    Args:
        num_classes: number of classes of the task.
        dim: embedding dimension.
        temperature: softmax temperature (0.05 in the paper).
        sample_negatives: if set, score only positives + this many sampled negative classes per step.
        sparse_grad: gather proxies with a sparse gradient (use with an optimizer that takes sparse grads,
            e.g. plain SGD); keeps the backward+update cost flat at 100k+ classes.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        temperature: float = 0.05,
        sample_negatives: int | None = None,
        *,
        sparse_grad: bool = False,
    ) -> None:
        super().__init__()
        self.proxies = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.kaiming_uniform_(self.proxies, a=math.sqrt(5))
        self.num_classes, self.temperature = num_classes, temperature
        self.sample_negatives, self.sparse_grad = sample_negatives, sparse_grad

    def logits(self, emb: Tensor, classes: Tensor | None = None) -> Tensor:
        """Cosine / T against all proxies, or only against the rows *classes*."""
        weight = (
            self.proxies if classes is None else F.embedding(classes, self.proxies, sparse=self.sparse_grad)
        )
        return F.normalize(emb, dim=1) @ F.normalize(weight, dim=1).T / self.temperature

    def forward(self, emb: Tensor, labels: Tensor) -> Tensor:
        """Per-sample cross-entropy (N,) for embeddings (N, D) and class ids (N,)."""
        if self.sample_negatives is None or not self.training:
            return F.cross_entropy(self.logits(emb), labels, reduction="none")
        classes = candidate_classes(labels, self.num_classes, self.sample_negatives)
        target = torch.searchsorted(classes, labels)
        return F.cross_entropy(self.logits(emb, classes), target, reduction="none")
