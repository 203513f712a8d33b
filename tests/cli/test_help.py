"""`lapse --help` and every client command's help: each command, argument and option says what it does."""

import pytest
import typer
from typer.testing import CliRunner

from lapse.cli import app

CLIENT_COMMANDS = [
    ["share"],
    ["get"],
    ["login"],
    ["logout"],
    ["files"],
    ["files", "ls"],
    ["files", "show"],
    ["files", "rm"],
    ["links"],
    ["links", "ls"],
    ["links", "show"],
    ["links", "revoke"],
    ["links", "extend"],
]


def test_top_level_help_lists_server_and_client_commands() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for command in ("serve", "keys", "share", "get", "files", "links", "login", "logout"):
        assert f" {command} " in result.stdout


@pytest.mark.parametrize("path", CLIENT_COMMANDS, ids=" ".join)
def test_every_client_command_documents_every_parameter(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert command.help, f"lapse {' '.join(path)} has no help"
    for param in command.params:
        assert getattr(param, "help", None), f"lapse {' '.join(path)}: {param.name} has no help"
