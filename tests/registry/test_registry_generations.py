"""Registering and reading generations: fields, defaults, immutability, attachments, metrics, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from embsdk.errors import (
    ArtifactSourceNotFound,
    DuplicateGeneration,
    GenerationNotFound,
    ImmutableGeneration,
    InvalidRegistryInput,
    UnsafePath,
)
from embsdk.preprocess import InputSpec
from registry import DatasetRef, MetricKey, Registry, default_embedding_spec
from registry.artifacts import sha256_file


def test_register_records_everything(reg: Registry, make_file, tmp_path: Path) -> None:
    model = make_file("model.onnx")
    manifest = make_file("grocery-train.csv", b"path,label\na.jpg,1\nb.jpg,2\nc.jpg,1\n")
    spec = default_embedding_spec(256, dim=512)
    gen = reg.register(
        "unified-v1",
        artifacts=[model, ("config.json", make_file("cfg.json", b"{}"))],
        datasets=[manifest, DatasetRef("grocery-test", "ab" * 32, 10, role="eval")],
        embedding_spec=spec,
        input_spec=InputSpec(image_size=160),
        training_config={"lr": 0.01, "epochs": 3},
        code_version="git:abc",
        description="first",
        metrics={"coarse/grocery-test/r@1/binary": 0.61, "coarse/grocery-test/r@1/float": 0.65},
    )
    assert (gen.name, gen.family, gen.status, gen.created_by) == (
        "unified-v1",
        "unified",
        "candidate",
        "tester",
    )
    assert gen.embedding_spec == spec and gen.bits == 256
    assert gen.input_spec == InputSpec(image_size=160).to_dict()
    assert gen.training_config == {"lr": 0.01, "epochs": 3}
    assert gen.code_version == "git:abc" and gen.description == "first"
    assert gen.created_at.tzinfo is not None
    assert {a.name: a.sha256 for a in gen.artifacts} == {
        "model.onnx": sha256_file(model),
        "config.json": sha256_file(tmp_path / "inputs" / "cfg.json"),
    }
    assert gen.artifact("model.onnx").role == "model" and gen.artifact("config.json").role == "config"
    train = next(d for d in gen.datasets if d.role == "train")
    assert (train.name, train.sha256, train.rows) == ("grocery-train", sha256_file(manifest), 3)
    assert gen.metrics["coarse/grocery-test/r@1/binary"] == pytest.approx(0.61)
    assert reg.get("unified-v1") == gen
    assert reg.resolve("unified-v1") == gen
    assert gen.to_dict()["created_at"] == gen.created_at.isoformat()


def test_defaults_family_and_code_version(reg: Registry) -> None:
    a = reg.register("flashlight-v12")
    b = reg.register("experimental")
    assert a.family == "flashlight" and b.family == "experimental"
    assert a.code_version.startswith(("git:", "embsdk=="))
    assert reg.register("x-v1", family="custom").family == "custom"


def test_code_version_outside_git_is_the_embsdk_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import embsdk
    from registry import _generations

    monkeypatch.setattr(_generations, "_git_commit", lambda _cwd: None)
    assert _generations.default_code_version() == f"embsdk=={embsdk.__version__}"


def test_list_filters_by_status_and_family(reg: Registry) -> None:
    for n in ("unified-v1", "unified-v2", "flashlight-v1"):
        reg.register(n)
    reg.promote("unified-v2", "staging")
    assert [g.name for g in reg.list()] == ["unified-v1", "unified-v2", "flashlight-v1"]
    assert [g.name for g in reg.list("staging")] == ["unified-v2"]
    assert [g.name for g in reg.list(family="unified")] == ["unified-v1", "unified-v2"]
    with pytest.raises(InvalidRegistryInput, match="Unknown status"):
        reg.list("bogus")


def test_duplicate_name_is_refused_and_nothing_changes(reg: Registry, make_file) -> None:
    reg.register("unified-v1", artifacts=[make_file("a.onnx")], description="original")
    with pytest.raises(DuplicateGeneration, match="already exists"):
        reg.register("unified-v1", artifacts=[make_file("b.onnx")], description="impostor")
    gen = reg.get("unified-v1")
    assert gen.description == "original" and [a.name for a in gen.artifacts] == ["a.onnx"]


def test_unknown_names(reg: Registry) -> None:
    with pytest.raises(GenerationNotFound, match="emb registry list"):
        reg.get("nope")
    with pytest.raises(GenerationNotFound):
        reg.resolve("nope")
    with pytest.raises(GenerationNotFound):
        reg.register("child-v1", parents=[("nope", "fine-tuned-from")])
    assert reg.list() == []  # the failed registration left nothing


@pytest.mark.parametrize("bad", ["", "-lead", "a b", "x" * 200, "../up", "a/b", "ünï"])
def test_bad_generation_names(reg: Registry, bad: str) -> None:
    with pytest.raises(InvalidRegistryInput):
        reg.register(bad)


def test_bad_input_is_refused_before_anything_is_stored(reg: Registry, make_file) -> None:
    model = make_file("model.onnx")
    with pytest.raises(InvalidRegistryInput, match="metric key"):
        reg.register("u-v1", artifacts=[model], metrics={"bad key": 1.0})
    with pytest.raises(InvalidRegistryInput, match="finite"):
        reg.register("u-v1", artifacts=[model], metrics={"a/b/c/d": float("nan")})
    with pytest.raises(InvalidRegistryInput, match="multiple of 8"):
        reg.register("u-v1", embedding_spec={"bits": 12})
    with pytest.raises(InvalidRegistryInput, match="lineage kind"):
        reg.register("u-v1", parents=[("x", "cousin-of")])
    with pytest.raises(InvalidRegistryInput, match="unique"):
        reg.register("u-v1", artifacts=[model, model])
    with pytest.raises(InvalidRegistryInput, match="JSON"):
        reg.register("u-v1", training_config={"f": object()})
    with pytest.raises(ArtifactSourceNotFound):
        reg.register("u-v1", artifacts=[model.parent / "missing.onnx"])
    with pytest.raises(UnsafePath):
        reg.register("u-v1", artifacts=[("../escape.onnx", model)])
    assert reg.list() == []
    assert not reg.store.blob_root.exists() or not any(reg.store.iter_blobs())


def test_metric_key_parsed_view() -> None:
    k = MetricKey.parse("coarse/grocery-test/r@1/binary")
    assert (k.task, k.dataset, k.metric, k.variant) == ("coarse", "grocery-test", "r@1", "binary")
    assert MetricKey.parse("map@r").metric == "map@r"
    info_keys = {k.key: k for k in _info_with_metrics().metric_keys}
    assert info_keys["coarse/sop/map@r/float"].dataset == "sop"
    assert MetricKey.parse("fine/sop/map@r").variant is None


def test_add_metrics_after_publish_and_compare(reg: Registry) -> None:
    reg.register("u-v1", metrics={"c/t/r@1/binary": 0.5}, embedding_spec=default_embedding_spec(256))
    reg.register("u-v2", metrics={"c/t/r@1/binary": 0.6}, embedding_spec=default_embedding_spec(128))
    reg.promote("u-v1", "staging")
    updated = reg.add_metrics("u-v1", {"c/t/map@r/binary": 0.3, "c/t/r@1/binary": 0.55})
    assert updated.metrics == {"c/t/map@r/binary": pytest.approx(0.3), "c/t/r@1/binary": pytest.approx(0.55)}
    cmp = reg.compare("u-v1", "u-v2")
    rows = {k: (a, b, d) for k, a, b, d in cmp.metrics}
    assert rows["c/t/r@1/binary"][2] == pytest.approx(0.05)
    assert rows["c/t/map@r/binary"] == (pytest.approx(0.3), None, None)
    assert cmp.spec_differences["bits"] == (256, 128)
    assert cmp.to_dict()["metrics"][0]["key"] == "c/t/map@r/binary"


def test_creation_artifacts_are_immutable_attachments_append(reg: Registry, make_file) -> None:
    reg.register("u-v1", artifacts=[make_file("model.onnx")])
    with pytest.raises(ImmutableGeneration, match="model.onnx"):
        reg.add_artifact("u-v1", make_file("other.onnx"), artifact_name="model.onnx")
    with pytest.raises(ImmutableGeneration, match="role 'model'"):
        reg.add_artifact("u-v1", make_file("new.onnx"), role="model")
    first = reg.add_artifact(
        "u-v1", make_file("shard-0.npy"), artifact_name="store/shard-0.npy", role="store-shard"
    )
    again = reg.add_artifact(
        "u-v1",
        reg.artifact_path("u-v1", "store/shard-0.npy"),
        artifact_name="store/shard-0.npy",
        role="store-shard",
    )
    assert again.sha256 == first.sha256  # same bytes: no new history row
    second = reg.add_artifact(
        "u-v1", make_file("shard-0b.npy"), artifact_name="store/shard-0.npy", role="store-shard"
    )
    gen = reg.get("u-v1")
    shard_rows = [a for a in gen.artifacts if a.name == "store/shard-0.npy"]
    assert [(a.sha256, a.current) for a in shard_rows] == [(first.sha256, False), (second.sha256, True)]
    assert sha256_file(reg.artifact_path("u-v1", "store/shard-0.npy", verify=True)) == second.sha256
    with pytest.raises(InvalidRegistryInput, match="has no artifact"):
        reg.artifact_path("u-v1", "nope.bin")
    reg.retire("u-v1")
    with pytest.raises(ImmutableGeneration) as refused:
        reg.add_artifact("u-v1", make_file("late.json"))
    assert (
        str(refused.value) == "Generation 'u-v1' is retired: it takes no new attachments."
    )  # one clear sentence


def test_same_bytes_in_two_generations_share_one_blob(reg: Registry, make_file) -> None:
    model = make_file("model.onnx", b"identical")
    a = reg.register("u-v1", artifacts=[model])
    b = reg.register("u-v2", artifacts=[model])
    assert a.artifacts[0].sha256 == b.artifacts[0].sha256
    assert len(list(reg.store.iter_blobs())) == 1


def test_alias_and_generation_names_cannot_collide(reg: Registry) -> None:
    reg.register("u-v1")
    reg.set_alias("production", "u-v1")
    with pytest.raises(InvalidRegistryInput, match="already an alias"):
        reg.register("production")
    with pytest.raises(InvalidRegistryInput, match="generation's name"):
        reg.set_alias("u-v1", "u-v1")


def _info_with_metrics():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from registry import GenerationInfo

    return GenerationInfo(
        "u-v1", "u", "candidate", datetime.now(UTC), "t", "", "x", None, None, None,
        metrics={"coarse/sop/map@r/float": 0.1},
    )  # fmt: skip


@pytest.mark.parametrize("bits", [0, -8, 12, True])
def test_spec_bits_must_be_a_positive_multiple_of_8(reg: Registry, make_file, bits: int) -> None:
    """bits 0 used to register a generation with a zero-length code (or, via the CLI, with no spec at all)."""
    with pytest.raises(InvalidRegistryInput, match="positive multiple of 8"):
        reg.register("u-v1", artifacts=[make_file("model.onnx")], embedding_spec={"bits": bits, "dim": 8})
    with pytest.raises(InvalidRegistryInput, match="positive multiple of 8"):
        default_embedding_spec(bits)
    assert reg.list() == [] and reg.fsck().blobs_checked == 0  # nothing registered, no bytes stored
