"""What the client commands share: the --server/--key/--json options, the consoles, progress bars, option
parsers, and the command boundary that turns every failure into one sentence and its exit code."""

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import httpx
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from lapse.cli.display import human_size
from lapse.client import config
from lapse.client.api import LapseClient
from lapse.client.errors import ClientError, ExitCode, UsageError
from lapse.units import parse_duration, parse_size

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

# Stdout carries results only (URLs, tables, JSON: what a script captures); this console is for the rest.
err = Console(stderr=True, highlight=False, soft_wrap=True)  # no hard wraps: paths and URLs stay whole
PIPE_WIDTH = 200

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="Lapse server, e.g. https://files.example.org. Default: $LAPSE_SERVER, then `lapse login`.",
        show_default=False,
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        metavar="KEY",
        help="API key. Prefer $LAPSE_API_KEY or `lapse login`: other users can read a command line.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (one object per line) and nothing else.")]


def show(renderable: RenderableType) -> None:
    """Print a table on stdout; to a pipe or a file, not squeezed into the 80 columns rich assumes there."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=PIPE_WIDTH)
    console.print(renderable)


def fail(message: str, code: ExitCode) -> NoReturn:
    err.print(f"[bold red]lapse:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(int(code))


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """The command boundary: a ClientError becomes its one sentence and exit code, Ctrl-C exits 130, and nothing
    else ever shows a traceback either. Typer's own exits and usage errors pass through untouched."""

    @functools.wraps(command)
    def boundary(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except ClientError as exc:
            fail(exc.message, exc.exit_code)
        except KeyboardInterrupt:
            fail("Interrupted.", ExitCode.INTERRUPTED)
        except httpx.HTTPError as exc:  # anything the client did not already translate
            fail(f"The connection failed ({type(exc).__name__}).", ExitCode.CONNECTION_FAILED)
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            fail(f"Cannot use{where}: {exc.strerror or exc}.", ExitCode.FAILED)
        except Exception as exc:  # a bug of ours: still one line, and say what it was
            fail(f"Unexpected error ({type(exc).__name__}): {exc}", ExitCode.FAILED)

    return boundary


def connect(server: str | None, key: str | None) -> LapseClient:
    return LapseClient(config.resolve(server=server, key=key))


def validated(model: type[M], **fields: object) -> M:
    """Build a request body, checked here with the server's own schema: a bad value is a usage error before
    any byte is sent. Only the fields given count as set (PATCH sends just those)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or model.__name__
        raise UsageError(f"Invalid {where}: {first['msg'].removeprefix('Value error, ')}.") from None


class BinarySpeedColumn(ProgressColumn):
    """The rate in the same units as the sizes beside it (rich's TransferSpeedColumn counts in 1000s)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        text = "?" if speed is None else f"{human_size(int(speed))}/s"
        return Text(text, style="progress.data.speed")


def transfer_progress(*, enabled: bool) -> Progress:
    """Bytes, rate and time left, on stderr, so stdout stays clean for URLs and JSON."""
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(binary_units=True),
        BinarySpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not enabled,
        # Never reroute stdout through the bar's console: URLs and JSON must reach stdout, not stderr.
        redirect_stdout=False,
        redirect_stderr=False,
    )


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


@dataclass(frozen=True, slots=True)
class Expiry:
    """What --expires said: a duration from now, or an absolute time."""

    seconds: int | None = None
    at: datetime | None = None


def parse_expiry(value: str) -> Expiry:
    """`90s`, `30m`, `1h30m`, `2d` from now, or an ISO 8601 time that names its zone (`…Z`, `…+02:00`)."""
    try:
        duration = parse_duration(value)
    except ValueError:
        pass
    else:
        if duration <= timedelta(0):
            raise typer.BadParameter("the duration must be positive")
        return Expiry(seconds=int(duration.total_seconds()))
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration (30m, 1h, 2d) nor an ISO time (2030-01-31T18:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"give the time zone, e.g. {value}Z for UTC or {value}+02:00")
    if moment <= datetime.now(UTC):
        raise typer.BadParameter(f"{value} is in the past")
    return Expiry(at=moment)


def parse_rate(value: str) -> int:
    """`--limit-rate 500K`: bytes per second, with the same units as sizes elsewhere (K = 1024)."""
    try:
        rate = parse_size(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if rate <= 0:
        raise typer.BadParameter("the rate must be positive")
    return rate


_WHEN = "30m, 1h, 2d (from now) or an ISO time with a zone, e.g. 2030-01-31T18:00+01:00 or …Z for UTC"
ExpiresOption = Annotated[
    Expiry | None,
    typer.Option(
        "--expires",
        metavar="WHEN",
        parser=parse_expiry,
        help=f"When the link stops working: {_WHEN}. The server caps it at its maximum; without it the "
        "server's default applies (1 h unless configured otherwise).",
        show_default=False,
    ),
]
NewExpiryOption = Annotated[
    Expiry | None,
    typer.Option(
        "--expires",
        metavar="WHEN",
        parser=parse_expiry,
        help=f"New expiry: {_WHEN}. The server caps it at its maximum.",
        show_default=False,
    ),
]
