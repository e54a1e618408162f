"""Logging set-up, with redaction as a second line of defence.

The first line is the type: every secret is a `Secret`, which formats as ``***``. The filter here
catches what a library might log on its own (a bearer header, a form body, a redirect query).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Final

_SECRET_PATTERNS: Final = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',]+"),
    re.compile(
        r"(?i)((?:access_token|refresh_token|id_token|device_code|code|code_verifier|state|"
        r"client_secret|password|token)[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]+"
    ),
    re.compile(r"(?i)(AUTH\s+(?:XOAUTH2|OAUTHBEARER|PLAIN|LOGIN)\s+)\S+"),
)


def redact(text: str) -> str:
    """Replace anything that looks like a credential value with ***."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class RedactingFilter(logging.Filter):
    """Formats the record once, redacts it, and freezes the result into the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def configure_logging(*, debug: bool = False) -> None:
    """Log to stderr; quiet third-party loggers that would log request lines at INFO."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    for noisy in ("httpx", "httpcore", "aiosqlite", "sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
