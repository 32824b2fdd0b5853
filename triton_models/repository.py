"""The Triton model repository: one model per family, one numbered version per generation.

Layout (everything written by code; Triton only knows numbers, ``generations.json`` knows names)::

    ROOT/unified/config.pbtxt          # rendered from generations.json (version policy lists its versions)
    ROOT/unified/generations.json      # {"spec": {...}, "next_version": 3, "versions": {"1": {"generation": ...}}}
    ROOT/unified/1/{model.py, model.onnx, export.json}
    ROOT/unified/.staging-unified-v2-xxxx/   # a version being written (Triton ignores non-numeric dirs)

Adding a version is crash-safe: files are written into a hidden staging folder and fsynced, the folder is
renamed to its number, then ``generations.json`` is replaced (the commit point) and ``config.pbtxt`` is
re-rendered from it. A kill at any moment leaves either no trace Triton can load or a complete version;
:meth:`ModelRepository.reconcile` then finishes or removes leftovers (it runs before every change).

Example:
    >>> repo = ModelRepository(tmp / "triton_models")                             # doctest: +SKIP
    >>> repo.add("exports/tiny", generation="unified-v1", family="unified")       # doctest: +SKIP
    1
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embsdk._faults import crash_point
from embsdk._fileio import fsync_dir, fsync_tree, write_json_atomic, write_text_atomic
from embsdk.config import get_settings
from embsdk.errors import ConfigError, DuplicateGeneration, ExportError
from embsdk.spec import TENSOR_NAMES, EmbeddingSpec
from triton_models.config import (
    BACKENDS,
    ModelSpec,
    ServedVersion,
    check_name,
    render_config,
    validate_config,
)
from triton_models.python_backend import MODEL_FILE

__all__ = ["MAPPING_FILE", "STAGING_PREFIX", "ModelRepository", "StagedVersion"]

MAPPING_FILE = "generations.json"
STAGING_PREFIX = ".staging-"
_LOCK_FILE = ".emb-repository.lock"
_MARKER = "generation.json"  # inside a version dir: which generation it holds


_SIZE_KEYS = ("dim", "code_bytes", "tensor_names")


def _sizes(spec: EmbeddingSpec) -> dict[str, Any]:
    """What a version entry records of its generation's spec: dim, code bytes, tensor names (when not standard)."""
    sizes: dict[str, Any] = {"dim": spec.dim, "code_bytes": spec.code_bytes}
    if spec.tensor_names != TENSOR_NAMES:
        sizes["tensor_names"] = list(spec.tensor_names)
    return sizes


@dataclass(frozen=True)
class StagedVersion:
    """A fully written version folder that is not yet visible to Triton."""

    family: str
    generation: str
    path: Path


def _read_marker(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return {}


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class ModelRepository:
    """A Triton model repository folder managed by embsdk (default: ``get_settings().triton_repository``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else get_settings().triton_repository
        self.root = self.root.expanduser().resolve()

    # ------------------------------------------------------------------ reading
    def families(self) -> list[str]:
        """Families (Triton model names) that have a mapping file."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / MAPPING_FILE).is_file())

    def mapping(self, family: str) -> dict[str, Any]:
        """The family's ``generations.json`` (empty skeleton when the family does not exist yet)."""
        path = self.root / check_name(family, "family") / MAPPING_FILE
        if not path.is_file():
            return {"family": family, "spec": None, "next_version": 1, "versions": {}}
        return json.loads(path.read_text())

    def served(self) -> list[dict[str, Any]]:
        """Every committed version: ``{"family", "version", "generation", ...}`` sorted by family, version."""
        out = []
        for family in self.families():
            for number, entry in sorted(self.mapping(family)["versions"].items(), key=lambda kv: int(kv[0])):
                out.append({"family": family, "version": int(number), **entry})
        return out

    def locate(self, generation: str) -> tuple[str, int] | None:
        """``(family, version number)`` serving ``generation``, or None."""
        for row in self.served():
            if row["generation"] == generation:
                return row["family"], row["version"]
        return None

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / _LOCK_FILE, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def stage(
        self, export_dir: str | Path, *, generation: str, family: str = "unified", backend: str = "python"
    ) -> StagedVersion:
        """Copy an export into a hidden staging folder of ``family`` (not visible to Triton yet).

        Raises:
            ExportError: the export folder is incomplete (verified against its sha256).
            DuplicateGeneration: the generation is already served.
            ConfigError: a bad name or backend.
        """
        from embsdk.export_format import read_export

        check_name(family, "family")
        check_name(generation, "generation")
        if backend not in BACKENDS:
            raise ConfigError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
        src = Path(export_dir)
        info = read_export(src)
        try:
            spec = EmbeddingSpec.from_dict(info["embedding_spec"])  # sizes and tensor names come from here
        except (KeyError, ValueError) as exc:  # InvalidEmbeddingSpec is a ValueError
            raise ExportError(f"{src / 'export.json'} records no valid embedding spec: {exc}") from None
        if self.locate(generation) is not None:
            raise DuplicateGeneration(generation)
        fam_dir = self.root / family
        fam_dir.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{generation}-", dir=fam_dir))
        marker = {
            "generation": generation,
            "family": family,
            "backend": backend,
            "pid": os.getpid(),
            "complete": False,
            "image_size": info["input_spec"]["image_size"],
            **_sizes(spec),
            "sha256": info["model"]["sha256"],
        }
        (dest / _MARKER).write_text(json.dumps(marker, indent=2))
        files = {"export.json": src / "export.json"}
        if backend == "tensorrt":
            for name in ("model.plan", "model.plan.json"):
                if not (src / name).is_file():
                    raise ExportError(
                        f"{src / name} is missing; build the engine with: python -m trainer.tensorrt {src}"
                    )
                files[name] = src / name
        else:
            files["model.onnx"] = src / info["model"]["file"]
        if backend == "python":
            files["model.py"] = MODEL_FILE
        for name, path in files.items():
            shutil.copyfile(path, dest / name)
        fsync_tree(dest)
        marker["complete"] = True
        write_json_atomic(dest / _MARKER, marker)
        return StagedVersion(family=family, generation=generation, path=dest)

    def commit(self, staged: StagedVersion, **spec_overrides: Any) -> int:
        """Make a staged version visible: number it, record it in ``generations.json``, re-render the config.

        Returns:
            The Triton version number now serving ``staged.generation``.
        """
        with self._locked():
            return self._commit_locked(staged, **spec_overrides)

    def _commit_locked(self, staged: StagedVersion, **spec_overrides: Any) -> int:
        marker = json.loads((staged.path / _MARKER).read_text())
        mapping = self.mapping(staged.family)
        if any(e["generation"] == staged.generation for e in mapping["versions"].values()):
            shutil.rmtree(staged.path, ignore_errors=True)
            raise DuplicateGeneration(staged.generation)
        fam_dir = self.root / staged.family
        taken = [int(p.name) for p in fam_dir.iterdir() if p.name.isdigit()]
        number = max([mapping["next_version"] - 1, *taken, 0]) + 1
        spec = ModelSpec(
            **{
                **(mapping["spec"] or {"family": staged.family, "backend": marker["backend"]}),
                **spec_overrides,
            }
        )
        if spec.backend != marker["backend"]:
            raise ConfigError(
                f"Family {staged.family!r} is served by the {spec.backend} backend, not {marker['backend']}."
            )
        crash_point("repository.before_rename")
        os.rename(staged.path, fam_dir / str(number))
        fsync_dir(fam_dir)
        crash_point("repository.after_rename")
        self._record_locked(staged.family, number, marker, spec)
        return number

    def _record_locked(
        self, family: str, number: int, marker: dict[str, Any], spec: ModelSpec | None = None
    ) -> None:
        """Write version ``number`` (folder already in place) into ``generations.json`` and the config."""
        mapping = self.mapping(family)
        spec = spec or ModelSpec(**(mapping["spec"] or {"family": family, "backend": marker["backend"]}))
        mapping.update(
            family=family, spec=spec.to_dict(), next_version=max(mapping["next_version"], number + 1)
        )
        mapping["versions"][str(number)] = {
            "generation": marker["generation"],
            "image_size": marker["image_size"],
            **{k: marker[k] for k in _SIZE_KEYS if k in marker},
            "sha256": marker["sha256"],
            "added": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._write_family(family, mapping)

    def _write_family(self, family: str, mapping: dict[str, Any]) -> None:
        fam_dir = self.root / family
        write_json_atomic(fam_dir / MAPPING_FILE, mapping)  # the commit point
        crash_point("repository.after_mapping")
        if mapping["versions"]:
            versions = self._served_versions(mapping)
            text = render_config(ModelSpec(**mapping["spec"]), versions)
            validate_config(text, next(iter(versions.values())).tensor_names)
            write_text_atomic(fam_dir / "config.pbtxt", text)
        else:
            (fam_dir / "config.pbtxt").unlink(missing_ok=True)

    @staticmethod
    def _served_versions(mapping: dict[str, Any]) -> dict[int, ServedVersion]:
        return {
            int(n): ServedVersion(
                e["generation"],
                image_size=e["image_size"],
                dim=e["dim"],
                code_bytes=e.get("code_bytes", 0),  # 0 (older entries): ceil(dim / 8)
                tensor_names=tuple(e.get("tensor_names", TENSOR_NAMES)),
            )
            for n, e in mapping["versions"].items()
        }

    def add(
        self,
        export_dir: str | Path,
        *,
        generation: str,
        family: str = "unified",
        backend: str = "python",
        **spec_overrides: Any,
    ) -> int:
        """Stage and commit in one call (see :meth:`stage` and :meth:`commit`); returns the version number."""
        staged = self.stage(export_dir, generation=generation, family=family, backend=backend)
        try:
            return self.commit(staged, **spec_overrides)
        except BaseException:
            shutil.rmtree(staged.path, ignore_errors=True)
            raise

    def remove(self, generation: str) -> None:
        """Stop serving ``generation``: drop it from the mapping (commit), then delete its folder."""
        with self._locked():
            where = self.locate(generation)
            if where is None:
                return
            family, number = where
            mapping = self.mapping(family)
            del mapping["versions"][str(number)]
            self._write_family(family, mapping)
            shutil.rmtree(self.root / family / str(number), ignore_errors=True)

    def reconcile(self, is_registered: Callable[[str], bool] | None = None) -> dict[str, list[str]]:
        """Finish or undo what a killed writer left behind; returns what was done.

        * staging folders: committed when ``is_registered(generation)`` says the registry has it,
          otherwise deleted (a publish that died before registering);
        * numbered folders not in ``generations.json`` (died between rename and commit): recorded when the
          registry has their generation, otherwise deleted;
        * ``config.pbtxt``: re-rendered from ``generations.json``.
        """
        done: dict[str, list[str]] = {"committed": [], "removed": []}
        if not self.root.is_dir():
            return done
        with self._locked():
            for fam_dir in sorted(
                p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                mapping = self.mapping(fam_dir.name)
                known = set(mapping["versions"])
                for child in sorted(fam_dir.iterdir()):
                    if child.is_dir() and child.name.isdigit() and child.name not in known:
                        marker = _read_marker(child)
                        gen = marker.get("generation") if marker.get("complete") else None
                        served = {e["generation"] for e in self.mapping(fam_dir.name)["versions"].values()}
                        if gen and gen not in served and is_registered is not None and is_registered(gen):
                            self._record_locked(fam_dir.name, int(child.name), marker)  # died after rename
                            done["committed"].append(gen)
                        else:
                            shutil.rmtree(child, ignore_errors=True)
                            done["removed"].append(str(child))
                for child in sorted(fam_dir.glob(f"{STAGING_PREFIX}*")):
                    marker = _read_marker(child)
                    if _alive(marker.get("pid")):
                        continue  # another process is still writing or publishing this one
                    gen = marker.get("generation") if marker.get("complete") else None
                    if gen and is_registered is not None and is_registered(gen):
                        self._commit_locked(StagedVersion(fam_dir.name, gen, child))
                        done["committed"].append(gen)
                    else:
                        shutil.rmtree(child, ignore_errors=True)
                        done["removed"].append(str(child))
                if (fam_dir / MAPPING_FILE).is_file():
                    self._write_family(fam_dir.name, self.mapping(fam_dir.name))
        return done
