"""CAPA and UIDL data as the driver reads them (RFC 2449 §5, RFC 5034 §3, RFC 1939 §7)."""

from __future__ import annotations

import pytest

from tokenpost.errors import RemoteProtocolError
from tokenpost.pop3.listings import capability_tags, uidl_entries


def test_gmail_capabilities() -> None:
    data = (
        b"USER\r\nRESP-CODES\r\nEXPIRE 0\r\nLOGIN-DELAY 300\r\nTOP\r\nUIDL\r\n"
        b"X-GOOGLE-VERHOEVEN\r\nSASL PLAIN XOAUTH2\r\n"
    )
    assert capability_tags(data) == {
        "USER",
        "RESP-CODES",
        "EXPIRE",
        "LOGIN-DELAY",
        "TOP",
        "UIDL",
        "X-GOOGLE-VERHOEVEN",
        "SASL",
        "SASL PLAIN",
        "SASL XOAUTH2",
    }


def test_capability_names_are_case_insensitive_and_blank_lines_ignored() -> None:
    assert capability_tags(b"stls\r\n\r\nsasl xoauth2\r\n") == {"STLS", "SASL", "SASL XOAUTH2"}


def test_uidl_entries() -> None:
    data = b"1 whqtswO00WBw418f9t5JxYwZ\r\n2  QhdPYR:00WBw1Ph7x7 \r\n"
    assert uidl_entries(data) == [(1, "whqtswO00WBw418f9t5JxYwZ"), (2, "QhdPYR:00WBw1Ph7x7")]
    assert uidl_entries(b"") == []


@pytest.mark.parametrize(
    "line",
    [b"0 abc", b"x abc", b"1", b"1 two words", b"1 caf\xc3\xa9", b"1 " + b"u" * 513, b"-1 a"],
)
def test_malformed_uidl_lines(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="UIDL"):
        uidl_entries(line + b"\r\n")
