"""Sum of per-task losses with weights; rows without a label for a task get no loss and no gradient from it."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["IGNORE", "MultiTaskLoss"]

IGNORE = -1  # label id of a row that has no label for a task


class MultiTaskLoss(nn.Module):
    """``sum_t w_t * mean_{rows labeled for t} head_t(emb_row, label_row)``.

    Args:
        heads: one head per task (each returns per-sample losses).
        weights: per-task weight (default 1.0 for every task: equal weights, as in the paper).
        binary_weight: binarization-aware term: when > 0, the same task losses are also computed on
            ``sign(emb)`` with a straight-through gradient and added with this weight, so training sees
            the code that serving uses (the exported model is unchanged: LayerNorm, then sign).

    ``forward(emb, labels)`` takes ``labels[task]`` = (N,) class ids with :data:`IGNORE` for unlabeled rows
    and returns ``(total, {task: loss})``. A task with no labeled row in the batch contributes 0 (still
    touching its parameters with a zero so DistributedDataParallel sees every parameter used).
    """

    def __init__(
        self,
        heads: Mapping[str, nn.Module],
        weights: Mapping[str, float] | None = None,
        *,
        binary_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.binary_weight = float(binary_weight)
        self.tasks = list(heads)
        # ModuleDict keys may not clash with nn.Module attributes ("half", "train") nor contain dots
        self.heads = nn.ModuleDict({self.key(t): h for t, h in heads.items()})
        self.weights = {t: float((weights or {}).get(t, 1.0)) for t in self.tasks}

    @staticmethod
    def key(task: str) -> str:
        """The ModuleDict key (and state_dict prefix ``heads.<key>``) of *task*'s head."""
        return "task_" + task.replace(".", "_")

    def head(self, task: str) -> nn.Module:
        return self.heads[self.key(task)]

    def forward(self, emb: Tensor, labels: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        total, per_task = self._task_losses(emb, labels)
        if self.binary_weight > 0:
            codes = emb + (torch.sign(emb) - emb).detach()  # forward: sign; backward: identity
            total = total + self.binary_weight * self._task_losses(codes, labels)[0]
        return total, per_task

    def _task_losses(self, emb: Tensor, labels: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        total = emb.new_zeros(())
        per_task: dict[str, Tensor] = {}
        for task in self.tasks:
            head, y = self.head(task), labels[task]
            rows = (y != IGNORE).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                loss = sum((p.sum() * 0.0 for p in head.parameters()), emb.new_zeros(()))
                per_task[task] = loss.detach()
                total = total + loss
                continue
            loss = head(emb.index_select(0, rows), y.index_select(0, rows)).mean()
            per_task[task] = loss.detach()
            total = total + self.weights[task] * loss
        return total, per_task
