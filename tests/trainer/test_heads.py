"""Normalized-softmax head against a hand-computed reference; class subsampling; multi-task masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.heads import IGNORE, MultiTaskLoss, NormSoftmaxHead, candidate_classes


def _reference_loss(
    emb: np.ndarray, proxies: np.ndarray, labels: np.ndarray, temperature: float
) -> np.ndarray:
    """Cross-entropy of cos(emb, proxy) / T, written out with numpy (float64)."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    w = proxies / np.linalg.norm(proxies, axis=1, keepdims=True)
    logits = e @ w.T / temperature
    logits -= logits.max(axis=1, keepdims=True)
    log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_prob[np.arange(len(labels)), labels]


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_loss_matches_hand_computed_reference(temperature: float) -> None:
    torch.manual_seed(0)
    head = NormSoftmaxHead(7, 16, temperature=temperature)
    emb, labels = torch.randn(5, 16, dtype=torch.float64), torch.tensor([0, 3, 3, 6, 1])
    head = head.double()
    got = head(emb, labels).detach().numpy()
    want = _reference_loss(emb.numpy(), head.proxies.detach().numpy(), labels.numpy(), temperature)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_subsampled_loss_equals_full_loss_when_the_sample_covers_all_classes() -> None:
    torch.manual_seed(1)
    full = NormSoftmaxHead(6, 8, sample_negatives=None).double()
    sub = NormSoftmaxHead(6, 8, sample_negatives=500).double()  # 500 draws over 6 classes cover all of them
    sub.load_state_dict(full.state_dict())
    emb, labels = torch.randn(4, 8, dtype=torch.float64), torch.tensor([5, 0, 2, 2])
    torch.testing.assert_close(sub(emb, labels), full(emb, labels), rtol=1e-12, atol=1e-12)


def test_subsampled_loss_is_cross_entropy_over_positives_plus_sampled_negatives() -> None:
    num_classes, k = 1000, 20
    head = NormSoftmaxHead(num_classes, 8, sample_negatives=k).double()
    emb, labels = torch.randn(6, 8, dtype=torch.float64), torch.tensor([3, 3, 900, 17, 17, 512])
    torch.manual_seed(7)
    got = head(emb, labels).detach().numpy()
    torch.manual_seed(7)
    classes = candidate_classes(labels, num_classes, k).numpy()
    assert set(labels.tolist()) <= set(classes.tolist()) and len(classes) <= 4 + k
    local = np.searchsorted(classes, labels.numpy())
    want = _reference_loss(emb.numpy(), head.proxies.detach().numpy()[classes], local, head.temperature)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_subsampling_touches_only_the_sampled_proxies() -> None:
    head = NormSoftmaxHead(10_000, 8, sample_negatives=32)
    emb, labels = torch.randn(4, 8), torch.tensor([1, 2, 3, 4])
    head(emb, labels).mean().backward()
    touched = (head.proxies.grad.abs().sum(dim=1) > 0).sum().item()
    assert 4 <= touched <= 36


def test_eval_mode_scores_all_classes() -> None:
    head = NormSoftmaxHead(5, 8, sample_negatives=1).eval()
    full = NormSoftmaxHead(5, 8)
    full.load_state_dict(head.state_dict())
    emb, labels = torch.randn(3, 8), torch.tensor([0, 1, 4])
    torch.testing.assert_close(head(emb, labels), full(emb, labels))


def test_multitask_rows_without_label_get_exactly_zero_gradient() -> None:
    torch.manual_seed(0)
    loss = MultiTaskLoss({"a": NormSoftmaxHead(3, 8), "b": NormSoftmaxHead(4, 8)})
    emb = torch.randn(6, 8, requires_grad=True)
    labels = {
        "a": torch.tensor([0, 1, IGNORE, 2, IGNORE, IGNORE]),
        "b": torch.tensor([IGNORE, 3, IGNORE, 0, IGNORE, 1]),
    }
    total, per_task = loss(emb, labels)
    total.backward()
    assert torch.equal(emb.grad[[2, 4]], torch.zeros(2, 8))  # no label for any task
    assert emb.grad[[0, 1, 3, 5]].abs().sum(dim=1).gt(0).all()
    # a row labeled only for task a gets no gradient through task b's loss (task a masked out entirely)
    emb.grad = None
    only_b = {"a": torch.full_like(labels["a"], IGNORE), "b": labels["b"]}
    total_b, per_task = loss(emb, only_b)
    total_b.backward()
    assert torch.equal(emb.grad[0], torch.zeros(8))
    assert torch.equal(emb.grad[[0, 2, 4]], torch.zeros(3, 8))
    assert emb.grad[[1, 3, 5]].abs().sum(dim=1).gt(0).all()
    per_task_b = loss.head("b")(emb[[1, 3, 5]], labels["b"][[1, 3, 5]]).mean()
    torch.testing.assert_close(per_task["b"], per_task_b.detach())
    torch.testing.assert_close(total_b, per_task_b)  # the unlabeled task a adds exactly 0


def test_multitask_sums_weighted_task_means() -> None:
    torch.manual_seed(0)
    heads = {"a": NormSoftmaxHead(3, 8), "b": NormSoftmaxHead(4, 8)}
    emb = torch.randn(5, 8)
    la, lb = torch.tensor([0, 1, IGNORE, 2, 0]), torch.tensor([IGNORE, 3, 1, IGNORE, IGNORE])
    total, per = MultiTaskLoss(heads, {"a": 2.0, "b": 0.5})(emb, {"a": la, "b": lb})
    want_a = heads["a"](emb[[0, 1, 3, 4]], la[[0, 1, 3, 4]]).mean()
    want_b = heads["b"](emb[[1, 2]], lb[[1, 2]]).mean()
    torch.testing.assert_close(total, 2.0 * want_a + 0.5 * want_b)
    torch.testing.assert_close(per["a"], want_a)


def test_task_without_labels_in_the_batch_contributes_zero() -> None:
    loss = MultiTaskLoss({"a": NormSoftmaxHead(3, 8), "b": NormSoftmaxHead(4, 8)})
    emb = torch.randn(2, 8, requires_grad=True)
    total, per = loss(emb, {"a": torch.tensor([0, 1]), "b": torch.tensor([IGNORE, IGNORE])})
    assert float(per["b"]) == 0.0
    total.backward()
    assert torch.equal(loss.head("b").proxies.grad, torch.zeros(4, 8))


def test_task_names_that_clash_with_module_attributes() -> None:
    loss = MultiTaskLoss(
        {"half": NormSoftmaxHead(2, 8), "train": NormSoftmaxHead(2, 8), "x.y": NormSoftmaxHead(2, 8)}
    )
    assert loss.tasks == ["half", "train", "x.y"]
    assert "heads.task_x_y.proxies" in loss.state_dict()


def test_candidate_classes_are_positives_plus_exactly_k_distinct_negatives() -> None:
    torch.manual_seed(0)
    labels = torch.tensor([5, 5, 70_000, 3])
    classes = candidate_classes(labels, 200_000, 100)
    assert classes.numel() == 3 + 100 and torch.equal(classes, torch.unique(classes))
    assert set(labels.tolist()) <= set(classes.tolist())
    assert torch.equal(candidate_classes(labels, 100_000 // 1000, 97), torch.arange(100))  # k covers the rest
    hits = torch.zeros(50)
    for _ in range(400):  # negatives are uniform over the non-positive classes
        hits[candidate_classes(torch.tensor([0]), 50, 10)] += 1
    assert hits[0] == 400 and (hits[1:] / 400 - 10 / 49).abs().max() < 0.08


def test_binary_aware_loss_adds_the_sign_term_with_a_straight_through_gradient() -> None:
    torch.manual_seed(0)
    heads = {"a": NormSoftmaxHead(5, 8).double(), "b": NormSoftmaxHead(3, 8).double()}
    labels = {"a": torch.tensor([0, 4, IGNORE, 2]), "b": torch.tensor([1, IGNORE, 0, 2])}
    emb = torch.randn(4, 8, dtype=torch.double, requires_grad=True)
    plain = MultiTaskLoss(heads)
    aware = MultiTaskLoss(heads, binary_weight=0.5)

    total, per_task = aware(emb, labels)
    ref = plain(emb, labels)[0] + 0.5 * plain(torch.sign(emb), labels)[0]
    torch.testing.assert_close(total, ref)
    torch.testing.assert_close(per_task["a"], plain(emb, labels)[1]["a"])  # logged losses stay the float ones

    # straight-through: d total / d emb = d plain(emb) + 0.5 * d plain(s) / d s evaluated at s = sign(emb)
    (g,) = torch.autograd.grad(total, emb)
    s = torch.sign(emb).detach().requires_grad_(True)
    (g_sign,) = torch.autograd.grad(plain(s, labels)[0], s)
    (g_float,) = torch.autograd.grad(plain(emb, labels)[0], emb)
    torch.testing.assert_close(g, g_float + 0.5 * g_sign)
    assert g_sign.abs().sum() > 0


def test_emb_train_with_binary_loss_weight(tmp_path) -> None:
    from _train_data import write_images_manifest

    from embsdk.errors import ConfigError
    from trainer.config import TrainConfig
    from trainer.loop import train

    with pytest.raises(ConfigError, match="binary_loss_weight"):
        TrainConfig(manifest="m.csv", out=str(tmp_path / "x"), binary_loss_weight=-1.0).check()
    manifest = write_images_manifest(tmp_path / "data", per_class=4, test_per_class=0)
    cfg = TrainConfig(
        manifest=str(manifest),
        out=str(tmp_path / "run"),
        backbone="tiny-cnn",
        image_size=32,
        batch_size=8,
        num_workers=0,
        embedding_dim=32,
        epochs=1,
        binary_loss_weight=1.0,
    )
    summary = train(cfg, progress=False)
    assert summary["status"] == "finished"
    import yaml

    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["binary_loss_weight"] == 1.0
