"""What the data of CAPA and UIDL replies say (RFC 2449 §5, RFC 5034 §3, RFC 1939 §7).

Both take data as `MultilineBody` hands it on: whole lines, each ending in CRLF.
"""

from __future__ import annotations

import re
from typing import Final

from tokenpost.errors import RemoteProtocolError
from tokenpost.pop3.wire import CRLF, excerpt

# RFC 1939 §7: a unique-id is 1-70 characters 0x21-0x7E. Longer ones from lax servers are kept
# (they only name messages), up to a bound.
_UIDL_LINE: Final = re.compile(rb" *([1-9][0-9]{0,9}) +([\x21-\x7e]{1,512}) *")


def capability_tags(data: bytes) -> frozenset[str]:
    """CAPA tags upper case (`UIDL`, `STLS`, `EXPIRE`…, parameters dropped); each SASL
    mechanism also as `SASL <MECH>`."""
    tags: set[str] = set()
    for line in data.split(CRLF):
        words = excerpt(line, limit=1000).upper().split()
        if words:
            tags.add(words[0])
            if words[0] == "SASL":
                tags.update(f"SASL {mechanism}" for mechanism in words[1:])
    return frozenset(tags)


def uidl_entries(data: bytes) -> list[tuple[int, str]]:
    """(message number, unique id) for each line of a UIDL listing.

    Raises:
        RemoteProtocolError: a line is not `<number> <unique-id>`.
    """
    entries = []
    for line in data.split(CRLF)[:-1]:
        match = _UIDL_LINE.fullmatch(line)
        if match is None:
            raise RemoteProtocolError("malformed UIDL line {line!r}", line=excerpt(line))
        entries.append((int(match.group(1)), match.group(2).decode("ascii")))
    return entries
