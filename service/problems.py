"""Errors as RFC 9457 problem details: every embsdk error maps to one HTTP status.

The body is ``application/problem+json``: ``type``, ``title``, ``status``, ``detail`` and ``error`` (the typed
error's class name, so a client can raise the same class again). Bad input is always 4xx, never 500.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from embsdk import errors as E
from embsdk.errors import EmbsdkError
from registry._tokens import TokenNotFound, TokenRejected

__all__ = [
    "PROBLEM_JSON",
    "STATUS_BY_ERROR",
    "BatchTooLarge",
    "BodyTooLarge",
    "Forbidden",
    "InvalidRequest",
    "problem",
    "status_of",
]

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://embsdk.dev/problems/"


class Forbidden(EmbsdkError, PermissionError):
    """The token is valid but its scope does not allow this request (403)."""


class InvalidRequest(EmbsdkError, ValueError):
    """The request is malformed (bad JSON, a missing or mistyped field) (400)."""


class BatchTooLarge(EmbsdkError, ValueError):
    """More ids in one batch than the server allows (400, names the limit)."""

    def __init__(self, got: int, limit: int) -> None:
        self.got, self.limit = got, limit
        super().__init__(f"A batch holds at most {limit} ids; got {got}. Split it into batches of {limit}.")


class BodyTooLarge(EmbsdkError, ValueError):
    """The request body is over the server's size limit (413)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"The request body is over the limit of {limit} bytes.")


#: The status of each error class; an error takes the entry of the first class in its MRO that has one.
STATUS_BY_ERROR: dict[type[BaseException], int] = {
    TokenRejected: 401,
    Forbidden: 403,
    E.ItemNotFound: 404,
    E.GenerationNotFound: 404,  # AliasNotFound, DefaultAliasNotSet too
    E.StoreNotFound: 404,
    E.IndexMissing: 404,
    E.ConsumerNotFound: 404,
    TokenNotFound: 404,
    E.RetiredGeneration: 410,
    BodyTooLarge: 413,
    E.InvalidTopK: 400,
    E.InvalidItemId: 400,
    E.CodeLengthError: 400,
    E.IncompatibleGenerationError: 400,
    E.InvalidRegistryInput: 400,
    E.ConfigError: 400,
    E.ImageDecodeError: 400,
    E.ManifestError: 400,
    E.UnsafePath: 400,
    InvalidRequest: 400,
    BatchTooLarge: 400,
    E.StoreError: 400,  # e.g. an id that is not a 64-bit integer
    E.DuplicateGeneration: 409,
    E.IllegalTransition: 409,
    E.ImmutableGeneration: 409,
    E.ProtectedAlias: 409,
    E.ConsumersAffected: 409,
    E.LineageCycle: 409,
    E.IndexStale: 409,
    E.StoreLocked: 503,
    E.SchemaOutdated: 503,
    E.ShardCorrupt: 500,
    E.IntegrityError: 500,
    E.ArtifactError: 500,
    E.RegistryError: 503,  # unreachable database
    E.InferenceError: 503,
    EmbsdkError: 500,
}


def status_of(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def problem(status: int, error: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 body."""
    slug = "".join("-" + c.lower() if c.isupper() else c for c in error).lstrip("-")
    return {
        "type": TYPE_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "error": error,
        **extra,
    }
