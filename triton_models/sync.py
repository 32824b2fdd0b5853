"""Keep the Triton repository in step with the registry (the registry is the source of truth)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["registered_in_registry"]


def registered_in_registry(registry_url: str | None = None) -> Callable[[str], bool] | None:
    """A predicate ``name -> bool`` telling whether the registry holds a generation; None if no registry is usable."""
    try:
        from registry import Registry
    except ImportError:
        return None
    from embsdk.errors import GenerationNotFound

    def is_registered(name: str) -> bool:
        with Registry(registry_url) as reg:
            try:
                return reg.resolve(name).name == name
            except GenerationNotFound:
                return False

    return is_registered
