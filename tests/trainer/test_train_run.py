"""emb train end to end on tiny images: run folder contract, load_model, exact resume, bad input, feature cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _train_data import TINY_ARGS, rewrite_rows, tiny_config, write_images_manifest
from typer.testing import CliRunner

from cli.main import app
from embsdk.errors import CheckpointError, ConfigError, ManifestError, RunError
from embsdk.preprocess import load_images
from trainer.config import TrainConfig
from trainer.loop import resume, train
from trainer.run import load_model

runner = CliRunner()
TINY = TINY_ARGS


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_images_manifest(tmp_path / "data", per_class=6, test_per_class=2)


def _cfg(manifest: Path, out: Path, **kw: object) -> TrainConfig:
    return tiny_config(manifest, out, **kw)


def test_cli_train_writes_the_run_folder_contract(manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = runner.invoke(
        app, ["train", "--manifest", str(manifest), "--out", str(run), "--epochs", "1", *TINY, "--json"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["status"] == "finished" and summary["train_rows"] == 24 and summary["step"] == 3
    assert set(summary["loss"]) == {"color", "warm"}
    assert yaml.safe_load((run / "config.yaml").read_text())["backbone"] == "tiny-cnn"
    meta = json.loads((run / "run.json").read_text())
    assert meta["manifest"]["path"] == str(manifest.resolve()) and len(meta["manifest"]["sha256"]) == 64
    assert meta["code_version"].startswith(("git:", "embsdk=="))
    assert meta["tasks"] == ["color", "warm"] and meta["classes"]["warm"] == ["cold", "warm"]
    assert meta["embedding_spec"] == {
        "dim": 32,
        "bits": 32,
        "binarization": "layernorm-sign",
        "threshold": 0.0,
        "bit_order": "numpy-packbits-big",
        "float_dtype": "float32",
        "code_bytes": 4,
    }
    assert meta["input_spec"]["image_size"] == 32 and meta["backbone"] == "tiny-cnn"
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # no pickled objects
    assert state["step"] == 3 and isinstance(state["rng"]["torch"], torch.Tensor)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r and "event" not in r] == [1, 2, 3]
    assert lines[-1]["event"] == "finished"


def test_load_model_gives_the_trained_embeddings(manifest: Path, tmp_path: Path) -> None:
    summary = train(_cfg(manifest, tmp_path / "run", epochs=1), progress=False)
    model, info = load_model(tmp_path / "run")
    assert not model.training and info.step == summary["step"] and info.embedding_spec["bits"] == 32
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    x = torch.from_numpy(load_images([manifest.parent / "img" / "red_0.png"], info.input_spec))
    with torch.no_grad():
        emb = model(x)
    assert emb.shape == (1, 32)
    with pytest.raises(CheckpointError, match="no checkpoint 'step-9'"):
        load_model(tmp_path / "run", checkpoint="step-9")
    with pytest.raises(RunError, match="not a training run folder"):
        load_model(tmp_path)


def test_training_learns_the_colors(manifest: Path, tmp_path: Path) -> None:
    train(_cfg(manifest, tmp_path / "run", epochs=6, lr=3e-3), progress=False)
    model, info = load_model(tmp_path / "run")
    names = ["red", "green", "blue", "yellow"]
    x = torch.from_numpy(
        load_images(
            [manifest.parent / "img" / f"{n}_{i}.png" for n in names for i in (6, 7)], info.input_spec
        )
    )
    with torch.no_grad():
        e = torch.nn.functional.normalize(model(x), dim=1)
    sim = (e @ e.T).fill_diagonal_(-2)
    nearest = sim.argmax(1) // 2
    assert (nearest == torch.arange(4).repeat_interleave(2)).float().mean() >= 0.75


@pytest.mark.parametrize("extra", [{}, {"grad_accum": 2, "checkpoint_every": 1}, {"sample_negatives": 1}])
def test_interrupted_then_resumed_equals_uninterrupted(manifest: Path, tmp_path: Path, extra: dict) -> None:
    full = train(_cfg(manifest, tmp_path / "full", epochs=3, **extra), progress=False)
    part = train(_cfg(manifest, tmp_path / "part", epochs=3, max_steps=4, **extra), progress=False)
    assert part["status"] == "stopped" and part["step"] == 4 < full["step"]
    done = resume(tmp_path / "part", progress=False)
    assert done["status"] == "finished" and done["step"] == full["step"]
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoints" / "last.pt", weights_only=True)
    for k, v in a["module"].items():
        assert torch.equal(v, b["module"][k]), k
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()


def test_feature_cache_training_and_reuse(manifest: Path, tmp_path: Path) -> None:
    cfg = _cfg(manifest, tmp_path / "a", freeze_backbone=True, cache_views=2, epochs=2)
    s1 = train(cfg, progress=False)
    assert s1["feature_cache"] and s1["status"] == "finished"
    cache = list((tmp_path / "emb_home" / "cache" / "features").glob("*.npy"))
    assert len(cache) == 1 and np.load(cache[0]).shape == (2, 24, 64)
    train(_cfg(manifest, tmp_path / "b", freeze_backbone=True, cache_views=2, epochs=2), progress=False)
    assert len(list(cache[0].parent.glob("*.npy"))) == 1  # reused, not recomputed
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    model, _ = load_model(tmp_path / "a")  # the frozen backbone is saved with the run
    fresh = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert torch.equal(model.backbone.blocks[0][0].weight, fresh["backbone.blocks.0.0.weight"])


def test_bad_rows_are_skipped_and_counted_before_training(manifest: Path, tmp_path: Path) -> None:
    (manifest.parent / "img" / "red_1.png").write_bytes(b"broken")
    res = runner.invoke(
        app,
        [
            "train",
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "r"),
            "--epochs",
            "1",
            *TINY,
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["skipped_rows"] == 1 and json.loads(res.stdout)["train_rows"] == 23
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["validation"]["skipped"] == 1 and "row 1: corrupt image" in meta["validation"]["bad"][0]


def test_strict_fails_before_any_training(manifest: Path, tmp_path: Path) -> None:
    rewrite_rows(manifest, {4: {"image": "img/nope.png"}})
    with pytest.raises(ManifestError, match="row 4: missing image"):
        train(_cfg(manifest, tmp_path / "r", strict=True), progress=False)
    assert not (tmp_path / "r" / "checkpoints").exists()
    res = runner.invoke(
        app, ["train", "--manifest", str(manifest), "--out", str(tmp_path / "r"), "--strict", *TINY]
    )
    assert isinstance(res.exception, ManifestError)


def test_bad_options_and_folders(manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multiple of 8"):
        train(_cfg(manifest, tmp_path / "r", embedding_dim=30), progress=False)
    with pytest.raises(ManifestError, match="no task 'shape'"):
        train(_cfg(manifest, tmp_path / "r", tasks=["shape"]), progress=False)
    train(_cfg(manifest, tmp_path / "r", epochs=1), progress=False)
    with pytest.raises(RunError, match="already holds a run"):
        train(_cfg(manifest, tmp_path / "r", epochs=1), progress=False)
    with pytest.raises(RunError, match="not a training run folder"):
        resume(tmp_path / "nothing-here")
    (tmp_path / "opts.yaml").write_text("epochs: 1\nbogus_option: 3\n")
    res = runner.invoke(
        app,
        [
            "train",
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "y"),
            "--config",
            str(tmp_path / "opts.yaml"),
        ],
    )
    assert isinstance(res.exception, ConfigError) and "bogus_option" in str(res.exception)


def test_manifest_changed_since_the_run_started(manifest: Path, tmp_path: Path) -> None:
    train(_cfg(manifest, tmp_path / "r", max_steps=1), progress=False)
    rewrite_rows(manifest, {0: {"task.warm": "cold"}})
    with pytest.raises(RunError, match="changed since this run started"):
        resume(tmp_path / "r", progress=False)


def test_config_file_and_single_task(manifest: Path, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "backbone: tiny-cnn\nimage_size: 32\nepochs: 1\nbatch-size: 4\nnum_workers: 0\nembedding_dim: 16\n"
    )
    res = runner.invoke(
        app,
        [
            "train",
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "r"),
            "--config",
            str(tmp_path / "c.yaml"),
            "--tasks",
            "warm",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["tasks"] == ["warm"] and s["train_rows"] == 12 and s["step"] == 3  # only rows labeled for warm
    cfg = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert cfg["batch_size"] == 4 and cfg["embedding_dim"] == 16


def test_efficientnet_lite0_pretrained_trains_and_reloads(manifest: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "train",
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "r"),
            "--epochs",
            "1",
            "--image-size",
            "64",
            "--batch-size",
            "8",
            "--workers",
            "0",
            "--trainable-blocks",
            "2",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["step"] == 3
    model, info = load_model(tmp_path / "r")
    assert info.backbone == "efficientnet-lite0" and info.input_spec.image_size == 64
    assert info.input_spec.mean == (127 / 255,) * 3 and info.embedding_spec["dim"] == 256
    from trainer.backbones import create_backbone

    pretrained = create_backbone("efficientnet-lite0", image_size=64)
    # frozen early blocks keep the ImageNet weights; the last blocks moved
    assert torch.equal(model.backbone.net._conv_stem.weight, pretrained.net._conv_stem.weight)
    assert not torch.equal(model.backbone.net._conv_head.weight, pretrained.net._conv_head.weight)


def test_cli_frozen_backbone_with_augmented_cached_views(manifest: Path, tmp_path: Path) -> None:
    args = ["--freeze-backbone", "--cache-views", "3", "--temperature", "0.1", "--epochs", "1", "--json"]
    res = runner.invoke(
        app, ["train", "--manifest", str(manifest), "--out", str(tmp_path / "r"), *TINY, *args]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["feature_cache"] is True
    cfg = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert cfg["cache_views"] == 3 and cfg["temperature"] == 0.1 and cfg["freeze_backbone"] is True
    (cache,) = (tmp_path / "emb_home" / "cache" / "features").glob("*.npy")
    views = np.load(cache)
    assert views.shape == (3, 24, 64) and not np.allclose(views[0], views[1])  # augmented views differ


def test_class_balanced_sampler_run(manifest: Path, tmp_path: Path) -> None:
    s = train(_cfg(manifest, tmp_path / "r", sampler="class-balanced", epochs=1), progress=False)
    assert s["status"] == "finished" and s["step"] == 3
    with pytest.raises(ConfigError, match="sampler must be"):
        train(_cfg(manifest, tmp_path / "q", sampler="shuffled"), progress=False)


def test_a_failed_feature_cache_run_restores_the_thread_count(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("loader failed")

    monkeypatch.setattr("trainer.loop.DataLoader", boom)  # fails after the loop pinned one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="loader failed"):
            train(_cfg(manifest, tmp_path / "r", freeze_backbone=True, epochs=1), progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_resume_a_moved_run_folder_writes_into_its_new_place(manifest: Path, tmp_path: Path) -> None:
    train(_cfg(manifest, tmp_path / "old", epochs=2, max_steps=2), progress=False)
    (tmp_path / "old").rename(tmp_path / "new")
    done = resume(tmp_path / "new", progress=False)
    assert done["status"] == "finished" and done["run_dir"] == str((tmp_path / "new").resolve())
    assert not (tmp_path / "old").exists()
    assert json.loads((tmp_path / "new" / "run.json").read_text())["status"] == "finished"


def test_resume_refuses_options_that_would_be_ignored(tmp_path: Path) -> None:
    import subprocess
    import sys

    emb = str(Path(sys.executable).with_name("emb"))
    res = subprocess.run(
        [emb, "train", "--resume", str(tmp_path / "run"), "--epochs", "9", "--lr", "0.1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1
    assert (
        res.stderr.startswith("error: --resume continues") and "--epochs, --lr cannot be given" in res.stderr
    )
    assert "Traceback" not in res.stderr
