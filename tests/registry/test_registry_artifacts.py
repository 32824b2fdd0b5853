"""Artifact store and fsck: atomic read-only blobs, unsafe paths refused, tampering found and repaired."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from embsdk.errors import ArtifactCorrupt, ArtifactMissing, UnsafePath
from registry import Registry
from registry.artifacts import TEMP_PREFIX, ArtifactStore, sha256_file, validate_artifact_name


def test_put_is_content_addressed_read_only_and_idempotent(tmp_path: Path, make_file) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = make_file("model.onnx", b"x" * 3_000_000)
    blob = store.put(src)
    assert blob.sha256 == sha256_file(src) and blob.size == 3_000_000
    assert blob.path == tmp_path / "store" / "blobs" / "sha256" / blob.sha256[:2] / blob.sha256[2:]
    assert stat.S_IMODE(blob.path.stat().st_mode) == 0o444
    assert store.put(src) == blob
    assert list(store.iter_blobs()) == [(blob.sha256, blob.path)]
    assert not list(store.iter_temp_files())
    assert store.open_path(blob.sha256, verify=True) == blob.path


@pytest.mark.parametrize(
    "name", ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\b", "", "./x", "a//b/.", "x\x00y", ".hidden"]
)
def test_unsafe_artifact_names(name: str) -> None:
    with pytest.raises(UnsafePath):
        validate_artifact_name(name)


def test_safe_artifact_names() -> None:
    for name in ("model.onnx", "store/shard-0001.npy", "eval/report_v2.json", "index.faiss"):
        assert validate_artifact_name(name) == name


def test_symlinks_are_refused(tmp_path: Path, make_file) -> None:
    store = ArtifactStore(tmp_path / "store")
    target = make_file("real.onnx")
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    with pytest.raises(UnsafePath, match="symlink"):
        store.put(link)
    # a symlinked fan-out folder inside the store would let writes escape it
    outside = tmp_path / "outside"
    outside.mkdir()
    sha = sha256_file(target)
    store.blob_root.mkdir(parents=True)
    (store.blob_root / sha[:2]).symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath, match="symlinks"):
        store.put(target)
    assert not any(outside.iterdir())
    with pytest.raises(UnsafePath):
        store.path_for("../../etc/passwd")


def test_put_replaces_a_corrupt_blob_with_good_bytes(tmp_path: Path, make_file) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = make_file("m.onnx")
    blob = store.put(src)
    blob.path.chmod(0o644)
    blob.path.write_bytes(b"tampered")
    again = store.put(src)
    assert sha256_file(again.path) == blob.sha256
    assert len(list(store.quarantine_dir.iterdir())) == 1


def test_fsck_finds_and_repairs(reg: Registry, make_file) -> None:
    good = reg.register("u-v1", artifacts=[make_file("good.onnx")]).artifacts[0]
    bad = reg.register("u-v2", artifacts=[make_file("bad.onnx")]).artifacts[0]
    gone_src = make_file("gone.onnx")
    gone = reg.register("u-v3", artifacts=[gone_src]).artifacts[0]
    assert reg.fsck().clean
    # tamper: flip bytes of one blob, delete another, drop an orphan and a half-written temp file
    bad_path = reg.store.path_for(bad.sha256)
    bad_path.chmod(0o644)
    bad_path.write_bytes(b"evil bytes")
    gone_path = reg.store.path_for(gone.sha256)
    gone_path.chmod(0o644)
    gone_path.unlink()
    orphan = reg.store.put(make_file("orphan.bin"))
    tmp = reg.store.blob_root / "ab" / f"{TEMP_PREFIX}crashed"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half")

    report = reg.fsck()
    assert report.missing == (gone.sha256,)
    assert report.corrupt == (bad.sha256,)
    assert report.orphans == (orphan.sha256,)
    assert report.temp_files == (f"blobs/sha256/ab/{TEMP_PREFIX}crashed",)
    assert not report.ok and report.to_dict()["ok"] is False
    with pytest.raises(ArtifactCorrupt):
        reg.artifact_path("u-v2", "bad.onnx", verify=True)
    with pytest.raises(ArtifactMissing, match="fsck"):
        reg.artifact_path("u-v3", "gone.onnx")

    kept = reg.fsck(repair=True)  # default grace period: fresh orphans may belong to a registration in flight
    assert kept.quarantined == (bad.sha256,) and set(kept.kept_recent_orphans) >= {orphan.sha256}
    assert reg.store.path_for(orphan.sha256).exists()

    fixed = reg.fsck(repair=True, grace_seconds=0)
    assert set(fixed.removed) == {orphan.sha256, f"blobs/sha256/ab/{TEMP_PREFIX}crashed"}
    assert not tmp.exists() and not reg.store.path_for(orphan.sha256).exists()
    after = reg.fsck()
    assert after.corrupt == () and after.orphans == () and after.temp_files == ()
    assert set(after.missing) == {gone.sha256, bad.sha256}  # honest: quarantined bytes are no longer served
    assert reg.artifact_path("u-v1", "good.onnx", verify=True).exists()
    assert sha256_file(reg.artifact_path("u-v1", "good.onnx")) == good.sha256
    # re-putting the right bytes heals a missing blob; repair never deletes referenced blobs
    assert reg.store.put(gone_src).sha256 == gone.sha256
    assert gone.sha256 not in reg.fsck().missing


def test_nothing_is_unpickled() -> None:
    """The registry never deserializes artifacts: no pickle/torch.load/np.load(allow_pickle) in its code."""
    root = Path(__file__).resolve().parents[2] / "registry"
    code = "\n".join(p.read_text() for p in root.rglob("*.py"))
    for needle in ("import pickle", "pickle.load", "torch.load", "allow_pickle=True", "yaml.load(", "eval("):
        assert needle not in code, needle


def test_blob_write_crash_leaves_no_partial_blob(tmp_path: Path, make_file) -> None:
    from embsdk import _faults

    store = ArtifactStore(tmp_path / "store")
    src = make_file("big.bin", os.urandom(4 << 20))

    def boom(tmp: Path) -> None:
        assert tmp.exists() and tmp.name.startswith(TEMP_PREFIX)
        raise KeyboardInterrupt

    with _faults.on("registry.during_blob_write", boom), pytest.raises(KeyboardInterrupt):
        store.put(src)
    assert list(store.iter_blobs()) == [] and list(store.iter_temp_files()) == []
