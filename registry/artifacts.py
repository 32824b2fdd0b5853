"""Content-addressed artifact store: ``<root>/blobs/sha256/ab/cdef…``, published atomically, read-only.

``put`` copies a file to a temp name in the blob's own folder, fsyncs it, renames it into place with
``os.replace``, fsyncs the folder and makes the blob read-only (0o444). A blob either exists complete
under its hash or not at all; a crash leaves at most a ``.tmp-*`` file that ``fsck`` removes. Nothing in
the store is ever unpickled or executed; the store only hashes and copies bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from embsdk._faults import crash_point
from embsdk._fileio import fsync_dir, sha256_file
from embsdk.errors import ArtifactCorrupt, ArtifactMissing, ArtifactSourceNotFound, UnsafePath

__all__ = ["TEMP_PREFIX", "ArtifactStore", "StoredBlob", "sha256_file", "validate_artifact_name"]

TEMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")


def validate_artifact_name(name: str) -> str:
    """Check an artifact name: relative, ``/``-separated, no ``..``, no absolute path, no odd characters.

    Raises:
        UnsafePath: the name could escape a folder it is written into.
    """
    if not name or len(name) > 255:
        raise UnsafePath(name, "an artifact name must be 1-255 characters")
    if "\\" in name or "\x00" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafePath(
            name, "artifact names are relative POSIX paths (no absolute path, drive or backslash)"
        )
    for part in name.split("/"):
        if part in ("..", ".", ""):
            raise UnsafePath(name, "'..', '.' and empty components are not allowed in artifact names")
        if not _NAME_RE.match(part):
            raise UnsafePath(name, f"component {part!r} must match {_NAME_RE.pattern}")
    return name


@dataclass(frozen=True)
class StoredBlob:
    """A blob in the store: its hash, size and path."""

    sha256: str
    size: int
    path: Path


class ArtifactStore:
    """A folder of immutable, content-addressed blobs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.blob_root = self.root / "blobs" / "sha256"
        self.quarantine_dir = self.root / "quarantine"

    # ------------------------------------------------------------------ paths

    def path_for(self, sha256: str) -> Path:
        """Where the blob with this hash lives (whether or not it exists).

        Raises:
            UnsafePath: *sha256* is not 64 lowercase hex digits, or the store contains a symlink on the way.
        """
        if not _SHA_RE.match(sha256):
            raise UnsafePath(sha256, "a blob address is 64 lowercase hex digits")
        path = self.blob_root / sha256[:2] / sha256[2:]
        self._check_no_symlinks(path)
        return path

    def _check_no_symlinks(self, path: Path) -> None:
        """Refuse a path if any component from the store root down is a symlink (it could lead outside)."""
        current = self.root
        for part in path.relative_to(self.root).parts:
            current = current / part
            if current.is_symlink():
                raise UnsafePath(str(current), "the artifact store must not contain symlinks")

    # ------------------------------------------------------------------ writing

    def put(self, source: Path) -> StoredBlob:
        """Copy *source* into the store atomically; returns its address. Idempotent for identical bytes.

        Raises:
            UnsafePath: *source* is a symlink or not a regular file.
            ArtifactSourceNotFound: *source* does not exist.
        """
        source = Path(source)
        if source.is_symlink():
            raise UnsafePath(
                str(source), "artifact sources must be regular files, not symlinks; pass the target file"
            )
        if not source.exists():
            raise ArtifactSourceNotFound(str(source))
        if not stat.S_ISREG(source.stat().st_mode):
            raise UnsafePath(str(source), "an artifact must be a regular file")
        sha256 = sha256_file(source)
        final = self.path_for(sha256)
        if final.exists():
            if sha256_file(final) == sha256:
                # refresh mtime: fsck's orphan grace period protects an in-flight registration
                os.utime(final)
                return StoredBlob(sha256, final.stat().st_size, final)
            self.quarantine(final)  # a corrupt blob under this address: replace it with the good bytes
        final.parent.mkdir(parents=True, exist_ok=True)
        self._check_no_symlinks(final.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=final.parent)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            total = source.stat().st_size
            written = 0
            hooked = False
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    if not hooked and written * 2 >= total:
                        out.flush()
                        crash_point("registry.during_blob_write", tmp)
                        hooked = True
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise ArtifactCorrupt(sha256, digest.hexdigest())  # the source changed while we copied it
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StoredBlob(sha256, final.stat().st_size, final)

    # ------------------------------------------------------------------ reading and checking

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def open_path(self, sha256: str, *, verify: bool = False) -> Path:
        """The path of an existing blob, optionally re-hashed.

        Raises:
            ArtifactMissing: no blob with this hash.
            ArtifactCorrupt: ``verify`` and the bytes no longer hash to the address.
        """
        path = self.path_for(sha256)
        if not path.is_file():
            raise ArtifactMissing(sha256, str(path))
        if verify:
            actual = sha256_file(path)
            if actual != sha256:
                raise ArtifactCorrupt(sha256, actual)
        return path

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        """Every complete blob in the store as ``(sha256, path)`` (temp files excluded)."""
        if not self.blob_root.is_dir():
            return
        for sub in sorted(self.blob_root.iterdir()):
            if not sub.is_dir() or sub.is_symlink():
                continue
            for f in sorted(sub.iterdir()):
                if f.name.startswith(TEMP_PREFIX):
                    continue
                yield sub.name + f.name, f

    def iter_temp_files(self) -> Iterator[Path]:
        """Half-written files left by a crashed ``put``."""
        if not self.blob_root.is_dir():
            return
        yield from sorted(self.blob_root.glob(f"*/{TEMP_PREFIX}*"))

    def remove(self, path: Path) -> None:
        """Delete a blob or temp file (fsck repairs only)."""
        path.chmod(0o644)
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)

    def quarantine(self, path: Path) -> Path:
        """Move a corrupt blob out of the address space, keeping its bytes for inspection."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        sha = path.parent.name + path.name
        target = self.quarantine_dir / f"{sha}.{os.getpid()}.{int(os.path.getmtime(path))}"
        os.replace(path, target)
        fsync_dir(path.parent)
        return target
