"""The syntax of setting values: host names, https URLs, e-mail addresses, command lines.

Predicates, and the rule a command line breaks; `settings.validate` names the fields. Sources:
RFC 1123 §2.1 (host names; IDNA via the stdlib codec), RFC 5321 §4.5.3.1 (address lengths),
RFC 5322 §3.2.3 (atext), RFC 6531 (UTF-8 local parts), and POSIX shell quoting for command lines
(`shlex`, no shell is ever run).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Final
from urllib.parse import urlsplit

from tokenpost.text import N_

SPACE_OR_CONTROL: Final = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
LINE_BREAK_OR_NUL: Final = re.compile(r"[\r\n\x00]")
_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# RFC 5322 §3.2.3 atext, plus any non-ASCII character (RFC 6531 SMTPUTF8 local parts).
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]+"
_LOCAL_PART: Final = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")


def is_host(text: str) -> bool:
    """A host name or an IPv4/IPv6 address (no brackets)."""
    return is_ip_address(text) or is_hostname(text)


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_hostname(text: str) -> bool:
    """RFC 1123 §2.1 host name, after IDNA encoding; the last label is not all digits."""
    if not text or text.endswith("."):
        return False
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_name.split(".")
    return (
        len(ascii_name) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def is_https_url(url: str, *, allow_query: bool) -> bool:
    """An https URL with a host, no user:password@ and no fragment (and no query unless
    `allow_query`)."""
    # urlsplit silently drops tabs and newlines (WHATWG), so refuse them first.
    if SPACE_OR_CONTROL.search(url) or "#" in url or (not allow_query and "?" in url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not 0-65535 raises ValueError
    except ValueError:
        return False
    return (
        parts.scheme.lower() == "https"
        and parts.hostname is not None
        and is_host(parts.hostname)
        and "@" not in parts.netloc
    )


def is_addr_spec(text: str) -> bool:
    """A practical RFC 5321 mailbox: dot-atom local part (UTF-8 allowed), host-name domain."""
    if len(text) > 254 or SPACE_OR_CONTROL.search(text):
        return False
    local, at, domain = text.rpartition("@")
    return (
        bool(at)
        and len(local.encode()) <= 64
        and bool(_LOCAL_PART.fullmatch(local))
        and is_hostname(domain)
    )


def command_words(text: str) -> list[str]:
    """A command line split as a POSIX shell splits it (quotes, backslashes), without a shell.

    Raises:
        ValueError: an unbalanced quote or a trailing backslash.
    """
    return shlex.split(text, comments=False, posix=True)


def is_program(word: str) -> bool:
    """The first word of a command line: an absolute path, or a name looked up in PATH.

    A relative path ("bin/x", "./x") is refused: it would depend on tokenpost's working directory.
    """
    return word.startswith("/") or (bool(word) and "/" not in word)


def command_rule(text: str) -> str | None:
    """The rule `text` breaks as a command line run without a shell (a msgid), or None.

    Only the syntax is checked, never whether the program exists: it may be installed after the
    setting is saved. The rule never quotes `text` (an argument may be a password).
    """
    if not text.strip():
        return N_("must not be empty")
    if LINE_BREAK_OR_NUL.search(text):
        return N_("must not contain line breaks or NUL")
    try:
        words = command_words(text)
    except ValueError:
        return N_("must be quoted as in a shell: a quote is not closed or a backslash ends it")
    if not words or not is_program(words[0]):
        return N_("the program (first word) must be an absolute path or a name without '/'")
    return None


LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})


def loopback_redirect_rule(uri: str) -> str | None:
    """The rule a browser flow's redirect URI breaks (a msgid), or None.

    RFC 8252 §7.3 and §8.3: ``http`` on a loopback host, an optional port (none: a free port is
    chosen when the flow starts, which Microsoft and Google both accept; RFC 8252 §7.3 requires
    authorization servers to), an optional path, no query, fragment or user:password@.
    """
    if SPACE_OR_CONTROL.search(uri) or "#" in uri or "?" in uri:
        return N_("must be http://localhost, http://127.0.0.1 or http://[::1], no query or #")
    try:
        parts = urlsplit(uri)
        _ = parts.port  # a port that is not 0-65535 raises ValueError
    except ValueError:
        return N_("must be http://localhost, http://127.0.0.1 or http://[::1], no query or #")
    host = parts.netloc.rpartition(":")[0] if parts.port is not None else parts.netloc
    if parts.scheme != "http" or host.lower() not in LOOPBACK_HOSTS:
        return N_("must be http://localhost, http://127.0.0.1 or http://[::1], no query or #")
    if parts.port == 0:
        return N_("the port must be 1-65535, or none for a free port chosen at each start")
    return None


def proxy_rule(url: str) -> str | None:
    """The rule an HTTP proxy URL breaks (a msgid), or None: ``http://`` or ``https://``, a
    host, an optional port, nothing else. A proxy password is never stored in a setting: it
    belongs in the HTTPS_PROXY variable of tokenpost's environment."""
    if SPACE_OR_CONTROL.search(url) or "#" in url or "?" in url:
        return N_("must be http://HOST:PORT or https://HOST:PORT")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return N_("must be http://HOST:PORT or https://HOST:PORT")
    if "@" in parts.netloc:
        return N_(
            "must not hold a user name or password; put a proxy that needs one in the "
            "HTTPS_PROXY variable of tokenpost's environment"
        )
    if (
        parts.scheme not in ("http", "https")
        or parts.hostname is None
        or not is_host(parts.hostname)
        or parts.path not in ("", "/")
    ):
        return N_("must be http://HOST:PORT or https://HOST:PORT")
    return None
