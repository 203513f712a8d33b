"""Logging that never writes a secret: access-log lines keep the method, target shape and status, not the tokens.

A token in a log file is a working download link for whoever reads the logs; the database keeps only hashes,
and the logs must not undo that. Redaction goes by shape, not by route, because a client chooses the path:
`/d//{token}`, `/d/%2e%2e/{token}` or `/anything/{token}` carry a live token just as well as `/d/{token}`.

- Any run of URL characters that, percent-decoded, holds 16 or more url-safe characters in a row (link tokens
  are 32, grants end in a 43-character MAC, API keys are `lapse_` and 43 more) becomes `…`. Our public ids
  (20 hex digits, not secret) are kept, so API paths stay readable.
- The value of any query (or form) parameter whose decoded name mentions a secret (`api_key`, `token`,
  `password`, `X-Amz-Signature`, …, in any case) becomes `…`, however short.
"""

import logging
import re
from urllib.parse import unquote_plus

MASK = "…"
# What may stand in a URL besides the delimiters we split on; `%` and `+` so encoded secrets are caught whole.
_URL_RUN = re.compile(r"[A-Za-z0-9_.~%+-]{16,}")
_SECRET_RUN = re.compile(r"[A-Za-z0-9_-]{16,}")
_PUBLIC_ID = re.compile(r"[0-9a-f]{20}")  # lapse.tokens.new_id
# A value ends where the next part of the target begins (uvicorn 0.55 logs `;a=1?b=2` as one path).
_PARAMETER = re.compile(
    r"(?P<name>[^\s?&;=#/\"']+)=(?P<value>[^\s&;?#\"']*)"
)  # a value ends where the next part begins
# Fragments of parameter names that carry secrets: api_key, key, token, grant, password, passwd, pwd, secret,
# signature / sig (X-Amz-Signature), credential (X-Amz-Credential), auth, session, csrf, code (OAuth).
_SECRET_NAMES = ("key", "token", "grant", "pass", "pwd", "secret", "sig", "credential", "auth", "session",
                 "csrf", "code")  # fmt: skip
_DECODE_ROUNDS = 3  # `%2541` is `%41` is `A`: decode until stable, a few times at most


def _decoded(text: str) -> str:
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _is_secret_name(name: str) -> bool:
    lowered = _decoded(name).lower()
    return any(fragment in lowered for fragment in _SECRET_NAMES)


def _mask_parameter(match: re.Match[str]) -> str:
    if match.group("value") and _is_secret_name(match.group("name")):
        return f"{match.group('name')}={MASK}"
    return match.group(0)


def _mask_run(match: re.Match[str]) -> str:
    decoded = _decoded(match.group(0))
    for run in _SECRET_RUN.findall(decoded):
        if not _PUBLIC_ID.fullmatch(run):
            return MASK
    return match.group(0)


def redact(text: str) -> str:
    return _URL_RUN.sub(_mask_run, _PARAMETER.sub(_mask_parameter, text))


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {name: redact(arg) if isinstance(arg, str) else arg for name, arg in record.args.items()}
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_access_logs(logger_name: str = "uvicorn.access") -> None:
    """Idempotent: create_app may run several times in one process (tests, reload)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
