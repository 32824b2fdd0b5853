"""The FastAPI application: ``create_app(settings)``; ``app_from_env()`` is uvicorn's factory (``emb server``).

Routes (all but ``/healthz`` need ``Authorization: Bearer <token>``; scope in brackets):

* ``GET /healthz`` (none), ``GET /readyz`` [read]: alive; the registry answers.
* ``GET /metrics`` [read]: Prometheus (requests, latency, errors by route; reads by team × generation).
* ``GET /openapi.json`` [read]: the schema.
* ``GET /v1/generations`` [read], ``GET /v1/generations/{name}`` [read]: list; show (a name or an alias);
  ``.../{name}/lineage``, ``.../{name}/events``, ``GET /v1/compare?a=&b=``, ``GET /v1/aliases``,
  ``GET /v1/aliases/{alias}/history`` [read].
* ``GET /v1/items/{id}?version=`` [read]: one item's code (hex).
* ``POST /v1/items:batch`` [read]: many ids; JSON, or with ``Accept: application/octet-stream`` the raw rows:
  ``count`` little-endian int64 ids then ``count × code_bytes`` packed codes (headers ``X-Emb-Generation``,
  ``X-Emb-Bits``, ``X-Emb-Count``, ``X-Emb-Code-Bytes``).
* ``POST /v1/search`` [read]: by ``id`` or by hex ``code``; ``k``, ``exact``, ``exclude_self``.
* ``PUT /v1/aliases/{alias}``, ``POST /v1/generations/{name}/promote|deprecate|retire`` [publish]: the CLI's
  rules; events record the token's team.
* ``GET /v1/tokens``, ``GET /v1/usage`` [admin]: token records (never secrets) and usage per team × generation.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

from embsdk.client import Client
from embsdk.config import redact_url
from embsdk.errors import EmbsdkError, InvalidItemId
from registry._tokens import TokenInfo
from service.auth import TokenCache
from service.metering import UsageMeter
from service.metrics import CONTENT_TYPE_LATEST, Metrics
from service.problems import (
    PROBLEM_JSON,
    BatchTooLarge,
    BodyTooLarge,
    InvalidRequest,
    problem,
    status_of,
)
from service.settings import ServiceSettings

__all__ = ["API_VERSION", "app_from_env", "create_app"]

logger = logging.getLogger(__name__)
API_VERSION = "v1"
DEFAULT_VERSION = "production"
_INT64 = (-(2**63), 2**63 - 1)
OCTET = "application/octet-stream"


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[StrictInt] = Field(description="Item ids (64-bit signed integers), at most the server's limit.")
    version: str = Field(DEFAULT_VERSION, description="Generation name or alias.")
    skip_missing: StrictBool = False


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generation: str = Field(description="The generation the alias points at from now on.")
    protect: StrictBool = False
    force: StrictBool = Field(False, description="Move a protected alias (needs a reason).")
    reason: str | None = None


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(description="candidate, staging or production.")
    reason: str | None = None


class LifecycleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = None
    force: StrictBool = Field(False, description="Override the consumers/aliases refusal (needs a reason).")


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: StrictInt | None = Field(None, description="Query by the code of this stored item.")
    code: str | None = Field(None, description="Query by this packed code, in hex (numpy.packbits order).")
    version: str = DEFAULT_VERSION
    k: StrictInt = 10
    exact: StrictBool = True
    exclude_self: StrictBool = False


def _problem_response(exc: BaseException, status: int | None = None) -> JSONResponse:
    status = status or status_of(exc)
    name = type(exc).__name__
    detail = redact_url(str(exc)) if status < 500 or isinstance(exc, EmbsdkError) else "Internal error."
    extra: dict[str, Any] = {}
    if isinstance(exc, BatchTooLarge):
        extra["limit"] = exc.limit
    if isinstance(exc, BodyTooLarge):
        extra["limit"] = exc.limit
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        problem(status, name, detail, **extra), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _need(scope: str) -> Any:
    """A dependency: the request's bearer token, verified and allowing *scope* (else 401 / 403)."""

    def check(request: Request) -> TokenInfo:
        tokens: TokenCache = request.app.state.tokens
        return tokens.authorize(request.headers.get("authorization"), scope)

    return Depends(check)


Read = Annotated[TokenInfo, _need("read")]
Publish = Annotated[TokenInfo, _need("publish")]
Admin = Annotated[TokenInfo, _need("admin")]


def _check_id(item_id: int) -> int:
    if not _INT64[0] <= item_id <= _INT64[1]:
        raise InvalidItemId(f"An item id is a 64-bit signed integer; {item_id} is out of range.")
    return item_id


class _BodyLimit:
    """ASGI middleware: a request body over *limit* bytes is answered 413 (problem+json) before any route runs."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _problem_response(BodyTooLarge(self.limit))(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _problem_response(BodyTooLarge(self.limit))(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The service over the registry and the store named by *settings* (default: from the environment).

    Raises:
        RegistryNotFound, RegistryError: the registry does not exist or cannot be opened.
    """
    settings = settings or ServiceSettings.from_env()
    client = Client(settings.registry_url, settings.store_dir, resolve_ttl=settings.resolve_ttl)
    registry = client.registry  # opened now: a missing registry fails at start, not on the first request
    tokens = TokenCache(registry, settings.token_cache_ttl)
    meter = UsageMeter(registry, settings.usage_flush_s)
    metrics = Metrics()
    writers: dict[str, Any] = {}
    writers_lock = threading.Lock()

    def writer(team: str) -> Any:
        """A registry whose events record *team* (the token's team, never a self-declared name)."""
        with writers_lock:
            reg = writers.get(team)
            if reg is None:
                from registry import Registry

                reg = writers[team] = Registry(settings.registry_url, user=team, create=False)
            return reg

    def count(team: str, generation: str) -> None:
        meter.count(team, generation)
        metrics.reads.labels(team, generation).inc()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        meter.start()
        try:
            yield
        finally:
            meter.stop()
            client.close()
            for reg in writers.values():
                reg.close()

    app = FastAPI(
        title="embsdk",
        version=API_VERSION,
        description="Unified binarized image embeddings: generations, item codes and Hamming search.",
        openapi_url=None,  # served below, behind a token
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings, app.state.client, app.state.meter, app.state.tokens = settings, client, meter, tokens

    @app.exception_handler(EmbsdkError)
    async def _embsdk_error(_request: Request, exc: EmbsdkError) -> JSONResponse:
        return _problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        ]
        return _problem_response(InvalidRequest("; ".join(errors) or "Invalid request."), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = "".join(w.capitalize() for w in str(exc.detail).split()) or "HTTPError"
        body = problem(exc.status_code, name, str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM_JSON, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        return _problem_response(exc, 500)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Alive (no token needed)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(_who: Read) -> dict[str, Any]:
        """Ready: the registry answers."""
        registry.has_active_tokens()
        return {"status": "ready", "registry": registry.url_redacted}

    @app.get("/metrics", tags=["health"], response_class=Response)
    def prometheus(_who: Read) -> Response:
        """Prometheus metrics: requests, latency and errors by route; reads by team and generation."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_who: Read) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(f"/{API_VERSION}/generations", tags=["generations"])
    def list_generations(
        _who: Read, status: str | None = None, family: str | None = None
    ) -> list[dict[str, Any]]:
        """Every generation, oldest first (optionally one status and/or family)."""
        return [g.to_dict() for g in registry.list(status, family=family)]

    @app.get(f"/{API_VERSION}/generations/{{name}}", tags=["generations"])
    def show_generation(name: str, _who: Read) -> dict[str, Any]:
        """One generation, by name or alias (``resolved_from`` names the alias)."""
        return registry.resolve(name).to_dict()

    @app.get(f"/{API_VERSION}/generations/{{name}}/lineage", tags=["generations"])
    def generation_lineage(name: str, _who: Read) -> dict[str, Any]:
        """Ancestors and descendants (nearest first) and every edge among them."""
        return registry.lineage(name).to_dict()

    @app.get(f"/{API_VERSION}/generations/{{name}}/events", tags=["generations"])
    def generation_events(name: str, _who: Read) -> list[dict[str, Any]]:
        """The lifecycle history (every status move, oldest first)."""
        return [e.to_dict() for e in registry.events(registry.resolve(name).name)]

    @app.get(f"/{API_VERSION}/compare", tags=["generations"])
    def compare(a: str, b: str, _who: Read) -> dict[str, Any]:
        """Side-by-side metrics (``b - a``) and spec differences of two generations (names or aliases)."""
        return registry.compare(a, b).to_dict()

    @app.get(f"/{API_VERSION}/aliases", tags=["aliases"])
    def list_aliases(_who: Read) -> dict[str, str]:
        """Every alias and the generation it points at now."""
        return dict(registry.aliases())

    @app.get(f"/{API_VERSION}/aliases/{{alias}}/history", tags=["aliases"])
    def alias_history(alias: str, _who: Read) -> list[dict[str, Any]]:
        """Every move of *alias*, as recorded."""
        return [e.to_dict() for e in registry.alias_history(alias)]

    @app.get(f"/{API_VERSION}/items/{{item_id}}", tags=["items"])
    def get_item(item_id: int, who: Read, version: str = Query(DEFAULT_VERSION)) -> dict[str, Any]:
        """One item's code, in hex."""
        e = client.get_embedding(_check_id(item_id), version)
        count(who.team, e.generation)
        return {"id": item_id, "generation": e.generation, "bits": e.bits, "code": e.code.tobytes().hex()}

    @app.post(
        f"/{API_VERSION}/items:batch",
        tags=["items"],
        responses={200: {"content": {OCTET: {}}, "description": "JSON, or raw rows with Accept: " + OCTET}},
    )
    def get_items(body: BatchBody, request: Request, who: Read) -> Any:
        """Many items' codes, in the order given: JSON (hex), or raw packed rows with ``Accept: application/octet-stream``."""
        if len(body.ids) > settings.max_batch:
            raise BatchTooLarge(len(body.ids), settings.max_batch)
        for i in body.ids:
            _check_id(i)
        batch = client.get_embeddings(
            np.asarray(body.ids, dtype=np.int64), body.version, skip_missing=body.skip_missing
        )
        count(who.team, batch.generation)
        ids = np.ascontiguousarray(batch.ids, dtype="<i8")
        codes = np.ascontiguousarray(batch.codes, dtype=np.uint8)
        if OCTET in request.headers.get("accept", ""):
            return Response(
                ids.tobytes() + codes.tobytes(),
                media_type=OCTET,
                headers={
                    "X-Emb-Generation": batch.generation,
                    "X-Emb-Bits": str(batch.bits),
                    "X-Emb-Count": str(len(ids)),
                    "X-Emb-Code-Bytes": str(codes.shape[1] if codes.ndim == 2 else 0),
                },
            )
        return {
            "generation": batch.generation,
            "bits": batch.bits,
            "items": [{"id": int(i), "code": c.tobytes().hex()} for i, c in zip(ids, codes, strict=True)],
        }

    @app.post(f"/{API_VERSION}/search", tags=["search"])
    def search(body: SearchBody, who: Read) -> dict[str, Any]:
        """Nearest items by Hamming distance to a stored item (``id``) or a packed code (``code``, hex)."""
        if (body.id is None) == (body.code is None):
            raise InvalidRequest("Give exactly one of 'id' (a stored item) or 'code' (a packed code in hex).")
        query: Any
        if body.id is not None:
            query = _check_id(body.id)
        else:
            try:
                query = np.frombuffer(bytes.fromhex(body.code or ""), dtype=np.uint8).copy()
            except ValueError:
                raise InvalidRequest("'code' must be hex digits (two per byte).") from None
            if query.size == 0:
                raise InvalidRequest("'code' is empty.")
        res = client.search(query, body.version, k=body.k, exact=body.exact, exclude_self=body.exclude_self)
        count(who.team, res.generation)
        return {
            "generation": res.generation,
            "hits": [{"id": int(i), "distance": int(d)} for i, d in zip(res.ids, res.distances, strict=True)],
        }

    @app.put(f"/{API_VERSION}/aliases/{{alias}}", tags=["publish"])
    def set_alias(alias: str, body: AliasBody, who: Publish) -> dict[str, Any]:
        """Point *alias* at a generation (the move is an event recorded with the token's team)."""
        event = writer(who.team).set_alias(
            alias, body.generation, protect=body.protect, force=body.force, reason=body.reason
        )
        return event.to_dict()

    @app.post(f"/{API_VERSION}/generations/{{name}}/promote", tags=["publish"])
    def promote(name: str, body: PromoteBody, who: Publish) -> dict[str, Any]:
        """Move a generation to candidate, staging or production (same rules as ``emb registry promote``)."""
        return writer(who.team).promote(name, body.to, reason=body.reason).to_dict()

    @app.post(f"/{API_VERSION}/generations/{{name}}/deprecate", tags=["publish"])
    def deprecate(name: str, body: LifecycleBody, who: Publish) -> dict[str, Any]:
        """Deprecate a production generation (409 while consumers read it, unless forced with a reason)."""
        return writer(who.team).deprecate(name, reason=body.reason, force=body.force).to_dict()

    @app.post(f"/{API_VERSION}/generations/{{name}}/retire", tags=["publish"])
    def retire(name: str, body: LifecycleBody, who: Publish) -> dict[str, Any]:
        """Retire a generation for good (409 while consumers or aliases point at it, unless forced)."""
        return writer(who.team).retire(name, reason=body.reason, force=body.force).to_dict()

    @app.get(f"/{API_VERSION}/tokens", tags=["admin"])
    def list_tokens(_who: Admin, team: str | None = None) -> list[dict[str, Any]]:
        """Token records (id, team, scope, dates; never a secret)."""
        return [t.to_dict() for t in registry.tokens(team)]

    @app.get(f"/{API_VERSION}/usage", tags=["admin"])
    def usage(_who: Admin, team: str | None = None, days: int | None = None) -> list[dict[str, Any]]:
        """Requests per team × generation (the server's counters, flushed periodically)."""
        meter.flush()
        return [u.to_dict() for u in registry.usage(team, days=days)]

    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(metrics.middleware)  # outermost: sees every response, 413s and 401s included
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory (``emb server``): the service configured by the environment."""
    return create_app(ServiceSettings.from_env())
