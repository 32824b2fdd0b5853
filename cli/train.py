"""``emb train``: train the unified multi-task embedding (or resume a run).

The training options are generated from :class:`trainer.config.TrainConfig`'s fields (flag, help, default in
each field's metadata), so flags, config-file keys and defaults cannot drift; only ``--resume``, ``--config``,
``--quiet`` and ``--json`` are declared here.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import MISSING, Field
from pathlib import Path
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit
from trainer.config import RESUMABLE_OPTIONS, TrainConfig, cli_fields

__all__ = ["OWN_OPTIONS", "register", "train"]

OWN_OPTIONS = ("resume_run", "config_file", "quiet", "json_")
"""Parameters of ``emb train`` that are not TrainConfig fields."""


def _emit(summary: dict, as_json: bool) -> None:
    if summary.pop("rank", 0) == 0:  # under torchrun only rank 0 prints
        emit(summary, as_json=as_json, human=_human)


def _human(s: dict) -> str:
    losses = ", ".join(f"{t} {v:.3f}" for t, v in s["loss"].items())
    return (
        f"{s['status']}: {s['run_dir']}  step {s['step']}, epoch {s['epoch']}/{s['epochs']}, "
        f"{s['images_per_s']} img/s, {s['elapsed_s']} s\nlast loss: {losses}"
        + (f"\nskipped {s['skipped_rows']} bad manifest rows" if s["skipped_rows"] else "")
    )


def _flags(f: Field[Any]) -> str:
    """How a field is spelled on the command line, e.g. ``--amp/--no-amp`` or ``--manifest``."""
    m = f.metadata
    return f"{m['flag']}/{m['off_flag']}" if m["off_flag"] else m["flag"]


def _option_type(f: Field[Any], hint: Any) -> Any:
    """The command-line type of a field: str for csv lists, Path for paths, else its own (None stripped)."""
    kind = f.metadata["cli_type"]
    if kind == "csv":
        return str
    if kind == "path":
        return Path
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _shown_default(f: Field[Any]) -> str:
    m = f.metadata
    if m["shown_default"] is not None:
        return str(m["shown_default"])
    value = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc,operator]
    if isinstance(value, bool):
        return (m["flag"] if value else m["off_flag"]).lstrip("-")
    return str(value)


def _config_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per TrainConfig option, default None (= not given: the config file or the default)."""
    hints = typing.get_type_hints(TrainConfig)
    params = []
    for f in cli_fields():
        m = f.metadata
        names = [_flags(f), *([m["short"]] if m["short"] else [])]
        help_text = m["help"] + (" May change on --resume." if m["resumable"] else "")
        option = typer.Option(*names, help=help_text, show_default=_shown_default(f))
        annotation = Annotated[_option_type(f, hints[f.name]) | None, option]  # type: ignore[operator,valid-type]
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        )
    return params


def _own_parameters() -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter(
            "resume_run",
            kw,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option("--resume", help="Continue the run in this folder exactly where it stopped."),
            ],
        ),
        inspect.Parameter(
            "config_file",
            kw,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option(
                    "--config",
                    help="YAML file of training options (keys as the flags without '--'; flags override it).",
                ),
            ],
        ),
        inspect.Parameter(
            "quiet",
            kw,
            default=False,
            annotation=Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")],
        ),
        inspect.Parameter("json_", kw, default=False, annotation=JsonOpt),
    ]


def _config_value(f: Field[Any], value: Any) -> Any:
    """A flag's value as the TrainConfig field holds it (paths as str, csv as a list)."""
    if value is None:
        return None
    kind = f.metadata["cli_type"]
    if kind == "path":
        return str(value)
    if kind == "csv":
        return [t.strip() for t in str(value).split(",") if t.strip()] or None
    return value


def train(**kwargs: Any) -> None:
    """Train the unified embedding on every task of a manifest and write a run folder.

    Options come from the training config (trainer/config.py); a --config YAML file sets any of them (and
    config-only ones such as optimizer, weight_decay, task_weights), flags override it. Values are checked:
    a bad one is one error line naming the option.

    Example: emb train --manifest data/grocery.csv --out runs/unified --freeze-backbone --epochs 20
    Multi-GPU: torchrun --nproc-per-node 2 -m cli.main train ...
    """
    from embsdk.errors import ConfigError
    from trainer.config import load_config_file
    from trainer.loop import resume
    from trainer.loop import train as run_train

    resume_run, config_file = kwargs["resume_run"], kwargs["config_file"]
    quiet, json_ = kwargs["quiet"], kwargs["json_"]
    given = {f.name: _config_value(f, kwargs[f.name]) for f in cli_fields()}
    if resume_run is not None:
        fixed = [
            _flags(f).split("/")[0]
            for f in cli_fields()
            if f.name not in RESUMABLE_OPTIONS and given[f.name] is not None
        ]
        fixed += ["--config"] if config_file is not None else []
        if fixed:  # a resumed run continues with its recorded config; silently ignoring these would mislead
            allowed = ", ".join(_flags(f) for f in cli_fields() if f.name in RESUMABLE_OPTIONS)
            raise ConfigError(
                f"--resume continues {resume_run} with its recorded config, so {', '.join(fixed)} cannot be given; "
                f"only {allowed} may change. Start a new run instead."
            )
        overrides = {name: given[name] for name in RESUMABLE_OPTIONS}
        summary = resume(resume_run, progress=not (quiet or json_), overrides=overrides)
        _emit(summary, json_)
        return
    base = TrainConfig()
    if config_file is not None:
        file_options = load_config_file(config_file)  # an explicit null is checked too (merged() skips None)
        base = TrainConfig.from_dict({**base.to_dict(), **file_options}, source=f"config file {config_file}")
    config = base.merged(given, source="emb train options")
    if not config.manifest or not config.out:
        raise ConfigError("emb train needs --manifest and --out (or --resume RUN)")
    _emit(run_train(config, progress=not (quiet or json_)), json_)


_params = _own_parameters()[:2] + _config_parameters() + _own_parameters()[2:]
train.__signature__ = inspect.Signature(_params)  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in _params}


def register(app: typer.Typer) -> None:
    app.command("train")(train)
