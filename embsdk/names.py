"""The one name rule for generations (and aliases, families, teams): the registry's, used by every layer.

A name is 1-128 ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit. It becomes a
registry key, a store folder, a Triton model/parameter key and a CLI argument, so it is kept plain: no
``+`` (the store used to allow it, but the registry never registered such a name), no ``/``, no spaces,
no trailing newline (the rule is matched in full).

Example:
    >>> check_generation_name("unified-v1")
    'unified-v1'
    >>> is_generation_name("unified+v1"), is_generation_name("../x"), is_generation_name("a\\n")
    (False, False, False)
"""

from __future__ import annotations

import re

from embsdk.errors import InvalidRegistryInput

__all__ = ["GENERATION_NAME", "NAME_RULE", "check_generation_name", "is_generation_name"]

GENERATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}")
"""The rule, matched with ``fullmatch``."""
NAME_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_generation_name(name: object) -> bool:
    """True when *name* follows :data:`GENERATION_NAME` (for callers that raise their own error type)."""
    return isinstance(name, str) and GENERATION_NAME.fullmatch(name) is not None


def check_generation_name(name: object, what: str = "generation") -> str:
    """*name* when it follows the rule.

    Args:
        what: what the name names, for the message (``generation``, ``alias``, ``family``, ``team``).

    Raises:
        InvalidRegistryInput: one line naming the rule.
    """
    if not is_generation_name(name):
        raise InvalidRegistryInput(f"Invalid {what} name {name!r}: use {NAME_RULE}.")
    return name  # type: ignore[return-value]
