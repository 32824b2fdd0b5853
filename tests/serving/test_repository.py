"""The Triton repository generator: configs Triton's schema accepts, version numbering, crash safety."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from embsdk.errors import ConfigError, DuplicateGeneration, ExportError

pytest.importorskip("tritonclient")
from tritonclient.grpc import model_config_pb2

KIND = model_config_pb2.ModelInstanceGroup.Kind.Value  # name -> enum number


def _repo(tmp_path: Path):
    from triton_models.repository import ModelRepository

    return ModelRepository(tmp_path / "repo")


def _named(exports: list[Path], tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for src, name in zip(exports, names):
        dst = tmp_path / "named" / name
        if not dst.exists():
            shutil.copytree(src, dst)
        out.append(dst)
    return out


def test_two_generations_two_versions(tiny_exports: list[Path], tmp_path: Path) -> None:
    from triton_models.config import validate_config

    repo = _repo(tmp_path)
    assert repo.add(tiny_exports[0], generation="unified-v1") == 1
    assert repo.add(tiny_exports[1], generation="unified-v2") == 2
    fam = repo.root / "unified"
    assert sorted(p.name for p in fam.iterdir() if p.is_dir()) == ["1", "2"]
    for v in ("1", "2"):
        assert sorted(p.name for p in (fam / v).iterdir()) == [
            "export.json",
            "generation.json",
            "model.onnx",
            "model.py",
        ]
    cfg = validate_config((fam / "config.pbtxt").read_text())
    assert list(cfg.version_policy.specific.versions) == [1, 2]
    assert (
        cfg.backend == "python"
        and cfg.max_batch_size == 64
        and cfg.instance_group[0].kind == KIND("KIND_CPU")
    )
    assert list(cfg.input[0].dims) == [3, 32, 32] and [list(o.dims) for o in cfg.output] == [[64], [8]]
    assert cfg.parameters["generation:unified-v1"].string_value == "1"
    assert cfg.parameters["generation:unified-v2"].string_value == "2"
    mapping = json.loads((fam / "generations.json").read_text())
    assert {k: v["generation"] for k, v in mapping["versions"].items()} == {
        "1": "unified-v1",
        "2": "unified-v2",
    }
    assert repo.locate("unified-v2") == ("unified", 2) and repo.locate("nope") is None
    with pytest.raises(DuplicateGeneration):
        repo.add(tiny_exports[1], generation="unified-v2")
    repo.remove("unified-v1")
    assert repo.locate("unified-v1") is None and not (fam / "1").exists()
    assert repo.add(tiny_exports[0], generation="unified-v3") == 3  # numbers are never reused
    assert list(validate_config((fam / "config.pbtxt").read_text()).version_policy.specific.versions) == [
        2,
        3,
    ]


@pytest.mark.parametrize(
    ("backend", "platform"), [("onnxruntime", "onnxruntime_onnx"), ("tensorrt", "tensorrt_plan")]
)
def test_gpu_backend_configs_validate(backend: str, platform: str) -> None:
    from triton_models.config import ModelSpec, ServedVersion, render_config, validate_config

    text = render_config(
        ModelSpec("unified", backend=backend, instances=2),  # type: ignore[arg-type]
        {1: ServedVersion("unified-v1", 224, 256), 2: ServedVersion("unified-v2", 260, 512)},
    )
    cfg = validate_config(text)
    assert cfg.platform == platform and cfg.backend == "" and cfg.instance_group[0].kind == KIND("KIND_GPU")
    assert cfg.instance_group[0].count == 2
    assert list(cfg.input[0].dims) == [3, -1, -1] and [list(o.dims) for o in cfg.output] == [[-1], [-1]]
    assert cfg.parameters["image_size:2"].string_value == "260"


def test_bad_configs_and_names_are_refused(tiny_exports: list[Path], tmp_path: Path) -> None:
    from triton_models.config import ModelSpec, validate_config

    with pytest.raises(ConfigError, match="does not parse"):
        validate_config('name: "x" max_batch_size: "many"')
    with pytest.raises(ConfigError, match="inputs/outputs"):
        validate_config(
            'name: "x" backend: "python" max_batch_size: 4 input [{name: "x", data_type: TYPE_FP32, dims: [1]}]'
        )
    with pytest.raises(ConfigError, match="Unknown backend"):
        ModelSpec("unified", backend="tflite")  # type: ignore[arg-type]
    repo = _repo(tmp_path)
    for bad in ("../evil", "a/b", ".hidden", ""):
        with pytest.raises(ConfigError, match="Invalid"):
            repo.add(tiny_exports[0], generation=bad)
    with pytest.raises(ExportError, match="not an export folder"):
        repo.add(tmp_path, generation="unified-v1")
    with pytest.raises(ExportError, match="model.plan"):
        repo.add(tiny_exports[0], generation="unified-v1", backend="tensorrt")
    assert repo.served() == []


def test_reconcile_finishes_or_removes_leftovers(tiny_exports: list[Path], tmp_path: Path) -> None:
    from triton_models.repository import STAGING_PREFIX

    repo = _repo(tmp_path)
    repo.add(tiny_exports[0], generation="unified-v1")
    registered = repo.stage(tiny_exports[1], generation="unified-v2")
    orphan = repo.stage(tiny_exports[1], generation="unified-v9")
    for staged in (registered, orphan):  # pretend their writer died
        marker = staged.path / "generation.json"
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "pid": 999_999_999}))
    stray = repo.root / "unified" / "7"
    shutil.copytree(repo.root / "unified" / "1", stray)  # renamed, but the mapping was never written
    live = repo.stage(tiny_exports[1], generation="unified-v5")  # our own pid: still being published
    done = repo.reconcile(lambda name: name == "unified-v2")
    assert done["committed"] == ["unified-v2"]
    assert str(stray) in done["removed"] and str(orphan.path) in done["removed"]
    assert [r["generation"] for r in repo.served()] == ["unified-v1", "unified-v2"]
    assert live.path.exists() and not orphan.path.exists() and not stray.exists()
    assert [p.name for p in (repo.root / "unified").glob(f"{STAGING_PREFIX}*")] == [live.path.name]


_ADD = """
import sys
from triton_models.repository import ModelRepository
ModelRepository(sys.argv[1]).add(sys.argv[2], generation=sys.argv[3])
"""


@pytest.mark.parametrize(
    "step", ["repository.before_rename", "repository.after_rename", "repository.after_mapping"]
)
def test_kill_during_add_leaves_no_half_version(step: str, tiny_exports: list[Path], tmp_path: Path) -> None:
    from triton_models.config import validate_config

    repo = _repo(tmp_path)
    repo.add(tiny_exports[0], generation="unified-v1")
    env = {**os.environ, "EMBSDK_TEST_CRASH_AT": step}
    proc = subprocess.run(
        [sys.executable, "-c", _ADD, str(repo.root), str(tiny_exports[1]), "unified-v2"],
        env=env,
        capture_output=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]

    def consistent() -> list[str]:
        fam = repo.root / "unified"
        mapping = json.loads((fam / "generations.json").read_text())
        for number in mapping["versions"]:  # every committed version is complete
            assert sorted(p.name for p in (fam / number).iterdir()) == [
                "export.json",
                "generation.json",
                "model.onnx",
                "model.py",
            ]
        cfg = validate_config((fam / "config.pbtxt").read_text())
        assert {str(v) for v in cfg.version_policy.specific.versions} <= set(mapping["versions"])
        return [e["generation"] for e in mapping["versions"].values()]

    served = consistent()
    committed = step == "repository.after_mapping"
    assert served == (["unified-v1", "unified-v2"] if committed else ["unified-v1"])
    repo.reconcile(lambda name: False)  # not registered: a publish would drop it
    assert consistent() == served
    assert sorted(p.name for p in (repo.root / "unified").iterdir() if p.is_dir()) == (
        ["1", "2"] if committed else ["1"]
    )


def test_onnxruntime_family_for_gpu_servers(tiny_exports: list[Path], tmp_path: Path) -> None:
    from triton_models.config import validate_config

    repo = _repo(tmp_path)
    assert (
        repo.add(
            tiny_exports[0], generation="unified-v1", family="unified-gpu", backend="onnxruntime", instances=2
        )
        == 1
    )
    fam = repo.root / "unified-gpu"
    assert sorted(p.name for p in (fam / "1").iterdir()) == ["export.json", "generation.json", "model.onnx"]
    cfg = validate_config((fam / "config.pbtxt").read_text())
    assert cfg.platform == "onnxruntime_onnx" and cfg.instance_group[0].kind == KIND("KIND_GPU")
    assert cfg.instance_group[0].count == 2
    with pytest.raises(ConfigError, match="served by the onnxruntime backend, not python"):
        repo.add(tiny_exports[1], generation="unified-v2", family="unified-gpu")
    assert [r["generation"] for r in repo.served()] == ["unified-v1"]
    assert not list(fam.glob(".staging-*"))
