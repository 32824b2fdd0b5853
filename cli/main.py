"""The ``emb`` command. This module only wires command groups together; each lives in its own module.

Every group module exposes ``register(app: typer.Typer) -> None`` and imports heavy libraries (torch,
onnxruntime, tritonclient) inside its command functions, so ``emb --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import typer
from typer._click import exceptions as click_exceptions  # typer 0.29 vendors Click as typer._click
from typer.core import TyperGroup

from cli._errors import EXIT_USAGE, report_error, usage_error_line
from cli._output import JsonOpt, emit

# One entry per command module under cli/. Keep sorted by workflow order.
COMMAND_MODULES: tuple[str, ...] = (
    "cli.data",
    "cli.train",
    "cli.eval",
    "cli.export",
    "cli.publish",
    "cli.serve",
    "cli.server",
    "cli.embed",
    "cli.registry",
    "cli.store",
    "cli.get",
    "cli.search",
    "cli.backfill",
)


class _OneLineUsageErrors(TyperGroup):
    """The root group: bad usage prints one ``error: …`` line on stderr and exits 2 (no boxed usage panel).

    Everything else is Typer's: ``--help``, no-args help, shell completion (``emb --install-completion``).
    """

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:  # Typer has printed the group's help already
            code = exc.exit_code
        except click_exceptions.ClickException as exc:
            sys.stderr.write(usage_error_line(exc) + "\n")
            code = EXIT_USAGE if isinstance(exc, click_exceptions.UsageError) else exc.exit_code
        except typer.Abort:
            sys.stderr.write("interrupted\n")
            code = 130
        else:
            if not standalone_mode:
                return rv
            code = rv if isinstance(rv, int) else 0  # non-standalone _main returns typer.Exit codes
        if not standalone_mode:
            raise SystemExit(code)
        sys.exit(code)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="emb",
    help=(
        "embsdk: one unified, binarized image embedding for visual search.\n\n"
        "Workflow: emb data → emb train → emb eval → emb publish → emb serve / emb backfill → emb get / emb search.\n"
        "Configuration: EMB_HOME (default ~/.embsdk), EMB_REGISTRY_URL (any SQLAlchemy URL). EMB_DEBUG=1 shows tracebacks."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # emb --install-completion / --show-completion (bash, zsh, fish, powershell)
)


@app.callback()
def _root() -> None:
    """embsdk: one unified, binarized image embedding for visual search."""


@app.command("version")
def version(json_: JsonOpt = False) -> None:
    """Print the embsdk version.

    Example: emb version --json
    """
    import embsdk

    emit({"embsdk": embsdk.__version__}, as_json=json_, human=lambda d: d["embsdk"])


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


LOGGERS: tuple[str, ...] = ("embsdk", "registry", "trainer", "triton_models", "cli")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str | None = None) -> int:
    """Send embsdk's own loggers to stderr at ``EMB_LOG_LEVEL`` (default WARNING); returns the level.

    Only embsdk's packages get the handler (other libraries' logging is left as it was), and nothing
    embsdk logs is at WARNING or above where the CLI already prints the same event, so at the default
    level the CLI's output is unchanged. ``EMB_LOG_LEVEL=INFO`` adds server start/stop/restarts,
    store commits and compactions, backfill progress and registry writes.
    """
    name = (level or os.environ.get("EMB_LOG_LEVEL") or "WARNING").strip().upper()
    value = logging.getLevelName(name)
    if not isinstance(value, int):
        sys.stderr.write(f"warning: EMB_LOG_LEVEL={name!r} is not a logging level; using WARNING\n")
        value = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    for logger_name in LOGGERS:
        logger = logging.getLogger(logger_name)
        logger.handlers = [h for h in logger.handlers if not getattr(h, "_emb_cli", False)]
        handler._emb_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(value)
    return value


def main() -> None:
    """Console-script entry point: run the app, mapping library errors to one line and an exit code."""
    configure_logging()
    try:
        app()  # standalone mode: usage errors and --help exit through SystemExit
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the CLI boundary
        sys.exit(report_error(exc))


if __name__ == "__main__":
    main()
