"""A server process freezes what its startup made (`create_app(freeze_heap=True)`, which `app_from_env` asks for),
so the cycle collector's full passes no longer walk it under load; an app made any other way leaves the heap alone
(a test process makes hundreds of apps, and frozen ones would never be collected)."""

import gc
from collections.abc import Iterator

import pytest
from asgi_lifespan import LifespanManager

from lapse.app import app_from_env, create_app
from lapse.settings import Settings
from tests.helpers import TEST_SECRET

pytestmark = pytest.mark.anyio


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # give the test process its objects back


@pytest.mark.usefixtures("unfrozen")
async def test_the_server_factory_freezes_the_heap_its_startup_made(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAPSE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LAPSE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LAPSE_SECRET_KEY", TEST_SECRET)
    app = app_from_env()
    assert gc.get_freeze_count() == 0  # frozen at startup, with the runtime open, not when the app is made
    async with LifespanManager(app):
        assert gc.get_freeze_count() > 10_000  # the modules, the app and the runtime, not a handful of objects


@pytest.mark.usefixtures("unfrozen")
async def test_an_app_made_for_tests_leaves_the_heap_alone(settings: Settings) -> None:
    async with LifespanManager(create_app(settings, sweep=False)):
        assert gc.get_freeze_count() == 0
