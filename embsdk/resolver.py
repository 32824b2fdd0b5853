"""The lifecycle rule, applied the same way by every path that uses a generation by name or alias.

The registry resolves names and aliases status-neutrally (``Registry.resolve``: admin tools must see
retired generations); the SDK side applies the rule here, for ``get_embedding``/``search`` (through
:meth:`embsdk.Client.resolve`), ``embed``/``emb embed`` (:func:`embsdk.serving.resolve.resolve_target`)
and ``backfill``/``emb backfill``:

* ``retired``: :class:`~embsdk.errors.RetiredGeneration`, before anything is read, embedded or written;
* ``deprecated``: a :class:`~embsdk.errors.DeprecatedGenerationWarning`, and the generation is used;
* any other status (or none: a standalone store or an export folder): used silently.

Imports only the standard library and embsdk.errors (SQLAlchemy comes with the registry passed in).
"""

from __future__ import annotations

import warnings
from typing import Any

from embsdk.errors import DeprecatedGenerationWarning, RetiredGeneration

__all__ = ["check_lifecycle", "resolve_generation"]


def check_lifecycle(name: str, status: str | None, *, stacklevel: int = 1) -> None:
    """Apply the lifecycle rule to generation *name* in *status*.

    Args:
        stacklevel: as for :func:`warnings.warn`, counted from the caller of this function
            (1: the warning points at the caller).

    Raises:
        RetiredGeneration: *status* is ``retired``.
    """
    if status == "retired":
        raise RetiredGeneration(name)
    if status == "deprecated":
        warnings.warn(
            f"Generation {name!r} is deprecated; plan to move to its replacement "
            f"(emb registry lineage {name}).",
            DeprecatedGenerationWarning,
            stacklevel=stacklevel + 1,
        )


def resolve_generation(registry: Any, ref: str, *, stacklevel: int = 1) -> Any:
    """Resolve a generation name or alias through *registry* (a ``registry.Registry``) and apply the rule.

    Returns:
        The registry's ``GenerationInfo`` of the resolved generation.

    Raises:
        GenerationNotFound / AliasNotFound: no such name. RetiredGeneration: it is retired.
    """
    info = registry.resolve(ref)
    check_lifecycle(info.name, str(info.status), stacklevel=stacklevel + 1)
    return info
