"""Logging set-up: tokenpost's own lines in the process's language, with redaction as a second
line of defence.

The first line of defence is the type: every secret is a `Secret`, which formats as ``***``. The
redacting filter catches what a library might log on its own (a bearer header, a form body, a
redirect query).

Log lines are for people: tokenpost's own lines (loggers ``tokenpost.*``, above DEBUG) are
translated before they are formatted. Their format string is the msgid, so it must be a string
literal with ``%s``-style placeholders; an argument that is a `Text` or a TokenpostError is shown
in the same language. Debug lines are for developers and stay English.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Final

from tokenpost.text import Gettext, Text, translate

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


class TranslatingFilter(logging.Filter):
    """Translates tokenpost's own records (message and message-like arguments) with `gettext`."""

    def __init__(self, gettext: Gettext) -> None:
        super().__init__()
        self._gettext = gettext

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("tokenpost") or record.levelno <= logging.DEBUG:
            return True
        if isinstance(record.msg, Text):
            record.msg = record.msg.translate(self._gettext)
        elif isinstance(record.msg, str):
            record.msg = self._gettext(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._argument(arg) for arg in record.args)
        return True

    def _argument(self, value: object) -> object:
        if isinstance(value, Text) or callable(getattr(value, "as_text", None)):
            return translate(value, self._gettext)
        return value


class RedactingFilter(logging.Filter):
    """Formats the record once, redacts it, and freezes the result into the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


# Fields a record may carry through `extra=` that the JSON format emits as keys of their own.
STRUCTURED_FIELDS: Final = ("setting", "event", "state", "expires_at", "next_check", "outcome")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, msg and any structured
    fields the record carries. The message is already redacted by `RedactingFilter`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in STRUCTURED_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(
    *, debug: bool = False, json_lines: bool = False, gettext: Gettext | None = None
) -> None:
    """Log to stderr, as text or JSON lines, tokenpost's lines translated with `gettext` (by
    default the language of the process, `i18n.active`); quiet third-party loggers that would
    log request lines at INFO."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if json_lines:
        formatter = JsonLinesFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    handler.setFormatter(formatter)
    if gettext is None:
        from tokenpost.i18n import active

        gettext = active().gettext
    handler.addFilter(TranslatingFilter(gettext))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    for noisy in ("httpx", "httpcore", "aiosqlite", "sqlalchemy", "alembic", "aiosmtplib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
