"""Training configuration: one dataclass, resolved from defaults < YAML file < command-line flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from embsdk.errors import ConfigError

__all__ = ["TrainConfig", "load_config_file"]


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved resolved as ``RUN/config.yaml``).

    ``trainable_blocks=None`` trains the whole backbone; ``freeze_backbone`` (= ``trainable_blocks=0``)
    freezes it, and then ``feature_cache`` (default on) trains the embedding layer and heads on pooled
    backbone features computed once (the eval view plus ``cache_views - 1`` augmented views).
    """

    manifest: str = ""
    out: str = ""
    backbone: str = "efficientnet-lite0"
    pretrained: bool = True
    weights_path: str | None = None
    embedding_dim: int = 256
    image_size: int | None = None
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    backbone_lr_mult: float = 0.1
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    temperature: float = 0.05
    binary_loss_weight: float = 0.0
    sample_negatives: int | None = None
    tasks: list[str] | None = None
    task_weights: dict[str, float] = field(default_factory=dict)
    sampler: str = "uniform"
    freeze_backbone: bool = False
    trainable_blocks: int | None = None
    feature_cache: bool = True
    cache_views: int = 1
    grad_accum: int = 1
    amp: bool = True
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    seed: int = 0
    num_workers: int = 2
    strict: bool = False
    check_images: bool = True
    max_steps: int | None = None
    device: str | None = None

    @property
    def frozen_blocks_mode(self) -> int | None:
        """Number of trainable backbone blocks (None = all)."""
        return 0 if self.freeze_backbone else self.trainable_blocks

    @property
    def uses_feature_cache(self) -> bool:
        return self.frozen_blocks_mode == 0 and self.feature_cache

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown training option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    def merged(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with every non-None value of *overrides* applied."""
        data = self.to_dict()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(data)

    def check(self) -> None:
        """Reject inconsistent values with a message that says what to change.

        Raises:
            ConfigError: a value is out of range.
        """
        if self.embedding_dim < 8 or self.embedding_dim % 8:
            raise ConfigError(f"embedding_dim must be a positive multiple of 8 (got {self.embedding_dim})")
        for name in ("epochs", "batch_size", "grad_accum", "cache_views"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"optimizer must be 'sgd' or 'adamw' (got {self.optimizer!r})")
        if self.sampler not in ("uniform", "class-balanced"):
            raise ConfigError(f"sampler must be 'uniform' or 'class-balanced' (got {self.sampler!r})")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0 (got {self.lr})")
        if self.binary_loss_weight < 0:
            raise ConfigError(f"binary_loss_weight must be >= 0 (got {self.binary_loss_weight})")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict of :class:`TrainConfig` options.

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options, not {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}
