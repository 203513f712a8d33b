"""What every server-side command shares: settings with one clear line on error, and running async work."""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import anyio
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from lapse.settings import Settings

if TYPE_CHECKING:
    from lapse.runtime import Runtime

T = TypeVar("T")
err = Console(stderr=True, highlight=False)

# The server-side commands' exit codes (beyond 0 and 1).
EXIT_USAGE = 2  # a bad option or setting
EXIT_STORAGE = 3  # the storage the settings (or an option) name cannot be reached
EXIT_VERIFICATION = 10  # bytes differ from their recorded sha256 (as `lapse get`'s)
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(f"[bold red]lapse:[/] {escape(message)}", soft_wrap=True)  # a URL or an error may hold [brackets]
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        settings = Settings()
        settings.resolved_secret()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["loc"]:
            fail(f"invalid setting LAPSE_{'_'.join(str(part) for part in first['loc']).upper()}: {message}")
        fail(f"invalid settings: {message}")
    except (OSError, ValueError) as exc:
        fail(f"cannot start: {exc}")
    return settings


def migrate(settings: Settings) -> None:
    from lapse.db.migrate import upgrade  # Alembic and SQLAlchemy: only for the commands that need them

    try:
        upgrade(settings.database_url)
    except Exception as exc:  # any driver's connection error: say it in one line, no traceback
        fail(f"cannot bring the database up to date ({settings.database_url.split('@')[-1]}): {exc}")


def run_with_runtime(settings: Settings, work: Callable[["Runtime"], Awaitable[T]]) -> T:
    """`work` with a runtime; a storage that cannot be opened is one line and EXIT_STORAGE, not a traceback."""
    from lapse.runtime import CannotStart, open_runtime

    async def runner() -> T:
        async with open_runtime(settings) as runtime:
            return await work(runtime)

    try:
        return anyio.run(runner)
    except CannotStart as exc:
        fail(str(exc.code).removeprefix("lapse: "), code=EXIT_STORAGE)
