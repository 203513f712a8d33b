"""The web page: server-rendered HTML over the same services as the API."""

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from lapse.api import problems
from lapse.web import auth, keys, landing, routes
from lapse.web.error_pages import render_error

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    for module in (auth, routes, keys, landing):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    problems.set_error_pages(app, render_error)
