"""Training configs: validated by pydantic (one clear line for a bad value), and `emb train`'s options are
TrainConfig's fields (flags, defaults and help cannot drift)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embsdk.errors import ConfigError
from trainer.config import RESUMABLE_OPTIONS, TrainConfig, cli_fields, load_config_file

EMB = str(Path(sys.executable).with_name("emb"))

# Config-file-only options (no flag on purpose). A new TrainConfig field must either get a flag or be added
# here: this list is what keeps a forgotten field from silently missing on the command line.
CONFIG_ONLY = {
    "pretrained",
    "backbone_lr_mult",
    "optimizer",
    "momentum",
    "weight_decay",
    "warmup_steps",
    "task_weights",
    "feature_cache",
    "keep_checkpoints",
    "check_images",
}
OWN = {"--resume", "--config", "--quiet", "--json", "--help"}


def _train_command():
    from typer.main import get_command

    from cli.main import app

    return get_command(app).commands["train"]


def test_yaml_with_a_word_for_a_number_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("backbone: tiny-cnn\nepochs: three\n")
    nulls = tmp_path / "nulls.yaml"
    nulls.write_text("image_size: null\nepochs: null\n")  # image_size may be null (native size); epochs not
    res = subprocess.run(
        [EMB, "train", "--config", str(cfg), "--manifest", "m.csv", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(
        f"error: config file {cfg}: epochs: 'three' is not valid (Input should be a valid integer"
    )
    assert "Traceback" not in res.stderr and "TypeError" not in res.stderr
    assert not (tmp_path / "r").exists()
    res = subprocess.run(
        [EMB, "train", "--config", str(nulls), "--manifest", "m.csv", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1 and res.stderr.splitlines() == [
        f"error: config file {nulls}: epochs: None is not valid (Input should be a valid integer)"
    ]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"epochs": "three"}, "epochs: 'three' is not valid"),
        ({"lr": [1]}, "lr: [1] is not valid"),
        ({"tasks": "coarse"}, "tasks: 'coarse' is not valid"),
        ({"amp": "maybe"}, "amp: 'maybe' is not valid"),
        ({"epochs": None}, "epochs: None is not valid"),
        ({"epochs": 2.5}, "epochs: 2.5 is not valid"),
        ({"bogus": 1}, "unknown training option(s): bogus"),
    ],
)
def test_bad_values_are_config_errors_naming_the_option(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({**TrainConfig().to_dict(), **data}, source="config file x.yaml")
    assert str(info.value).startswith("config file x.yaml: ") and needle in str(info.value)
    assert "\n" not in str(info.value)


def test_two_bad_values_on_one_line() -> None:
    with pytest.raises(ConfigError, match=r"epochs: 'x' .*; lr: 'y' "):
        TrainConfig.from_dict({"epochs": "x", "lr": "y"})


def test_good_values_are_coerced_like_yaml_means_them(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: '3'\nbatch-size: 8\nlr: 1e-2\nfreeze_backbone: yes\ntasks: [coarse, fine]\n")
    c = TrainConfig().merged(load_config_file(cfg))
    assert (c.epochs, c.batch_size, c.lr, c.freeze_backbone, c.tasks) == (
        3,
        8,
        0.01,
        True,
        ["coarse", "fine"],
    )
    assert isinstance(c, TrainConfig) and c.to_dict() == TrainConfig.from_dict(c.to_dict()).to_dict()


def test_train_options_are_exactly_the_config_fields() -> None:
    cmd = _train_command()
    by_flag = {}
    for p in cmd.params:
        for flag in [*p.opts, *p.secondary_opts]:
            if flag.startswith("--"):
                by_flag[flag] = p
    config_flags = {f.metadata["flag"]: f for f in cli_fields()}
    assert set(by_flag) - OWN - {
        f.metadata["off_flag"] for f in cli_fields() if f.metadata["off_flag"]
    } == set(config_flags)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert {f.name for f in cli_fields()} | CONFIG_ONLY == names, (
        "a TrainConfig field has no flag: add one or list it"
    )
    assert not CONFIG_ONLY & {f.name for f in cli_fields()}
    for flag, f in config_flags.items():
        param = by_flag[flag]
        assert param.name == f.name, (flag, param.name)  # the option fills exactly that field
        assert param.help.startswith(f.metadata["help"]), flag
        assert param.default is None  # unset → the config file, then TrainConfig's default


def test_train_help_shows_every_default() -> None:
    from cli.main import app

    res = CliRunner().invoke(app, ["train", "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    for f in cli_fields():
        shown = f.metadata["shown_default"]
        value = f.default
        if shown is None:
            shown = (
                (f.metadata["flag"] if value else f.metadata["off_flag"]).lstrip("-")
                if isinstance(value, bool)
                else str(value)
            )
        assert f"[default: ({shown})]" in text or f"[default: {shown}]" in text, (f.name, shown)
    for default in ("efficientnet-lite0", "256", "0.001", "uniform", "(5)", "train-backbone"):
        assert default in text


def test_resume_allows_only_resumable_options() -> None:
    assert set(RESUMABLE_OPTIONS) == {"num_workers", "max_steps", "checkpoint_every", "device"}
