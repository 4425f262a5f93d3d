"""What the commands share: option aliases, exit codes and the error helpers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from s2ssl.config import Params

__all__ = ["EX_TEMPFAIL", "DataOpt", "ParamsOpt", "PretrainedOpt", "fail", "load_or_exit"]

ParamsOpt = Annotated[
    Path, typer.Option("--params", "-p", help="params.yaml to read (validated before any work).")
]
DataOpt = Annotated[Path, typer.Option(help="Directory holding the validated datasets.")]
PretrainedOpt = Annotated[Path, typer.Option(help="Exported encoders: PRETRAINED/METHOD/encoder.")]


EX_TEMPFAIL = 75
"""Exit code of a transient failure (sysexits.h ``EX_TEMPFAIL``: network, HTTP 429 / 5xx that
outlasted the retries): the same command may succeed later, so orchestrators retry it. Other
failures exit 1 (unusable data) or 2 (bad params, a permanent error)."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise (``raise fail(...)``)."""
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code=code)


def load_or_exit(params: Path) -> Params:
    """The validated params of ``params``; exits with code 2 and the reason if they are not."""
    from s2ssl.config import ConfigError, load_params

    try:
        return load_params(params)
    except ConfigError as e:
        raise fail(str(e)) from None
