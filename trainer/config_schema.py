"""Pydantic validation of training configs (YAML files, a run's config.yaml, merged flags).

The schema is :class:`trainer.config.TrainConfig` itself (pydantic validates the stdlib dataclass by its
field types), so there is nothing to keep in sync. Errors become one :class:`~embsdk.errors.ConfigError` line
naming each bad option, its value and what was expected; never a raw ``TypeError``.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from embsdk.errors import ConfigError

if TYPE_CHECKING:
    from trainer.config import TrainConfig

__all__ = ["validate_config"]


@cache
def _adapter() -> Any:
    from pydantic import TypeAdapter

    from trainer.config import TrainConfig

    return TypeAdapter(TrainConfig)


def validate_config(data: dict[str, Any], *, source: str) -> TrainConfig:
    """*data* (option → value; missing options take their defaults) as a validated TrainConfig.

    Raises:
        ConfigError: ``<source>: epochs: 'three' is not valid (Input should be a valid integer, …)``; several
            bad options are listed on the same line, separated by ``;``.
    """
    from pydantic import ValidationError

    try:
        return _adapter().validate_python(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err.get("loc", ())) or "config"
            problems.append(f"{where}: {err.get('input')!r} is not valid ({err.get('msg', 'invalid value')})")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
