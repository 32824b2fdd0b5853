"""Retrieval metrics against hand-computed references, and Hamming ranking against embsdk.codes.hamming."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embsdk.codes import hamming, pack_codes
from trainer.evaluate.metrics import (
    hamming_matrix,
    rank_cosine,
    rank_gallery,
    rank_hamming,
    recall_curve,
    retrieval_metrics,
)

GALLERY = ["a", "b", "a", "c", "a"]


def test_metrics_match_hand_computed_example() -> None:
    # query 0 (label a): ranks gallery 1,0,3,2,4 -> hits 0,1,0,1,1; R=3
    # query 1 (label b): ranks gallery 1,... -> hit at rank 1; R=1
    # query 2 (label z): no z in the gallery -> left out
    ranked = np.array([[1, 0, 3, 2, 4], [1, 2, 0, 3, 4], [0, 1, 2, 3, 4]])
    m = retrieval_metrics(ranked, ["a", "b", "z"], GALLERY, ks=(1, 2, 5), precision_at=2)
    assert m["queries"] == 2 and m["queries_without_match"] == 1
    assert m["R@1"] == pytest.approx((0 + 1) / 2)
    assert m["R@2"] == pytest.approx(1.0)
    assert m["R@5"] == pytest.approx(1.0)
    # P@2: query 0 has 1 hit in top 2, query 1 has 1 -> (1/2 + 1/2) / 2
    assert m["P@2"] == pytest.approx(0.5)
    # mAP@R: query 0: (1/3) * (precision@2 = 1/2) = 1/6 (rank 4 and 5 are beyond R=3); query 1: 1
    assert m["mAP@R"] == pytest.approx((1 / 6 + 1.0) / 2)


def test_map_at_r_perfect_and_worst() -> None:
    perfect = np.array([[0, 2, 4, 1, 3]])
    worst = np.array([[1, 3, 0, 2, 4]])
    assert retrieval_metrics(perfect, ["a"], GALLERY)["mAP@R"] == pytest.approx(1.0)
    assert retrieval_metrics(worst, ["a"], GALLERY)["mAP@R"] == pytest.approx((1 / 3) * (1 / 3))


def test_no_answerable_query_gives_nan() -> None:
    m = retrieval_metrics(np.array([[0, 1, 2, 3, 4]]), ["q"], GALLERY)
    assert m["queries"] == 0 and math.isnan(m["R@1"])


def test_partial_ranking_is_rejected() -> None:
    with pytest.raises(ValueError, match="full gallery"):
        retrieval_metrics(np.array([[0, 1]]), ["a"], GALLERY)


def test_cosine_ranking_hand_example() -> None:
    gallery = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    query = np.array([[1.0, 0.2]])
    # cosines: 0.981, 0.196, 0.833, -0.981
    assert rank_cosine(query, gallery).tolist() == [[0, 2, 1, 3]]
    assert rank_gallery(query, gallery, "cosine", depth=2).tolist() == [[0, 2]]


def test_hamming_matches_reference_and_breaks_ties_by_index() -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(0, 256, size=(7, 4), dtype=np.uint8)
    g = rng.integers(0, 256, size=(300, 4), dtype=np.uint8)
    ref = hamming(q, g)
    np.testing.assert_array_equal(hamming_matrix(q, g), ref)
    many = rng.integers(
        0, 256, size=(600, 4), dtype=np.uint8
    )  # more queries than one block: every block is filled
    np.testing.assert_array_equal(hamming_matrix(many, g[:20]), hamming(many, g[:20]))
    expected = np.array([sorted(range(g.shape[0]), key=lambda j, row=row: (row[j], j)) for row in ref])
    np.testing.assert_array_equal(rank_hamming(q, g), expected)
    # duplicated gallery codes: the lower index always comes first
    dup = np.repeat(g[:3], 2, axis=0)
    ranked = rank_hamming(dup[:1], dup)
    assert ranked[0, :2].tolist() == [0, 1]


def test_hamming_rank_of_packed_floats() -> None:
    gallery = np.array(
        [[1, 1, -1, -1, 1, 1, 1, 1], [-1, -1, -1, -1, -1, -1, -1, -1], [1, 1, 1, -1, 1, 1, 1, 1]], float
    )
    query = np.array([[1, 1, 1, 1, 1, 1, 1, 1]], float)
    # distances: 2, 8, 1
    assert rank_hamming(pack_codes(query), pack_codes(gallery)).tolist() == [[2, 0, 1]]
    with pytest.raises(ValueError, match="bytes"):
        hamming_matrix(np.zeros((1, 2), np.uint8), np.zeros((1, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown metric"):
        rank_gallery(query, gallery, "l2")  # type: ignore[arg-type]


def test_recall_curve_is_monotone_and_matches_metrics() -> None:
    ranked = np.array([[1, 0, 3, 2, 4], [3, 0, 1, 2, 4]])
    curve = recall_curve(ranked, ["a", "b"], GALLERY, max_k=5)
    assert curve.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]  # a found at rank 2, b at rank 3
    m = retrieval_metrics(ranked, ["a", "b"], GALLERY, ks=(1, 2, 3))
    assert [m["R@1"], m["R@2"], m["R@3"]] == [curve[0], curve[1], curve[2]]
