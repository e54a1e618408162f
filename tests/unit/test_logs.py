"""The redacting log filter: a second line of defence behind the `Secret` type."""

from __future__ import annotations

import json
import logging

import pytest

from tokenpost.logs import JsonLinesFormatter, RedactingFilter, configure_logging, redact


@pytest.mark.parametrize(
    ("line", "hidden"),
    [
        ("Authorization: Bearer eyJ0eXAi.abc.def", "eyJ0eXAi.abc.def"),
        ("grant_type=refresh_token&refresh_token=rt-123&client_id=c", "rt-123"),
        ('{"access_token": "at-456", "expires_in": 3600}', "at-456"),
        ("GET /tokenpost/m365?code=xyz789&state=st-1 HTTP/1.1", "xyz789"),
        ("GET /tokenpost/m365?code=xyz789&state=st-1 HTTP/1.1", "st-1"),
        ("AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxl", "dXNlcj1zb21ldXNlckBleGFtcGxl"),
        ("client_secret=s3cr3t", "s3cr3t"),
        ("device_code: dc-999", "dc-999"),
        ("password='hunter2'", "hunter2"),
    ],
)
def test_credentials_are_redacted(line: str, hidden: str) -> None:
    out = redact(line)
    assert hidden not in out
    assert "***" in out


def test_ordinary_text_is_left_alone() -> None:
    line = "refreshed the token of pop:fax; next refresh at 2026-11-27T14:00:00Z"
    assert redact(line) == line


def test_filter_redacts_formatted_arguments() -> None:
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "sent %s", ("refresh_token=rt-abc",), None
    )
    assert RedactingFilter().filter(record)
    assert "rt-abc" not in record.getMessage()


def test_configure_logging_installs_the_filter() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(debug=True)
        [handler] = root.handlers
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
        assert logging.getLogger("httpx").level == logging.WARNING
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def json_log_line(record: logging.LogRecord) -> dict[str, object]:
    RedactingFilter().filter(record)
    parsed = json.loads(JsonLinesFormatter().format(record))
    assert isinstance(parsed, dict)
    return parsed


def test_json_lines_carry_structured_fields_and_redact_them() -> None:
    record = logging.LogRecord(
        "tokenpost.serve", logging.INFO, __file__, 1, "health %s", ("smtp",), None
    )
    record.setting = "smtp"
    record.state = "acquired"
    record.outcome = "refused: AUTH XOAUTH2 dXNlcj1hQGI="
    line = json_log_line(record)
    assert line["msg"] == "health smtp"
    assert line["level"] == "info"
    assert line["logger"] == "tokenpost.serve"
    assert line["setting"] == "smtp"
    assert line["state"] == "acquired"
    assert "dXNlcj1hQGI=" not in json.dumps(line)
    assert str(line["ts"]).endswith("Z")


def test_json_lines_redact_the_message_and_omit_absent_fields() -> None:
    record = logging.LogRecord(
        "httpx", logging.WARNING, __file__, 1, "sent %s", ("refresh_token=rt-abc",), None
    )
    line = json_log_line(record)
    assert "rt-abc" not in str(line["msg"])
    assert set(line) == {"ts", "level", "logger", "msg"}
