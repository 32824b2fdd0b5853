"""The ``emb`` command. This module only wires command groups together; each lives in its own module.

Every group module exposes ``register(app: typer.Typer) -> None`` and imports heavy libraries (torch,
onnxruntime, tritonclient) inside its command functions, so ``emb --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from cli._errors import report_error
from cli._output import JsonOpt, emit

# One entry per command module under cli/. Keep sorted by workflow order.
COMMAND_MODULES: tuple[str, ...] = (
    "cli.data",
    "cli.train",
    "cli.eval",
    "cli.export",
    "cli.publish",
    "cli.serve",
    "cli.embed",
    "cli.registry",
    "cli.store",
    "cli.get",
    "cli.search",
    "cli.backfill",
)

app = typer.Typer(
    name="emb",
    help=(
        "embsdk: one unified, binarized image embedding for visual search.\n\n"
        "Workflow: emb data → emb train → emb eval → emb publish → emb serve / emb backfill → emb get / emb search.\n"
        "Configuration: EMB_HOME (default ~/.embsdk), EMB_REGISTRY_URL (any SQLAlchemy URL). EMB_DEBUG=1 shows tracebacks."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """embsdk: one unified, binarized image embedding for visual search."""


@app.command("version")
def version(json_: JsonOpt = False) -> None:
    """Print the embsdk version."""
    import embsdk

    emit({"embsdk": embsdk.__version__}, as_json=json_, human=lambda d: d["embsdk"])


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console-script entry point: run the app, mapping library errors to one line and an exit code."""
    try:
        app()  # standalone mode: usage errors and --help exit through SystemExit
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the CLI boundary
        sys.exit(report_error(exc))


if __name__ == "__main__":
    main()
