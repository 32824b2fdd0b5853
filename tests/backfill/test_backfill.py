"""emb backfill: store contents equal in-process embeddings; unreadable images reported; kill + resume is exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import embsdk
from embsdk.errors import GenerationNotFound, ManifestError
from embsdk.store import EmbeddingStore
from tests.backfill.conftest import Published, publish_tiny

ROOT = Path(__file__).resolve().parents[2]
EMB = str(Path(sys.executable).with_name("emb"))


def _expected_codes(pub: Published) -> np.ndarray:
    good = [p for p in pub.paths if "corrupt" not in p.name]
    return np.stack([e.code for e in embsdk.embed(good, version=pub.generation)])


def _store(pub: Published) -> EmbeddingStore:
    return EmbeddingStore.open(embsdk.get_settings().store_dir, pub.generation)


def test_backfill_cli_fills_store_and_reports_corrupt_image(published: Published) -> None:
    out = subprocess.run(
        [
            EMB,
            "backfill",
            "--version",
            published.generation,
            "--manifest",
            str(published.manifest),
            "--batch-size",
            "4",
            "--commit-every",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["embedded"] == len(published.good_ids)
    assert report["failed_count"] == 1 and report["failed"][0]["id"] == published.corrupt_id
    assert report["commits"] >= 3
    assert Path(report["report_path"]).is_file()
    store = _store(published)
    np.testing.assert_array_equal(store.live_ids(), np.sort(published.good_ids))
    got = embsdk.get_embeddings(list(published.good_ids), version=published.generation)
    np.testing.assert_array_equal(np.stack([e.code for e in got]), _expected_codes(published))
    # the float16 vectors are kept for re-ranking
    assert store.has_vectors


def test_backfill_resume_after_real_kill_is_exactly_once(published: Published) -> None:
    script = (
        "import sys, time\n"
        "import embsdk.backfill.job as job\n"
        "job.after_commit = lambda n: (print('COMMITTED', n, flush=True), time.sleep(120) if n == 2 else None)\n"
        "from cli.main import main\n"
        f"sys.argv = ['emb', 'backfill', '--version', {published.generation!r}, '--manifest', {str(published.manifest)!r},"
        " '--batch-size', '2', '--commit-every', '4']\n"
        "main()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("COMMITTED 2"):
            break
        assert time.monotonic() < deadline
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = _store(published).live_ids()
    assert 0 < partial.size < len(published.good_ids)  # really killed half way

    out = subprocess.run(
        [
            EMB,
            "backfill",
            "--version",
            published.generation,
            "--manifest",
            str(published.manifest),
            "--resume",
            "--batch-size",
            "4",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["already_present"] == partial.size
    assert report["embedded"] == len(published.good_ids) - partial.size  # nothing embedded twice
    live = _store(published).live()
    assert np.unique(live.ids).size == live.ids.size  # no duplicates
    np.testing.assert_array_equal(np.sort(live.ids), np.sort(published.good_ids))  # nothing lost
    got = embsdk.get_embeddings(list(published.good_ids), version=published.generation)
    np.testing.assert_array_equal(np.stack([e.code for e in got]), _expected_codes(published))


@pytest.mark.slow
def test_ray_engine_gives_the_same_store(tmp_path: Path, published: Published) -> None:
    from embsdk.backfill import backfill

    local = backfill(published.generation, published.manifest, batch_size=4, progress=False)
    other = publish_tiny(tmp_path / "second", name="tiny-v2")
    ray_report = backfill(
        other.generation, other.manifest, batch_size=4, engine="ray", workers=2, progress=False
    )
    assert ray_report.embedded == local.embedded and len(ray_report.failed) == 1
    a, b = _store(published).live(), _store(other).live()
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.codes, b.codes)  # same model seed, same images -> identical bytes


def test_backfill_bad_inputs(tmp_path: Path, published: Published) -> None:
    from embsdk.backfill import backfill

    with pytest.raises(GenerationNotFound):
        backfill("nope-v9", published.manifest, progress=False)
    dup = tmp_path / "dup.csv"
    dup.write_text(f"id,image\n1,{published.paths[0]}\n1,{published.paths[1]}\n")
    with pytest.raises(ManifestError, match="duplicate id 1"):
        backfill(published.generation, dup, progress=False)
    noid = tmp_path / "noid.csv"
    noid.write_text(f"image\n{published.paths[0]}\n")
    with pytest.raises(ManifestError, match="missing the 'id' column"):
        backfill(published.generation, noid, progress=False)
    out = subprocess.run(
        [EMB, "backfill", "--version", "nope-v9", "--manifest", str(published.manifest)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        check=False,
    )
    assert (
        out.returncode == 1
        and out.stderr.startswith("error: No generation")
        and "Traceback" not in out.stderr
    )


def test_backfill_skips_and_counts_a_decompression_bomb(tmp_path: Path, published: Published) -> None:
    import pandas as pd

    from tests.backfill._images import write_bomb_png

    bomb = write_bomb_png(tmp_path / "bomb.png")  # 30000 x 30000 pixels in ~110 KB
    manifest = tmp_path / "with_bomb.csv"
    ids = [*published.ids.tolist(), 99]
    pd.DataFrame({"id": ids, "image": [*map(str, published.paths), str(bomb)]}).to_csv(manifest, index=False)
    out = subprocess.run(
        [EMB, "backfill", "--version", published.generation, "--manifest", str(manifest), "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    failed = {f["id"]: f["reason"] for f in report["failed"]}
    assert set(failed) == {published.corrupt_id, 99} and report["failed_count"] == 2
    assert failed[99].startswith("image too large to decode")
    assert report["embedded"] == len(published.good_ids)
    np.testing.assert_array_equal(_store(published).live_ids(), np.sort(published.good_ids))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("ids", "row", "match"),
    [
        (["1", "2", "1"], 2, "duplicate id 1 \\(first in row 0"),
        (["1", str(2**63)], 1, "not an integer in the int64 range"),
        (["1", "1.5"], 1, "not an integer in the int64 range"),
    ],
)
def test_backfill_manifest_ids_are_exact_int64(
    tmp_path: Path, fmt: str, ids: list[str], row: int, match: str
) -> None:
    import pandas as pd

    from embsdk.backfill.source import read_items

    path = tmp_path / f"m.{fmt}"
    frame = pd.DataFrame({"id": ids, "image": [f"{i}.png" for i in range(len(ids))]})
    if fmt == "parquet":  # the natural column type: uint64 for 2**63, float for 1.5, int otherwise
        frame["id"] = pd.Series([int(v) if "." not in v else float(v) for v in ids])
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    with pytest.raises(ManifestError, match=match) as err:
        read_items(path)
    assert err.value.row == row
