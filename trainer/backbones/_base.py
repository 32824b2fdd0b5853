"""The interface every backbone implements: pooled features, their size, and its input contract."""

from __future__ import annotations

from torch import Tensor, nn

from embsdk.preprocess import InputSpec

__all__ = ["Backbone"]


class Backbone(nn.Module):
    """An image model without classifier: ``forward(x) -> (N, feature_dim)`` globally pooled features.

    Subclasses set ``feature_dim`` and ``default_input_spec`` and implement :meth:`units`, the
    ordered (input → output) list of blocks used by :meth:`freeze`.
    """

    feature_dim: int
    default_input_spec: InputSpec
    name: str = "backbone"

    def units(self) -> list[nn.Module]:
        """Blocks from input to output; ``freeze(trainable_blocks=K)`` keeps the last K trainable."""
        raise NotImplementedError

    def freeze(self, trainable_blocks: int = 0) -> None:
        """Freeze all blocks except the last *trainable_blocks* (0 = the whole backbone is frozen).

        Frozen blocks also keep their BatchNorm statistics fixed (see :meth:`train`).
        """
        units = self.units()
        keep = max(0, min(trainable_blocks, len(units)))
        self._frozen = units[: len(units) - keep]
        for unit in units:
            for p in unit.parameters():
                p.requires_grad_(True)
        for unit in self._frozen:
            for p in unit.parameters():
                p.requires_grad_(False)
        self.train(self.training)

    @property
    def fully_frozen(self) -> bool:
        return all(not p.requires_grad for p in self.parameters())

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        for unit in getattr(self, "_frozen", []):
            unit.eval()  # frozen BatchNorm keeps its running statistics
        return self

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
