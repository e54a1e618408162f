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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from tokenpost.secret import REDACTED
from tokenpost.text import Gettext, Text, translate

# What a credential value looks like where a rule below finds one: RFC 7235 token68, the
# characters of base64, base64url and URL-safe opaque tokens.
_TOKEN68: Final = r"[A-Za-z0-9\-._~+/]*[A-Za-z0-9\-_~+/]=*"
# Keys whose value is a credential wherever they appear: names, not words of prose.
_CREDENTIAL_KEYS: Final = (
    r"access_token|refresh_token|id_token|device_code|code_verifier|client_secret"
    r"|client_assertion|private_key"
)
# Words that are credential keys only in key=value and quoted-key forms ("the token: …" is
# prose; "token=…" and '"token": "…"' are not).
_WORD_KEYS: Final = r"password|passwd|secret|token|code|state|assertion|apikey|api_key"
# Where a key starts: not inside a longer name, or right after an URL-encoded "?" or "&".
_KEY_START: Final = r"(?:(?<![A-Za-z0-9_])|(?<=%3[Ff])|(?<=%26))"


# A word of prose (English or German, capitalised or not, with trailing punctuation): what
# follows "Bearer" or an Authorization header in a sentence ("Bearer tokens are never sent").
_PROSE: Final = re.compile(r"[A-ZÄÖÜ]?[a-zäöüß]+[.,;:!?)]*")
# …or, after "AUTH <mechanism>", another mechanism name ("250-AUTH LOGIN PLAIN XOAUTH2").
_PROSE_OR_MECHANISM: Final = re.compile(r"[A-ZÄÖÜ]?[a-zäöüß]+[.,;:!?)]*|[A-Z][A-Z0-9_-]{0,19}|=")


@dataclass(frozen=True, slots=True)
class _Rule:
    """A form in which credentials are written; the credential is the group "value".

    `words`: values that are not credentials in this form, left alone (None: every value is one).
    Real credentials are random strings with digits, inner capitals or punctuation, so a form
    that also occurs in prose keeps the words of a sentence.
    """

    pattern: re.Pattern[str]
    words: re.Pattern[str] | None = None


_RULES: Final = (
    # HTTP Authorization / Proxy-Authorization headers, also as dict items.
    _Rule(
        re.compile(
            r"(?i)authorization[\"']?\s*[:=]\s*[\"']?"
            r"(?:(?:bearer|basic|digest|dpop|mac|negotiate)\s+)?(?P<value>[^\s\"',}]+)"
        ),
        words=_PROSE,
    ),
    # Credential keys in forms, query strings, JSON, dict and dataclass reprs, YAML.
    _Rule(
        re.compile(
            rf"{_KEY_START}(?:{_CREDENTIAL_KEYS})[\"']?\s*(?:[:=]|%3[dD])\s*[\"']?"
            r"(?P<value>[^&\s\"',;)}\]]+)"
        )
    ),
    # Other keys only as key=value (forms, query strings, keyword reprs) …
    _Rule(
        re.compile(
            rf"(?i){_KEY_START}(?:{_WORD_KEYS})(?:=|%3[dD])[\"']?"
            r"(?P<value>[^&\s\"',;)}\]]+)"
        )
    ),
    # … or as a quoted key with a quoted value (JSON, dict reprs).
    _Rule(re.compile(rf"(?i)[\"'](?:{_WORD_KEYS})[\"']\s*:\s*[\"'](?P<value>[^\"']+)")),
    # A bearer token anywhere, e.g. in a decoded XOAUTH2 string ("auth=Bearer …").
    _Rule(re.compile(rf"(?i)\bbearer\s+(?P<value>{_TOKEN68})"), words=_PROSE),
    # SMTP and POP3 AUTH with an initial response (RFC 4954, RFC 5034).
    # The command is upper case as clients send it; "--auth oauth2" (an option) is no command.
    _Rule(
        re.compile(r"(?<![\w-])AUTH\s+[A-Za-z0-9_-]+\s+(?P<value>\S+)"),
        words=_PROSE_OR_MECHANISM,
    ),
    # XOAUTH2 ("user=…") and OAUTHBEARER ("n,a=…", "n,,") payloads in base64, on any line.
    _Rule(re.compile(r"(?<![A-Za-z0-9+/])(?P<value>(?:dXNlcj1|bixh|biws)[A-Za-z0-9+/]{8,}={0,2})")),
    # POP3 PASS (RFC 1939): the password is the rest of the line.
    _Rule(re.compile(r"(?<![A-Za-z0-9_-])PASS +(?P<value>[^\r\n]+)")),
    # A password in a URL's user information (a proxy URL, for example).
    _Rule(re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s/@:]*:(?P<value>[^\s/@]+)@")),
)


def _redacted(rule: _Rule) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        value = match.group("value")
        if rule.words is not None and rule.words.fullmatch(value):
            return match.group(0)
        offset = match.start()
        start, end = match.span("value")
        whole = match.group(0)
        return whole[: start - offset] + REDACTED + whole[end - offset :]

    return replace


_REPLACERS: Final = tuple((rule.pattern, _redacted(rule)) for rule in _RULES)


def redact(text: str) -> str:
    """`text` with every credential value in a form tokenpost or a library writes replaced by
    ``***``: key=value in form bodies and query strings, JSON and dict items, Authorization
    headers, bearer tokens, SMTP/POP3 AUTH lines and SASL payloads, POP3 PASS, URL passwords.
    Words of prose are left alone, whatever they follow ("has no token: run …")."""
    for pattern, replace in _REPLACERS:
        text = pattern.sub(replace, text)
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


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``; a traceback is redacted too (an exception's message may
    quote what a library sent or received)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact(super().formatStack(stack_info))


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
        formatter = TextFormatter()
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
