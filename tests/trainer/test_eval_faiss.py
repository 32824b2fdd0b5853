"""``emb eval`` ranks with faiss and embeds through cached backbone features + ONNX Runtime; the numpy
full-sort ranking and the PyTorch model stay the reference, and the metrics must equal theirs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from _eval_data import write_tiny_manifest
from typer.testing import CliRunner

from cli.main import app
from embsdk.codes import pack_codes
from trainer.evaluate.embed import EmbeddedRows
from trainer.evaluate.metrics import rank_gallery, rank_topk, required_depth, retrieval_metrics
from trainer.evaluate.protocol import TaskProtocol
from trainer.evaluate.scoring import score_task

faiss = pytest.importorskip("faiss")
runner = CliRunner()


def _tied(n_gallery: int = 3000, n_query: int = 400, dim: int = 16, seed: int = 0):
    """Clustered vectors with 16-bit codes (17 possible distances: ties everywhere) and exact duplicates."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dim))
    g_lab = rng.integers(0, 12, n_gallery)
    q_lab = rng.integers(0, 13, n_query)  # class 12 has no gallery item: unanswerable queries
    g = centres[g_lab] + 0.8 * rng.normal(size=(n_gallery, dim))
    g[-200:] = g[:200]  # duplicated gallery items (same label): equal distances, lower index first
    g_lab[-200:] = g_lab[:200]
    q = centres[q_lab % 12] + 0.8 * rng.normal(size=(n_query, dim))
    return q, g, q_lab.astype(str), g_lab.astype(str)


@pytest.mark.parametrize("depth", [1, 7, 64, 65, 900, 3000])
def test_hamming_topk_equals_the_reference_order_with_ties(depth: int) -> None:
    q, g, _, _ = _tied()
    qc, gc = pack_codes(q), pack_codes(g)
    ranked = rank_topk(qc, gc, "hamming", depth)
    np.testing.assert_array_equal(ranked, rank_gallery(qc, gc, "hamming", depth=depth))
    np.testing.assert_array_equal(rank_topk(qc, gc, "hamming", depth, use_faiss=False), ranked)


class _ShuffledTies:
    """A faiss index whose results list equal distances in a random order, and whose cut at k drops
    random members of the last run of ties: what faiss is free to do."""

    def __init__(self, index: object, seed: int) -> None:
        self.index, self.rng = index, np.random.default_rng(seed)

    def add(self, x: np.ndarray) -> None:
        self.index.add(x)

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.index.ntotal
        dist, idx = self.index.search(x, n)  # everything, then a random tie order and cut
        for row in range(len(x)):
            key = dist[row] if dist.dtype.kind == "i" else -np.round(dist[row], 5)
            order = np.lexsort((self.rng.random(n), key))
            dist[row], idx[row] = dist[row][order], idx[row][order]
        return dist[:, :k], idx[:, :k]


@pytest.mark.parametrize("metric", ["hamming", "cosine"])
def test_topk_does_not_depend_on_faiss_tie_order(metric: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from trainer.evaluate import metrics

    shim = types.SimpleNamespace(
        IndexBinaryFlat=lambda bits: _ShuffledTies(faiss.IndexBinaryFlat(bits), 1),
        IndexFlatIP=lambda dim: _ShuffledTies(faiss.IndexFlatIP(dim), 2),
    )
    monkeypatch.setattr(metrics, "_import_faiss", lambda: shim)
    monkeypatch.setattr(metrics, "_OVERFETCH", 1)  # force the re-search of queries whose ties overflow
    q, g, _, _ = _tied(n_gallery=800, n_query=60)
    if metric == "hamming":
        q, g = pack_codes(q), pack_codes(g)
    for depth in (1, 10, 100):
        ranked = metrics.rank_topk(q, g, metric, depth)
        ref = rank_gallery(q, g, metric, depth=depth)
        if metric == "hamming":
            np.testing.assert_array_equal(ranked, ref)
        else:  # exact duplicates may differ only by BLAS rounding in the reference
            np.testing.assert_array_equal(g[ranked], g[ref])


def test_cosine_topk_equals_the_reference() -> None:
    q, g, _, _ = _tied(dim=64)
    ranked = rank_topk(q, g, "cosine", 300)
    ref = rank_gallery(q, g, "cosine", depth=300)
    # identical, except that the reference's BLAS may round the cosines of two exact duplicates apart:
    # the same vectors at every rank, and duplicates in gallery-index order here
    np.testing.assert_array_equal(g[ranked], g[ref])
    assert (ranked == ref).mean() > 0.99
    dup = np.concatenate([g[:5], g[:5]])
    top2 = rank_topk(q[:20], dup, "cosine", 2)
    assert all(b == a + 5 for a, b in top2.tolist())


@pytest.mark.parametrize("dim", [16, 64])
def test_metrics_via_faiss_equal_the_numpy_reference(dim: int) -> None:
    q, g, q_lab, g_lab = _tied(dim=dim)
    floats = np.concatenate([q, g]).astype(np.float32)
    rows = np.arange(len(floats))
    p = TaskProtocol("t", "photo", rows[: len(q)], rows[len(q) :], q_lab, g_lab)
    emb = EmbeddedRows(rows=rows, floats=floats, valid=np.ones(len(rows), bool), errors={})
    fast, ref = score_task(p, emb), score_task(p, emb, reference=True)
    assert fast.metrics["binary"]["queries_without_match"] > 0
    for kind in ("float", "binary"):
        for name, value in ref.metrics[kind].items():
            assert round(fast.metrics[kind][name], 3) == round(value, 3), (kind, name)
        np.testing.assert_allclose(fast.curves[kind], ref.curves[kind], atol=1e-3)
    # the same numbers (up to float summation order) and the same grids
    for kind in ("float", "binary"):
        assert fast.metrics[kind] == pytest.approx(ref.metrics[kind], rel=1e-12), kind
        np.testing.assert_array_equal(fast.top_rows[kind], ref.top_rows[kind])


def test_partial_rankings_score_like_full_ones() -> None:
    q, g, q_lab, g_lab = _tied(n_gallery=500, n_query=50)
    full = rank_gallery(pack_codes(q), pack_codes(g), "hamming")
    need = required_depth(q_lab, g_lab)
    assert 20 < need < 500  # R (the biggest class) decides
    assert retrieval_metrics(full[:, :need], q_lab, g_lab) == retrieval_metrics(full, q_lab, g_lab)
    with pytest.raises(ValueError, match="full gallery"):
        retrieval_metrics(full[:, : need - 1], q_lab, g_lab)


def _eval(*args: str) -> dict:
    res = runner.invoke(app, ["eval", *args, "--workers", "0", "--batch-size", "8", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _same_metrics(a: dict, b: dict) -> None:
    assert a["tasks"].keys() == b["tasks"].keys()
    for task in a["tasks"]:
        for kind in ("float", "binary"):
            for name, value in a["tasks"][task][kind].items():
                assert round(value, 3) == round(b["tasks"][task][kind][name], 3), (task, kind, name)


def _train(manifest: Path, run: Path, *extra: str) -> Path:
    trained = runner.invoke(
        app,
        [
            "train", "--manifest", str(manifest), "--out", str(run), "--backbone", "tiny-cnn", "--epochs", "1",
            "--image-size", "64", "--embedding-dim", "32", "--batch-size", "8", *extra,
        ],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    return run


def test_onnx_runtime_eval_equals_the_torch_eval(tmp_path: Path) -> None:
    manifest = write_tiny_manifest(tmp_path / "data")
    run = _train(manifest, tmp_path / "run")  # the whole backbone trained: no training feature cache
    ref = _eval(str(run), "--manifest", str(manifest), "--report", str(tmp_path / "t"), "--engine", "torch")
    fast = _eval(str(run), "--manifest", str(manifest), "--report", str(tmp_path / "o"))
    assert ref["embedding_sources"] == {"engine": "torch", "computed": 28}
    src = fast["embedding_sources"]
    assert (src["engine"], src["computed"], src["training_cache"]) == ("onnxruntime", 28, 0)
    _same_metrics(fast, ref)
    with np.load(tmp_path / "t" / "embeddings.npz") as t, np.load(tmp_path / "o" / "embeddings.npz") as o:
        np.testing.assert_allclose(o["floats"], t["floats"], atol=1e-4)
    # a second report of the same model reuses the evaluation feature cache: nothing recomputed
    again = _eval(str(run), "--manifest", str(manifest), "--report", str(tmp_path / "o2"))
    assert again["embedding_sources"]["eval_cache"] == 28 and again["embedding_sources"]["computed"] == 0
    _same_metrics(again, ref)


def test_frozen_backbone_run_reuses_its_training_features(tmp_path: Path) -> None:
    manifest = write_tiny_manifest(tmp_path / "data")
    run = _train(manifest, tmp_path / "run", "--freeze-backbone")
    ref = _eval(str(run), "--manifest", str(manifest), "--report", str(tmp_path / "t"), "--engine", "torch")
    fast = _eval(str(run), "--manifest", str(manifest), "--report", str(tmp_path / "o"))
    src = fast["embedding_sources"]
    assert src["training_cache"] == 20  # the 16 train photos and 4 catalog images: gallery features reused
    assert src["computed"] == fast["images"] - 20 == 8
    _same_metrics(fast, ref)


def test_eval_report_files_are_readable_by_others(tmp_path: Path) -> None:
    manifest = write_tiny_manifest(tmp_path / "data")
    old = os.umask(0o022)
    try:
        _eval("imagenet:tiny-cnn", "--manifest", str(manifest), "--report", str(tmp_path / "r"))
        (tmp_path / "r2").mkdir()
        os.umask(0o077)  # a private umask keeps them private
        _eval("imagenet:tiny-cnn", "--manifest", str(manifest), "--report", str(tmp_path / "r2"))
    finally:
        os.umask(old)
    for name in ("metrics.json", "summary.md", "embeddings.npz", "recall_at_k.png"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == 0o644, name
        assert stat.S_IMODE((tmp_path / "r2" / name).stat().st_mode) == 0o600, name


def test_issue_scale_gallery_equals_the_reference() -> None:
    """The issue's case, 256 queries x 20k 256-bit codes: the faiss top-k is the reference's first ranks."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 256))
    g = pack_codes(centres[rng.integers(0, 40, 20_000)] + 1.5 * rng.normal(size=(20_000, 256)))
    q = pack_codes(centres[rng.integers(0, 40, 256)] + 1.5 * rng.normal(size=(256, 256)))
    np.testing.assert_array_equal(rank_topk(q, g, "hamming", 600), rank_gallery(q, g, "hamming", depth=600))
