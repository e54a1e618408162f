"""Server-side parsing of the two bearer-token SASL blobs the sandbox mail server accepts.

Written independently of tokenpost's client-side `sasl` module, so that a mistake in one is
caught by the other rather than mirrored.

- XOAUTH2 (Google / Microsoft): ``user=<user>^Aauth=Bearer <token>^A^A``
- OAUTHBEARER (RFC 7628 §3.1): ``<gs2-header>^A<key>=<value>^A…^A`` with a required
  ``auth=Bearer <token>`` pair; the GS2 header (RFC 5801) may carry ``a=<authzid>``.
"""

from __future__ import annotations

import re
from typing import Final

from tokenpost.secret import Secret

_BEARER: Final = re.compile(r"bearer ([\x21-\x7e]+)", re.IGNORECASE)
_KEY: Final = re.compile(r"[A-Za-z]+")
_BAD_ESCAPE: Final = re.compile(r"=(?!2C|3D)")


def parse_xoauth2(blob: bytes) -> tuple[str, Secret] | None:
    """(user, token), or None for anything but a well-formed XOAUTH2 response."""
    text = _text(blob)
    if text is None or not text.endswith("\x01\x01"):
        return None
    parts = text[:-2].split("\x01")
    if len(parts) != 2 or not parts[0].startswith("user=") or not parts[1].startswith("auth="):
        return None
    user, token = parts[0][len("user=") :], _bearer(parts[1][len("auth=") :])
    if not user or token is None:
        return None
    return user, token


def parse_oauthbearer(blob: bytes) -> tuple[str | None, Secret] | None:
    """(authzid or None, token), or None for anything but a well-formed RFC 7628 response."""
    text = _text(blob)
    if text is None or not text.endswith("\x01\x01"):
        return None
    header, _, rest = text[:-1].partition("\x01")
    well_formed, user = _gs2_authzid(header)
    if not well_formed:
        return None
    pairs: dict[str, str] = {}
    for pair in rest[:-1].split("\x01") if rest else []:
        key, equals, value = pair.partition("=")
        if not equals or not _KEY.fullmatch(key) or key in pairs:
            return None
        pairs[key] = value
    token = _bearer(pairs.get("auth", ""))
    if token is None:
        return None
    return user, token


def _gs2_authzid(header: str) -> tuple[bool, str | None]:
    """RFC 5801 §4: ``n,`` / ``y,`` then an optional ``a=<authzid>`` then ``,``.

    Returns (well-formed, authzid or None). Channel binding (``p=``) is malformed here: the
    mechanism does not support it.
    """
    fields = header.split(",")
    if len(fields) != 3 or fields[0] not in ("n", "y") or fields[2] != "":
        return False, None
    if fields[1] == "":
        return True, None
    raw = fields[1][2:]
    if not fields[1].startswith("a=") or not raw or _BAD_ESCAPE.search(raw):
        return False, None
    return True, raw.replace("=2C", ",").replace("=3D", "=")


def _bearer(value: str) -> Secret | None:
    match = _BEARER.fullmatch(value)
    return None if match is None else Secret(match.group(1))


def _text(blob: bytes) -> str | None:
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        return None
