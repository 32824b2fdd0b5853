"""Every error embsdk raises: one hierarchy, shared by the SDK, the registry, the trainer and the CLI.

Each class subclasses :class:`EmbsdkError` (and the matching builtin where one fits), carries the
identifiers involved as attributes, and its message says what to do next. The CLI turns any
``EmbsdkError`` into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AliasNotFound",
    "ArtifactCorrupt",
    "ArtifactError",
    "ArtifactMissing",
    "ArtifactSourceNotFound",
    "CheckpointError",
    "CodeLengthError",
    "ConfigError",
    "ConsumerNotFound",
    "ConsumersAffected",
    "DeprecatedGenerationWarning",
    "DuplicateGeneration",
    "EmbsdkError",
    "EngineIncompatible",
    "ExportError",
    "GenerationNotFound",
    "IllegalTransition",
    "ImageDecodeError",
    "ImmutableGeneration",
    "IncompatibleGenerationError",
    "IndexCorrupt",
    "IndexMissing",
    "IndexStale",
    "InferenceError",
    "IntegrityError",
    "InvalidItemId",
    "InvalidRegistryInput",
    "InvalidTopK",
    "ItemNotFound",
    "LineageCycle",
    "ManifestError",
    "MissingExtraError",
    "ModelNotLoaded",
    "ParityError",
    "ProtectedAlias",
    "RegistryError",
    "RetiredGeneration",
    "RunError",
    "SchemaOutdated",
    "ServerStartError",
    "ServerUnavailable",
    "ShardCorrupt",
    "StoreError",
    "StoreLocked",
    "StoreNotFound",
    "UnsafePath",
]


class EmbsdkError(Exception):
    """Root of every error embsdk raises."""


class ConfigError(EmbsdkError, ValueError):
    """Configuration (environment, config file, URL) is invalid."""


class MissingExtraError(EmbsdkError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed. Install it with: pip install 'embsdk[{extra}]'")
        self.package, self.extra = package, extra


# --------------------------------------------------------------------------- registry


class RegistryError(EmbsdkError):
    """Base of registry errors."""


class GenerationNotFound(RegistryError, LookupError):
    """No generation (or alias) by that name."""

    def __init__(self, name: str, *, hint: str | None = None) -> None:
        shown = name if len(name) <= 160 else f"{name[:120]}…({len(name):,} characters)"
        msg = f"No generation or alias named {shown!r} in the registry."
        msg += f" {hint}" if hint else " List them with: emb registry list"
        super().__init__(msg)
        self.name = name


class AliasNotFound(GenerationNotFound):
    """An alias points nowhere (never set, or not set at the time asked)."""

    def __init__(self, alias: str, *, at: object | None = None) -> None:
        when = f" at {at}" if at is not None else ""
        RegistryError.__init__(
            self,
            f"Alias {alias!r} does not point at any generation{when}. Set it with: emb registry alias set {alias} NAME",
        )
        self.name = alias
        self.alias = alias


class DefaultAliasNotSet(AliasNotFound):
    """No version was given and the registry has no ``production`` alias to default to."""

    def __init__(self, alias: str = "production") -> None:
        super().__init__(alias)
        message = (
            f"The alias {alias!r} (the default version) is not set. Set it with: "
            f"emb registry alias set {alias} NAME (or name a generation: --version NAME, version=NAME)."
        )
        self.args = (message,)


class DuplicateGeneration(RegistryError, ValueError):
    """A generation with that name already exists; generations are immutable, so pick a new name."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"A generation named {name!r} already exists and generations are immutable; register a new name (e.g. the next -vN)."
        )
        self.name = name


class IllegalTransition(RegistryError, ValueError):
    """A lifecycle move that the state machine does not allow."""

    def __init__(self, name: str, current: str, target: str, allowed: Sequence[str]) -> None:
        ok = ", ".join(allowed) or "none (final state)"
        super().__init__(
            f"Generation {name!r} is {current}; it cannot move to {target}. Allowed next states: {ok}."
        )
        self.name, self.current, self.target, self.allowed = name, current, target, tuple(allowed)


class ImmutableGeneration(RegistryError, PermissionError):
    """Attempt to change the spec or artifacts of a published generation."""

    def __init__(self, name: str, what: str = "its spec or artifacts", *, detail: str | None = None) -> None:
        super().__init__(
            detail
            or f"Generation {name!r} is published and immutable: {what} cannot change. "
            "Register a new generation."
        )
        self.name = name


class LineageCycle(RegistryError, ValueError):
    """An edge that would make a generation its own ancestor."""

    def __init__(self, child: str, parent: str) -> None:
        super().__init__(
            f"Refusing lineage edge {child!r} -> {parent!r}: {parent!r} already descends from {child!r} (cycle)."
        )
        self.child, self.parent = child, parent


class ProtectedAlias(RegistryError, PermissionError):
    """Moving a protected alias needs ``force=True`` and a reason."""

    def __init__(self, alias: str) -> None:
        super().__init__(f"Alias {alias!r} is protected; move it with --force --reason TEXT.")
        self.alias = alias


class ConsumersAffected(RegistryError, PermissionError):
    """Deprecating/retiring a generation that downstream consumers still read."""

    def __init__(self, name: str, action: str, consumers: Sequence[str]) -> None:
        who = ", ".join(consumers)
        super().__init__(
            f"Refusing to {action} {name!r}: still used by {who}. Move those consumers first, or pass --force --reason TEXT."
        )
        self.name, self.action, self.consumers = name, action, tuple(consumers)


class RetiredGeneration(RegistryError, LookupError):
    """The generation is retired; its embeddings must not be served any more."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Generation {name!r} is retired and can no longer be read; move to its replacement (emb registry lineage {name})."
        )
        self.name = name


class DeprecatedGenerationWarning(UserWarning):
    """Reading a deprecated generation: it still works, but plan to move off it."""


class IntegrityError(RegistryError):
    """The registry or artifact store is inconsistent (run ``emb registry fsck``)."""


class InvalidRegistryInput(RegistryError, ValueError):
    """A name, metric key, lineage kind, spec or other value given to the registry is malformed."""


class ConsumerNotFound(RegistryError, LookupError):
    """No such (team, generation-or-alias) consumer registration."""

    def __init__(self, team: str, ref: str) -> None:
        super().__init__(
            f"Team {team!r} is not registered as a consumer of {ref!r}. See: emb registry consumers list"
        )
        self.team, self.ref = team, ref


class SchemaOutdated(RegistryError):
    """The registry database is at an older schema revision than this embsdk; run the migrations."""

    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"The registry schema is at revision {current}, this embsdk needs {head}. Run: emb registry migrate"
        )
        self.current, self.head = current, head


# --------------------------------------------------------------------------- artifacts


class ArtifactError(EmbsdkError):
    """Base of artifact-store errors."""


class ArtifactMissing(ArtifactError, FileNotFoundError):
    """An artifact the registry references is not in the store."""

    def __init__(self, sha256: str, path: str | None = None) -> None:
        where = f" (expected at {path})" if path else ""
        super().__init__(f"Artifact sha256:{sha256} is missing from the store{where}. Run: emb registry fsck")
        self.sha256 = sha256


class ArtifactCorrupt(ArtifactError, OSError):
    """The bytes of a stored artifact no longer hash to its address."""

    def __init__(self, sha256: str, actual: str) -> None:
        super().__init__(
            f"Artifact sha256:{sha256} is corrupt (its bytes hash to {actual}). Run: emb registry fsck --repair"
        )
        self.sha256, self.actual = sha256, actual


class UnsafePath(ArtifactError, ValueError):
    """A user-supplied name or path would escape the artifact store (``..``, absolute, symlink)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"Unsafe path {path!r}: {why}.")
        self.path = path


class ArtifactSourceNotFound(ArtifactError, FileNotFoundError):
    """A file given to register or attach does not exist."""

    def __init__(self, path: str) -> None:
        super().__init__(f"Artifact file {path!r} does not exist; check the path.")
        self.path = path


# --------------------------------------------------------------------------- data and training


class ManifestError(EmbsdkError, ValueError):
    """A manifest is empty, malformed, or has a bad row (the message names the row)."""

    def __init__(self, message: str, *, row: int | None = None, path: str | None = None) -> None:
        prefix = f"{path}: " if path else ""
        where = f"row {row}: " if row is not None else ""
        super().__init__(f"{prefix}{where}{message}")
        self.row, self.path = row, path


class ImageDecodeError(EmbsdkError, ValueError):
    """An image file is missing, truncated or not an image."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Cannot read image {path!r}: {reason}")
        self.path, self.reason = path, reason


class RunError(EmbsdkError):
    """A training run folder is missing, incomplete or inconsistent."""


class CheckpointError(RunError):
    """A checkpoint cannot be loaded (missing, corrupt, or from another run)."""


# --------------------------------------------------------------------------- export and serving


class ExportError(EmbsdkError):
    """Exporting a model to ONNX/TensorRT failed."""


class ParityError(ExportError):
    """The exported model's outputs disagree with PyTorch beyond tolerance."""


class InferenceError(EmbsdkError):
    """An inference request failed (wraps tritonclient and onnxruntime errors)."""


class ServerUnavailable(InferenceError, ConnectionError):
    """The inference server cannot be reached."""


class ModelNotLoaded(InferenceError, LookupError):
    """The server is up, but the requested generation/version is not loaded."""


class ServerStartError(EmbsdkError, RuntimeError):
    """tritonserver did not become ready."""


class EngineIncompatible(ExportError):
    """A TensorRT engine was built for another GPU/TensorRT/CUDA than the one here."""


# --------------------------------------------------------------------------- store and search


class StoreError(EmbsdkError):
    """Base of embedding-store errors."""


class ItemNotFound(StoreError, KeyError):
    """One or more item ids are not in the store for this generation."""

    def __init__(self, ids: Sequence[int], generation: str) -> None:
        shown = ", ".join(str(i) for i in list(ids)[:10]) + (" …" if len(ids) > 10 else "")
        super().__init__(
            f"{len(ids)} id(s) not in the store of {generation!r}: {shown}. Backfill them (emb backfill) or pass skip_missing=True."
        )
        self.ids, self.generation = tuple(ids), generation

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CodeLengthError(StoreError, ValueError):
    """A code has the wrong number of bytes for the generation's embedding spec."""

    def __init__(self, got: int, expected: int, generation: str) -> None:
        super().__init__(
            f"Code of {got} bytes given, but generation {generation!r} uses {expected}-byte codes ({expected * 8} bits)."
        )
        self.got, self.expected, self.generation = got, expected, generation


class IncompatibleGenerationError(StoreError, ValueError):
    """Codes of two different generations were compared; their bits mean different things."""

    def __init__(self, left: str, right: str) -> None:
        super().__init__(
            f"Cannot compare codes of {left!r} with codes of {right!r}: bits of different generations are unrelated. "
            f"Re-embed with one generation (embsdk.get_embedding(..., version={right!r}))."
        )
        self.left, self.right = left, right


class ShardCorrupt(StoreError, OSError):
    """A store shard fails its checksum or header check."""


class InvalidEmbeddingSpec(InvalidRegistryInput, StoreError):
    """An embedding spec that breaks the contract (e.g. ``bits`` not a positive multiple of 8).

    Refused wherever it appears, with one line naming the key: the registry (an
    :class:`InvalidRegistryInput`) and the embedding store (a :class:`StoreError`) raise this same error.
    """


class IndexCorrupt(ShardCorrupt):
    """A saved search index fails its checksums or does not match its store; ``emb store index`` rebuilds it."""


class IndexMissing(StoreError, FileNotFoundError):
    """No saved approximate search index of that kind for the generation."""

    def __init__(self, generation: str, kind: str) -> None:
        super().__init__(
            f"No {kind!r} search index for {generation!r}. Build it with: emb store index --version {generation} "
            f"--kind {kind} (or search with exact=True)."
        )
        self.generation, self.kind = generation, kind


class IndexStale(StoreError):
    """A saved search index was built from an older state of the store (items added or deleted since)."""

    def __init__(self, generation: str, kind: str) -> None:
        super().__init__(
            f"The {kind!r} search index of {generation!r} was built before the store's latest commit. Rebuild it with: "
            f"emb store index --version {generation} --kind {kind} (or search with exact=True)."
        )
        self.generation, self.kind = generation, kind


class StoreNotFound(StoreError, FileNotFoundError):
    """The generation exists, but no embedding store has been written for it (yet)."""

    def __init__(self, generation: str, path: str) -> None:
        super().__init__(
            f"No embedding store for generation {generation!r} at {path}. Fill it with: emb backfill --version "
            f"{generation} --manifest M (or point EMB_STORE at the right folder)."
        )
        self.generation, self.path = generation, path


class InvalidItemId(StoreError, ValueError):
    """An item id is not a 64-bit signed integer (a float, a bool, or outside [-2**63, 2**63 - 1])."""


class InvalidTopK(StoreError, ValueError):
    """A search was asked for a number of results *k* that is not an integer in the supported range."""


class StoreLocked(StoreError, BlockingIOError):
    """Another writer (or a compaction) holds the store of this generation."""

    def __init__(self, generation: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"The store of {generation!r} is being written by {holder}; wait for it to finish (one writer or "
            f"compaction per generation at a time)."
        )
        self.generation, self.pid = generation, pid
