"""One contract between the layers: EmbeddingSpec, the generation-name rule, the parent parser, tensor names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from embsdk.errors import ConfigError, InvalidRegistryInput, StoreError, UnsafePath
from embsdk.names import check_generation_name, is_generation_name
from embsdk.spec import (
    CODE_OUTPUT,
    EMBEDDING_OUTPUT,
    INPUT_NAME,
    TENSOR_NAMES,
    EmbeddingSpec,
    InvalidEmbeddingSpec,
)

ROOT = Path(__file__).resolve().parents[2]

# What export.json, and through publish the registry and the stores, hold today (written before EmbeddingSpec).
EXPORT_JSON_SPEC = (
    '{"dim": 64, "bits": 64, "binarization": "layernorm-sign", "threshold": 0.0, '
    '"bit_order": "numpy-packbits-big", "float_dtype": "float32", "code_bytes": 8}'
)
# What run.json and registry.default_embedding_spec held (no code_bytes), and an early registry record.
RUN_JSON_SPEC = {
    "dim": 64,
    "bits": 64,
    "binarization": "layernorm-sign",
    "threshold": 0.0,
    "bit_order": "numpy-packbits-big",
    "float_dtype": "float32",
}
EARLY_REGISTRY_SPEC = {"bits": 64, "dim": 64}


# ---------------------------------------------------------------------------------------------- round trips
def test_existing_records_load_and_serialize_to_the_same_bytes() -> None:
    spec = EmbeddingSpec.from_dict(json.loads(EXPORT_JSON_SPEC))
    assert json.dumps(spec.to_dict()) == EXPORT_JSON_SPEC  # same keys, order, values: byte-compatible
    assert spec == EmbeddingSpec.from_dict(RUN_JSON_SPEC) == EmbeddingSpec.from_dict(EARLY_REGISTRY_SPEC)
    assert spec == EmbeddingSpec(bits=64) and hash(spec) == hash(EmbeddingSpec(bits=64))
    assert EmbeddingSpec.from_dict(RUN_JSON_SPEC).to_dict() == {**RUN_JSON_SPEC, "code_bytes": 8}
    assert (spec.code_bytes, spec.dim, spec.float_dim, spec.tensor_names) == (8, 64, 64, TENSOR_NAMES)
    assert EmbeddingSpec.coerce(spec) is spec and EmbeddingSpec.coerce(RUN_JSON_SPEC) == spec


def test_default_embedding_spec_and_trainer_spec_are_the_one_serialization() -> None:
    from registry import default_embedding_spec

    assert default_embedding_spec(64) == EmbeddingSpec(bits=64).to_dict() == json.loads(EXPORT_JSON_SPEC)
    assert default_embedding_spec(256, dim=8) == EmbeddingSpec(bits=256, dim=8).to_dict()
    pytest.importorskip("torch")
    from trainer.model import embedding_spec

    assert embedding_spec(64) == json.loads(EXPORT_JSON_SPEC)


def test_unknown_keys_and_non_standard_tensor_names_round_trip() -> None:
    d = {**RUN_JSON_SPEC, "note": ["kept"], "input_name": "pixels"}
    spec = EmbeddingSpec.from_dict(d)
    assert spec.input_name == "pixels" and spec.extra == (("note", ["kept"]),)
    assert EmbeddingSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict() == {**RUN_JSON_SPEC, "code_bytes": 8, "input_name": "pixels", "note": ["kept"]}
    assert spec != EmbeddingSpec(bits=64)  # a renamed tensor is another contract
    hash(spec)  # a list in extra does not make the spec unhashable


def test_exporter_builds_the_spec_once(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from torch import nn

    from embsdk.preprocess import InputSpec
    from trainer.export import export_model

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 16 * 16, 64), nn.LayerNorm(64, elementwise_affine=False)
    )
    pixels = [np.random.default_rng(i).normal(size=(3, 16, 16)).astype(np.float32) for i in range(3)]
    info = export_model(
        model.eval(), tmp_path / "a", input_spec=InputSpec(image_size=16), parity_images=pixels
    )
    assert json.dumps(info["embedding_spec"]) == EXPORT_JSON_SPEC
    written = json.loads((tmp_path / "a" / "export.json").read_text())["embedding_spec"]
    assert json.dumps(written) == EXPORT_JSON_SPEC
    assert [t["name"] for t in info["inputs"] + info["outputs"]] == list(TENSOR_NAMES)
    # the run's spec passes through unchanged; one for another model is refused before anything is written
    again = export_model(
        model,
        tmp_path / "b",
        input_spec=InputSpec(image_size=16),
        parity_images=pixels,
        embedding_spec=RUN_JSON_SPEC,
    )
    assert json.dumps(again["embedding_spec"]) == EXPORT_JSON_SPEC
    from embsdk.errors import ExportError

    with pytest.raises(ExportError, match="dim 128"):
        export_model(
            model,
            tmp_path / "c",
            input_spec=InputSpec(image_size=16),
            parity_images=pixels,
            embedding_spec=EmbeddingSpec(bits=128),
        )
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"bits": 12}, "positive multiple of 8"),
        ({"bits": 0}, "positive multiple of 8"),
        ({"bits": -8}, "positive multiple of 8"),
        ({"bits": True}, "positive multiple of 8"),
        ({"bits": "256"}, "positive multiple of 8"),
        ({"dim": 64}, "no 'bits'"),
        ({"bits": 64, "dim": 0}, "dim must be a positive integer"),
        ({"bits": 64, "dim": 6.5}, "dim must be a positive integer"),
        ({"bits": 64, "bit_order": "little"}, "bit_order"),
        ({"bits": 64, "binarization": "sign"}, "binarization"),
        ({"bits": 64, "threshold": float("nan")}, "threshold"),
        ({"bits": 64, "threshold": "0"}, "threshold"),
        ({"bits": 64, "float_dtype": "int8"}, "float_dtype"),
        ({"bits": 64, "code_bytes": 9}, "code_bytes 9 disagrees"),
        ({"bits": 64, "code_output": "embedding"}, "tensor names"),
        ({"bits": 64, "input_name": ""}, "tensor names"),
        ([("bits", 64)], "expected a mapping"),
    ],
)
def test_invalid_specs_are_refused_with_one_typed_line(spec: object, why: str) -> None:
    with pytest.raises(InvalidEmbeddingSpec, match=re.escape(why)) as info:
        EmbeddingSpec.from_dict(spec)  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidRegistryInput) and isinstance(info.value, StoreError)
    assert "\n" not in str(info.value) and str(info.value).startswith("Invalid embedding spec: ")


def test_registry_and_store_refuse_invalid_specs_and_compare_specs_as_specs(tmp_path: Path) -> None:
    from registry import Registry

    with Registry(f"sqlite:///{tmp_path / 'r.db'}", artifact_dir=tmp_path / "a") as reg:
        with pytest.raises(InvalidRegistryInput, match="bit_order"):
            reg.register("u-v1", embedding_spec={"bits": 64, "bit_order": "little"})
        assert reg.register("u-v1", embedding_spec=EmbeddingSpec(bits=64)).embedding_spec == json.loads(
            EXPORT_JSON_SPEC
        )
        assert reg.register("u-v2", embedding_spec=EARLY_REGISTRY_SPEC).embedding_spec == EARLY_REGISTRY_SPEC
        assert reg.get("u-v2").spec == EmbeddingSpec(bits=64)

    from embsdk.store import StoreWriter

    with pytest.raises(InvalidEmbeddingSpec, match="multiple of 8"):
        StoreWriter(tmp_path / "store", "g1", {"bits": 12})
    with StoreWriter(tmp_path / "store", "g1", EARLY_REGISTRY_SPEC) as w:
        w.upsert(np.arange(3), np.zeros((3, 8), np.uint8))
        w.commit()
    with StoreWriter(
        tmp_path / "store", "g1", json.loads(EXPORT_JSON_SPEC)
    ):  # the same contract, spelled out
        pass
    with pytest.raises(StoreError, match="spec never changes"):
        StoreWriter(tmp_path / "store", "g1", {"bits": 64, "dim": 32})


# ---------------------------------------------------------------------------------------------- names
GOOD_NAMES = ["unified-v1", "a", "A.b_c-9", "0x", "x" * 128, "unified-v2.1"]
BAD_NAMES = ["", "-a", ".a", "..", "a+b", "a/b", "a b", "a\n", "x" * 129, "ü", "a:b"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_one_name_rule_accepts(name: str, tmp_path: Path) -> None:
    from embsdk.store._manifest import generation_root
    from registry.validation import check_name
    from triton_models.config import check_name as triton_check_name

    assert is_generation_name(name) and check_generation_name(name) == name
    assert check_name(name) == name and triton_check_name(name) == name
    assert generation_root(tmp_path, name) == tmp_path / name


@pytest.mark.parametrize("name", [*BAD_NAMES, None, 7])
def test_one_name_rule_refuses_everywhere(name: object, tmp_path: Path) -> None:
    from embsdk.store._manifest import generation_root
    from registry.validation import check_name
    from triton_models.config import check_name as triton_check_name

    assert not is_generation_name(name)
    with pytest.raises(InvalidRegistryInput, match="Invalid generation name"):
        check_generation_name(name)
    with pytest.raises(InvalidRegistryInput):
        check_name(name)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        triton_check_name(name)  # type: ignore[arg-type]
    if isinstance(name, str):
        with pytest.raises(UnsafePath):
            generation_root(tmp_path, name)


# ---------------------------------------------------------------------------------------------- parents
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unified-v1", ("unified-v1", "fine-tuned-from")),
        ("unified-v1:fine-tuned-from", ("unified-v1", "fine-tuned-from")),
        ("unified-v1:replaces", ("unified-v1", "replaces")),
        ("u.v-2:distilled-from", ("u.v-2", "distilled-from")),
        ("u-v0:compatible-with", ("u-v0", "compatible-with")),
    ],
)
def test_parent_spec_parses(text: str, expected: tuple[str, str]) -> None:
    from registry.validation import parse_parent_spec

    assert parse_parent_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("unified-v1:cousin-of", "lineage kind"),
        ("unified-v1:", "empty kind"),
        (":replaces", "Invalid parent generation name"),
        ("a+b:replaces", "Invalid parent generation name"),
        ("a:replaces:x", "lineage kind"),
    ],
)
def test_parent_spec_refuses(text: str, why: str) -> None:
    from registry.validation import parse_parent_spec

    with pytest.raises(InvalidRegistryInput, match=why):
        parse_parent_spec(text)


def test_register_accepts_parent_specs(tmp_path: Path) -> None:
    from registry import Registry

    with Registry(f"sqlite:///{tmp_path / 'r.db'}", artifact_dir=tmp_path / "a") as reg:
        reg.register("u-v1")
        child = reg.register("u-v2", parents=["u-v1:replaces"])
        assert [(e.parent, e.kind) for e in child.parents] == [("u-v1", "replaces")]
        with pytest.raises(InvalidRegistryInput, match="lineage kind"):
            reg.register("u-v3", parents=["u-v1:cousin-of"])


# ---------------------------------------------------------------------------------------------- tensor names
# Calls that name an ONNX/Triton tensor; the names must come from embsdk.spec, not be spelled out.
_TENSOR_CALL = re.compile(
    r"""(InferInput|InferRequestedOutput|as_numpy|get_input_tensor_by_name\([^,()]+,|\.run\(\s*\[)\s*\(?\s*["']"""
    r"""|(input_names|output_names)\s*=\s*\[\s*["']|name:\s*\\?"(image|embedding|code)\\?\""""
)
_KNOWN = {
    # runs inside Triton's python-backend stub, without embsdk on its path; see the issue-10 report
    "triton_models/python_backend/model.py",
    # the evaluator's own float-only ONNX graph (input "image", output "out"), not the product graph
    "trainer/evaluate/embed.py",
}


def test_tensor_names_are_not_hard_coded_outside_embsdk_spec() -> None:
    assert (INPUT_NAME, EMBEDDING_OUTPUT, CODE_OUTPUT) == ("image", "embedding", "code")
    offenders = []
    for folder in ("embsdk", "trainer", "registry", "triton_models", "cli", "publishing"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "embsdk/spec.py" or rel in _KNOWN:
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if _TENSOR_CALL.search(line):
                    offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "tensor names spelled out instead of taken from embsdk.spec:\n" + "\n".join(
        offenders
    )


def test_the_tensor_name_scan_finds_a_spelled_out_name() -> None:
    """The scan above can fail: each form it looks for is caught."""
    for line in (
        'inp = self._tc.InferInput("image", list(batch.shape), dtype)',
        'emb, code = sess.run(["embedding", "code"], {"image": batch})',
        'result.as_numpy("code")',
        'torch.onnx.export(g, x, p, input_names=["image"])',
        "lines.append('input [ { name: \"image\", data_type: TYPE_FP32 } ]')",
        'pb_utils.get_input_tensor_by_name(r, "image")',
    ):
        assert _TENSOR_CALL.search(line), line
    assert not _TENSOR_CALL.search('frame["image"]') and not _TENSOR_CALL.search(
        "sess.run(outs, {inp: batch})"
    )
