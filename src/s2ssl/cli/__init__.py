"""The ``s2ssl`` command line: one thin sub-command per pipeline stage, plus inspection helpers.

Each command parses its options, calls one library function and prints; it lives in the module
of its name (:mod:`s2ssl.cli.predict`, ...), the options and error helpers they share in
:mod:`s2ssl.cli.common`. Start-up stays fast: heavy libraries (numpy, torch, mlflow, ...) are
imported inside the commands.
"""

from __future__ import annotations

from typing import Annotated

import typer

from s2ssl import __version__
from s2ssl.cli import (
    calibrate,
    evaluate,
    fetch,
    finetune,
    info,
    predict,
    pretrain,
    registry,
    tune,
    validate,
)

__all__ = ["app"]

app = typer.Typer(
    name="s2ssl",
    help=(
        "Contrastive pre-training of Sentinel-2 models (SeCo, Embedding Earth, CSCL).\n\n"
        "Each pipeline stage is a sub-command; `dvc repro` runs them in order with the settings "
        "in params.yaml."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

app.command()(fetch.fetch)
app.command()(validate.validate)
app.command()(pretrain.pretrain)
app.command()(finetune.finetune)
app.command()(evaluate.evaluate)
app.command()(registry.register)
app.command()(registry.promote)
app.command()(registry.models)
app.command()(calibrate.calibrate)
app.add_typer(tune.tune_app, name="tune")
app.command()(predict.predict)
app.command()(info.info)
app.command("check-params")(info.check_params)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"s2ssl {__version__}")
        raise typer.Exit()
