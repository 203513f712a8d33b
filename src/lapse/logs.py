"""Logging that never writes a live link: access-log lines show `/d/…` and `/s/…` without their tokens.

A token in a log file is a working download link for whoever reads the logs; the database keeps only hashes,
and the logs must not undo that.
"""

import logging
import re

_TOKEN_PATH = re.compile(r"/([ds])/[^/?#\s]+")


def redact(text: str) -> str:
    return _TOKEN_PATH.sub(r"/\1/…", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_access_logs(logger_name: str = "uvicorn.access") -> None:
    """Idempotent: create_app may run several times in one process (tests, reload)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
