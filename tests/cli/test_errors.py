"""The one table from HTTP answers to errors and exit codes, and the command boundary that prints them."""

import httpx
import pytest
import typer
from typer.testing import CliRunner

from lapse.cli.client_common import reports_errors
from lapse.client.errors import ExitCode, connection_error, error_for

BASIC = {"WWW-Authenticate": 'Basic realm="lapse download"'}


def answer(status: int, body: dict[str, object] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("GET", "http://lapse.test/d/token")
    if body is None:
        return httpx.Response(status, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_exit_codes_are_distinct() -> None:
    values = [member.value for member in ExitCode.__members__.values()]
    assert len(values) == len(set(values))


@pytest.mark.parametrize(
    ("response", "code", "message"),
    [
        (answer(401, {"detail": "x"}), 3, "The server refused the API key (401); check --key, LAPSE_API_KEY or"),
        (
            answer(401, {"detail": "The password is not right."}, headers={"WWW-Authenticate": "Basic"}),
            3,
            "The password",
        ),
        (answer(404), 4, "No such link on the server (404)."),
        (answer(410, {"reason": "expired"}), 5, "This link is gone (410): it expired."),
        (answer(410, {"reason": "exhausted"}), 5, "This link is gone (410): it is exhausted"),
        (answer(410, {"reason": "revoked"}), 5, "This link is gone (410): it was revoked."),
        (answer(410), 5, "This link is gone (410): it is no longer available."),
        (answer(410, headers={"Lapse-Gone-Reason": "revoked"}), 5, "This link is gone (410): it was revoked."),
        (answer(413, {"detail": "Over 1 MiB."}), 6, "The server refused the file as too large (413): Over 1 MiB."),
        (answer(429, headers={"Retry-After": "30"}), 7, "Too many attempts (429); try again in 30 s."),
        (
            answer(503, headers={"Retry-After": "5"}),
            8,
            "The server is temporarily unavailable (503); try again in 5 s.",
        ),
        (answer(507), 8, "The server is out of disk space (507); try again later."),
        (answer(422, {"detail": "The request is not valid."}), 1, "The server answered 422 Unprocessable Entity: The"),
        (answer(500), 1, "The server answered 500 Internal Server Error."),
    ],
)
def test_each_status_has_its_sentence_and_code(response: httpx.Response, code: int, message: str) -> None:
    error = error_for(response, what="link")
    assert error.exit_code == code
    assert error.message.startswith(message)
    assert "\n" not in error.message


def test_an_html_error_page_from_a_proxy_is_still_one_sentence() -> None:
    request = httpx.Request("GET", "http://lapse.test/api/v1/files")
    error = error_for(httpx.Response(502, text="<html>Bad gateway</html>", request=request))
    assert error.message == "The server answered 502 Bad Gateway."


def test_transport_errors_name_the_origin_never_the_path() -> None:
    refused = connection_error(httpx.ConnectError("[Errno 111] Connection refused"), "http://h:1/d/secret-token")
    assert refused.message == "Could not connect to http://h:1: connection refused."
    assert refused.exit_code == ExitCode.CONNECTION_FAILED
    timeout = connection_error(httpx.ReadTimeout("slow"), "https://h/d/secret-token")
    assert "secret-token" not in timeout.message


def test_the_boundary_turns_any_exception_into_one_line() -> None:
    app = typer.Typer()

    @app.command()
    @reports_errors
    def boom(kind: str) -> None:
        match kind:
            case "bug":
                raise ZeroDivisionError("division by zero")
            case "interrupt":
                raise KeyboardInterrupt
            case "disk":
                raise PermissionError(13, "Permission denied", "/x/y")
            case "exit":
                raise typer.Exit(4)

    runner = CliRunner()
    bug = runner.invoke(app, ["bug"])
    assert (bug.exit_code, bug.stderr) == (1, "lapse: Unexpected error (ZeroDivisionError): division by zero\n")
    interrupted = runner.invoke(app, ["interrupt"])
    assert (interrupted.exit_code, interrupted.stderr) == (130, "lapse: Interrupted.\n")
    disk = runner.invoke(app, ["disk"])
    assert (disk.exit_code, disk.stderr) == (1, "lapse: Cannot use /x/y: Permission denied.\n")
    assert runner.invoke(app, ["exit"]).exit_code == 4
