"""Task heads and the multi-task objective."""

from .multitask import IGNORE, MultiTaskLoss
from .norm_softmax import NormSoftmaxHead, candidate_classes

__all__ = ["IGNORE", "MultiTaskLoss", "NormSoftmaxHead", "candidate_classes"]
