"""The server helpers under their former name: they live in tests/process.py, shared with tests/cli and tests/web."""

from tests.helpers import free_port
from tests.process import LAPSE, SECRET_KEY, LapseServer, fresh_database, query

__all__ = ["LAPSE", "SECRET_KEY", "LapseServer", "free_port", "fresh_database", "query"]
