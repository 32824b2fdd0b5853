"""The registry service: one class, :class:`Registry`, assembled from concern-sized mixins."""

from __future__ import annotations

from registry._generations import GenerationsMixin
from registry._lifecycle_ops import LifecycleMixin
from registry._lineage import LineageMixin
from registry._maintenance import MaintenanceMixin
from registry._tokens import TokensMixin

__all__ = ["Registry"]


class Registry(GenerationsMixin, LineageMixin, LifecycleMixin, MaintenanceMixin, TokensMixin):
    """The registry of embedding generations: lineage, lifecycle, aliases, consumers, metrics, artifacts.

    Example:
        >>> from registry import Registry
        >>> reg = Registry()                                   # EMB_REGISTRY_URL or $EMB_HOME/registry.db
        >>> reg.register("unified-v1", artifacts=["model.onnx"], embedding_spec={"dim": 256, "bits": 256})
        >>> reg.register("unified-v2", artifacts=["model.onnx"], parents=[("unified-v1", "fine-tuned-from")])
        >>> reg.promote("unified-v2", to="staging"); reg.set_alias("production", "unified-v2", protect=True)
        >>> reg.resolve("production").name
        'unified-v2'

    Every method returns frozen dataclasses from :mod:`registry.entities` and raises typed errors from
    :mod:`embsdk.errors`; database errors come out as :class:`~embsdk.errors.RegistryError` with any
    password redacted.
    """
