"""The redacting log filter: a second line of defence behind the `Secret` type."""

from __future__ import annotations

import base64
import json
import logging
import re
import string

import pytest
from babel.messages.pofile import read_po

from tokenpost import sasl
from tokenpost.i18n import LOCALE_DIR
from tokenpost.logs import (
    JsonLinesFormatter,
    RedactingFilter,
    TextFormatter,
    configure_logging,
    redact,
)
from tokenpost.secret import Secret
from tokenpost_sandbox.store import new_tokens

GERMAN_PO = LOCALE_DIR / "de" / "LC_MESSAGES" / "tokenpost.po"


# Real shapes: the sandbox authorization server's tokens, a JWT, SASL payloads from our encoders.
ISSUED = new_tokens(with_refresh=True)
AT = ISSUED.access_token
RT = ISSUED.refresh_token or ""
JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
CODE = "Yz3kQ9-authorization-code_1"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
DEVICE_CODE = "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS"
ACCOUNT = "alice@example.test"
XOAUTH2 = sasl.xoauth2(ACCOUNT, Secret(AT)).initial_response()
OAUTHBEARER = sasl.oauthbearer(ACCOUNT, Secret(AT), "smtp.example.test", 587).initial_response()
OAUTHBEARER_NO_USER = sasl.oauthbearer("", Secret(AT), "pop.example.test", 995).initial_response()
PLAIN = base64.b64encode(b"\0alice@example.test\0correct horse 7").decode()
BASIC = base64.b64encode(b"client-id:s3cr3t-client").decode()
assert XOAUTH2 is not None
assert OAUTHBEARER is not None
assert OAUTHBEARER_NO_USER is not None


# (a line a library or tokenpost might log, the credential values it holds)
LEAKS: list[tuple[str, tuple[str, ...]]] = [
    (f"Authorization: Bearer {AT}", (AT,)),
    (f"authorization: bearer {JWT}", (JWT,)),
    (f"{{'Authorization': 'Bearer {AT}', 'Accept': 'application/json'}}", (AT,)),
    (f'Headers({{"authorization": "Bearer {JWT}"}})', (JWT,)),
    (f"Authorization: Basic {BASIC}", (BASIC,)),
    (f"Proxy-Authorization: Basic {BASIC}", (BASIC,)),
    (f"grant_type=refresh_token&refresh_token={RT}&client_id=c", (RT,)),
    (
        f"grant_type=authorization_code&code={CODE}&code_verifier={VERIFIER}"
        "&client_secret=s3cr3t-cs&redirect_uri=http%3A%2F%2F127.0.0.1%3A8123%2F",
        (CODE, VERIFIER, "s3cr3t-cs"),
    ),
    (
        f"grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code={DEVICE_CODE}",
        (DEVICE_CODE,),
    ),
    (
        json.dumps(
            {
                "access_token": AT,
                "token_type": "Bearer",
                "expires_in": 3599,
                "refresh_token": RT,
                "id_token": JWT,
            }
        ),
        (AT, RT, JWT),
    ),
    (repr({"access_token": AT, "token_type": "Bearer", "refresh_token": RT}), (AT, RT)),
    (f"Issue token {{'access_token': '{AT}', 'expires_in': 3600}}", (AT,)),
    (json.dumps({"device_code": DEVICE_CODE, "user_code": "WDJB-MJHT"}), (DEVICE_CODE,)),
    (f"GET /tokenpost/sbx?code={CODE}&state=st-8f3a2 HTTP/1.1", (CODE, "st-8f3a2")),
    (f"redirect: http://localhost:8123/?state=s-1&code={CODE}&iss=https%3A%2F%2Fas", (CODE,)),
    (f"next=%2Fcb%3Fcode%3D{CODE}", (CODE,)),
    (f"TokenGrant(access_token='{AT}', refresh_token='{RT}', expires_at=1.0)", (AT, RT)),
    (f"refresh_token: {RT}", (RT,)),
    (f"device_code: {DEVICE_CODE}", (DEVICE_CODE,)),
    ("password=hunter2-7", ("hunter2-7",)),
    ("password='hunter2'", ("hunter2",)),
    ('{"password": "hunter2"}', ("hunter2",)),
    (f"C: AUTH XOAUTH2 {XOAUTH2.reveal()}", (XOAUTH2.reveal(),)),
    (f"AUTH OAUTHBEARER {OAUTHBEARER.reveal()}", (OAUTHBEARER.reveal(),)),
    (f"AUTH PLAIN {PLAIN}", (PLAIN,)),
    (f"send: b'{XOAUTH2.reveal()}\\r\\n'", (XOAUTH2.reveal(),)),  # the two-line form
    (f"C: {OAUTHBEARER.reveal()}", (OAUTHBEARER.reveal(),)),
    (f"C: {OAUTHBEARER_NO_USER.reveal()}", (OAUTHBEARER_NO_USER.reveal(),)),
    (f"user={ACCOUNT}\x01auth=Bearer {AT}\x01\x01", (AT,)),
    ("C: PASS correct horse 7", ("correct horse 7",)),
    ("proxy http://proxyuser:pr0xy-pw@proxy.example:3128 refused", ("pr0xy-pw",)),
]


@pytest.mark.parametrize(("line", "secrets"), LEAKS, ids=[f"leak-{i}" for i in range(len(LEAKS))])
def test_credential_values_are_redacted(line: str, secrets: tuple[str, ...]) -> None:
    out = redact(line)
    for value in secrets:
        assert value not in out
    assert "***" in out


# Lines of prose, English and German: advice and reasons tokenpost logs. Not a word may go.
PROSE = [
    "pop:fax has no token: 'tokenpost token get pop:fax'",
    "pop:fax hat kein Token: 'tokenpost token get pop:fax'",
    "the token of smtp is invalid: invalid_grant: consent revoked",
    "Token: gültig bis 2026-12-03 10:00 UTC",
    "refreshed the token of pop:fax; next refresh at 2026-11-27T14:00:00Z",
    "a bearer token is never sent unencrypted; use starttls or tls",
    "Ein Bearer Token wird nie unverschlüsselt gesendet; verwenden Sie starttls oder tls",
    "Bearer-Token werden nie unverschlüsselt gesendet.",
    "250-AUTH LOGIN PLAIN XOAUTH2",
    "the server offers AUTH only after STARTTLS",
    "viele Server bieten AUTH erst nach STARTTLS an",
    "password: the account's password ('-' reads standard input)",
    "Passwort: das Passwort des Kontos",
    "smtp: Abgerufen; läuft ab 2026-12-03T10:00:00Z",
    "state: acquired",
    "code: enter WDJB-MJHT at https://example.test/device",
    "Authorization ended: the user denied access",
    "Autorisierung beendet: access_denied",
    "authorization: waiting for the administrator",
]


@pytest.mark.parametrize("line", PROSE)
def test_prose_is_left_alone(line: str) -> None:
    assert redact(line) == line


class _Sample(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "pop:fax"


def _filled(message: str) -> str:
    """A catalog message with sample values in its placeholders ({name} and %s alike)."""
    message = re.sub(r"%[sdgr]", "pop:fax", message)
    try:
        return string.Formatter().vformat(message, (), _Sample())
    except (ValueError, KeyError, IndexError):
        return message


def test_no_message_of_the_catalog_loses_a_word() -> None:
    """Every sentence tokenpost can say, in English and German, passes unchanged."""
    with GERMAN_PO.open("rb") as po:
        catalog = read_po(po)
    texts = []
    for message in catalog:
        for text in (message.id, message.string):
            parts = text if isinstance(text, tuple) else (text,)
            texts += [_filled(part) for part in parts if part]
    assert len(texts) > 200
    changed = [(text, redact(text)) for text in texts if redact(text) != text]
    assert not changed


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


def test_a_traceback_is_redacted_in_text_logs_too() -> None:
    error = RuntimeError(f"token endpoint said: refresh_token={RT}")
    exc_info = (RuntimeError, error, None)
    record = logging.LogRecord("httpx", logging.ERROR, __file__, 1, "failed", (), exc_info)
    RedactingFilter().filter(record)
    out = TextFormatter().format(record)
    assert "RuntimeError" in out
    assert RT not in out
