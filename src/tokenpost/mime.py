"""Internet messages (RFC 5322; MIME: RFC 2045-2047, RFC 2231) built as a stream of bytes, no I/O.

    draft = Draft(to=("ops@example.com",), subject="Scan", attachments=(Attachment("a.pdf", data),))
    chunks = build(draft, Mailbox("Scanner", "scanner@example.com"), date=now, message_id=mid)

Plain headers (short printable ASCII, checked addresses) are written as they are; any other is
encoded by the stdlib email package (RFC 2047 encoded words, folding at 78 columns), file names
here (RFC 2231). Bodies are written here too, so an attachment is base64-encoded chunk by chunk as
the caller's iterable yields it and memory stays bounded whatever its size. Every line ends in
CRLF; dot-stuffing is the transport's job. Bcc recipients go to the envelope only.

Every value that lands in a header is checked first: a line break in any of them (header
injection) or an address that is not a plain ``local@domain`` is a UsageError naming the field.
"""

from __future__ import annotations

import binascii
import email.header
import email.policy
import email.utils
import hashlib
import mimetypes
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from tokenpost.errors import UsageError

_POLICY: Final = email.policy.SMTP  # CRLF, 78-column folding, RFC 2047 for non-ASCII
_BASE64_LINE: Final = 57  # input octets per 76-character base64 line (RFC 2045 §6.8)
_MAX_LINE: Final = 998  # octets per line without CRLF (RFC 5322 §2.1.1)
_MAX_ADDRESS: Final = 254  # RFC 5321 §4.5.3.1 path limit, less the angle brackets

# ASCII addr-spec with a dot-atom local part and a host name or address literal: what every
# SMTP server accepts without SMTPUTF8 (quoted local parts are legal but refused by many).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS: Final = re.compile(
    rf"{_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}(?:\.{_LABEL})*|\[[A-Za-z0-9.:]+\])", re.ASCII
)
_LINE_BREAK: Final = re.compile(r"[\r\n]")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # C0 and DEL, tab allowed
_NEWLINE: Final = re.compile(r"\r\n|\r|\n")
_PLAIN_NAME: Final = re.compile(r'[^"\\<>\x00-\x1f\x7f-\U0010ffff]+')
_PLAIN_NAME_MAX: Final = 200
_PLAIN_TEXT: Final = re.compile(r"[\x20-\x7e]*")
_MESSAGE_ID: Final = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_FOLD_AT: Final = 78  # columns a header line should stay within (RFC 5322 §2.1.1)

# Types a device sends most are pinned, whatever the host's mime.types says.
_PINNED_TYPES: Final = {
    ".pdf": "application/pdf",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}
_COMPRESSED_TYPES: Final = {"gzip": "application/gzip", "bzip2": "application/x-bzip2"}
OCTET_STREAM: Final = "application/octet-stream"

_TEXT_TYPE: Final = b'Content-Type: text/plain; charset="utf-8"\r\n'


@dataclass(frozen=True, slots=True)
class Mailbox:
    """The sender: display name (may be empty or non-ASCII) and address."""

    name: str
    address: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to attach: its name (no directory) and its content as chunks of bytes.

    `content` is iterated once, while the message is written; chunk size bounds memory."""

    filename: str
    content: Iterable[bytes]


@dataclass(frozen=True, slots=True)
class Draft:
    """What the user composes; the sender comes from the SMTP setting."""

    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""
    attachments: tuple[Attachment, ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every envelope recipient (to, cc, bcc), each once, in order."""
        return tuple(dict.fromkeys((*self.to, *self.cc, *self.bcc)))


def check_address(field: str, address: str) -> str:
    """`address` if it is a plain ASCII ``local@domain``; else UsageError naming `field`."""
    if _LINE_BREAK.search(address):
        raise UsageError(f"{field}: must not contain a line break")
    if len(address) > _MAX_ADDRESS or not _ADDRESS.fullmatch(address):
        raise UsageError(
            f"{field}: {address!r} is not an address like name@example.com "
            f"(ASCII, at most {_MAX_ADDRESS} characters)"
        )
    return address


def check_draft(draft: Draft, sender: Mailbox) -> None:
    """Raise UsageError (field and rule) for anything `build` would refuse."""
    check_address("sender address", sender.address)
    _check_text("sender name", sender.name)
    if not draft.recipients:
        raise UsageError("to: at least one recipient is needed (to, cc or bcc)")
    for field, addresses in (("to", draft.to), ("cc", draft.cc), ("bcc", draft.bcc)):
        for address in addresses:
            check_address(field, address)
    _check_text("subject", draft.subject)
    for attachment in draft.attachments:
        _check_text("attachment", attachment.filename)
        if not attachment.filename.strip():
            raise UsageError("attachment: the file name must not be empty")


def make_message_id(unique: str, sender_address: str) -> str:
    """A Message-ID (RFC 5322 §3.6.4) in the sender's domain; `unique` is random, [0-9a-z.]."""
    return f"<{unique}@{sender_address.rpartition('@')[2]}>"


def content_type_for(filename: str) -> str:
    """The MIME type of an attachment by its extension; application/octet-stream if unknown.

    message/* and multipart/* are sent as octet streams: they may not be base64-encoded
    (RFC 2046 §5.2.1, §5.1.1)."""
    dot = filename.rfind(".")
    pinned = _PINNED_TYPES.get(filename[dot:].lower()) if dot >= 0 else None
    if pinned is not None:
        return pinned
    guessed, encoding = mimetypes.guess_type(filename, strict=False)
    if encoding is not None:
        return _COMPRESSED_TYPES.get(encoding, OCTET_STREAM)
    if guessed is None or guessed.startswith(("message/", "multipart/")):
        return OCTET_STREAM
    return guessed


def build(draft: Draft, sender: Mailbox, *, date: datetime, message_id: str) -> Iterator[bytes]:
    """The message as chunks of bytes (CRLF line ends, not dot-stuffed).

    Checks everything first (UsageError naming the field), so a bad draft fails before any
    connection; the attachments' content is read only as the result is iterated.
    """
    check_draft(draft, sender)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise UsageError("message id: must be one '<…@…>' token of printable ASCII")
    return _chunks(draft, sender, date, message_id)


def _check_text(field: str, value: str) -> None:
    if _LINE_BREAK.search(value):
        raise UsageError(f"{field}: must not contain a line break")
    if _CONTROL.search(value):
        raise UsageError(f"{field}: must not contain control characters")


def _chunks(draft: Draft, sender: Mailbox, date: datetime, msg_id: str) -> Iterator[bytes]:
    # "=_" never occurs in quoted-printable or base64 output, so the boundary can only clash
    # with a 7bit body, which is then sent quoted-printable instead.
    boundary = "=_" + hashlib.sha256(msg_id.encode()).hexdigest()[:32]
    encoding, text = _text_body(draft.body, boundary if draft.attachments else None)
    text_head = _TEXT_TYPE + f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode()
    head = _message_head(draft, sender, date, msg_id)
    if not draft.attachments:
        ending = b"" if not text or text.endswith(b"\r\n") else b"\r\n"
        yield head + text_head + text + ending
        return
    yield head + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'.encode()
    delimiter = f"--{boundary}\r\n".encode()
    yield b"\r\n" + delimiter + text_head + text + b"\r\n" + delimiter
    for index, attachment in enumerate(draft.attachments):
        if index:
            yield delimiter
        yield _attachment_head(attachment.filename)
        yield from _attachment_body(attachment.content)
    yield f"--{boundary}--\r\n".encode()


def _message_head(draft: Draft, sender: Mailbox, date: datetime, msg_id: str) -> bytes:
    lines = [_from_header(sender)]
    if draft.to:
        lines.append(_address_list("To", draft.to))
    if draft.cc:
        lines.append(_address_list("Cc", draft.cc))
    if draft.subject:
        lines.append(_unstructured("Subject", draft.subject))
    fixed = f"Date: {email.utils.format_datetime(date)}\r\nMessage-ID: {msg_id}\r\n"
    lines.append(fixed.encode("ascii") + b"MIME-Version: 1.0\r\n")
    return b"".join(lines)


def _from_header(sender: Mailbox) -> bytes:
    """From with the sender name: a phrase (quoted as needed) when it is short ASCII, else RFC
    2047 encoded words only. The email package's folder may put an encoded word right next to
    an atom, which readers split wrongly, so a name that needs encoding is encoded whole."""
    name = sender.name.strip()
    if not name:
        value = sender.address
    elif name.isascii() and len(name) <= _PLAIN_NAME_MAX:
        value = email.utils.formataddr((name, sender.address))
    else:
        words = email.header.Header(name, "utf-8", header_name="From").encode(linesep="\r\n")
        value = f"{words}\r\n <{sender.address}>"
    return f"From: {value}\r\n".encode("ascii")


def _address_list(name: str, addresses: tuple[str, ...]) -> bytes:
    """`name: a, b, …` folded before 78 columns (the addresses are checked plain ASCII)."""
    lines = [f"{name}:"]
    for index, address in enumerate(addresses):
        piece = f" {address}" + ("," if index < len(addresses) - 1 else "")
        if len(lines[-1]) + len(piece) > _FOLD_AT and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += piece
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _unstructured(name: str, value: str) -> bytes:
    """`name: value` as is when it fits a line as printable ASCII (and holds nothing a reader
    would take for an encoded word); else encoded and folded by the email package (RFC 2047)."""
    line = f"{name}: {value}\r\n"
    if len(line) <= _FOLD_AT + 2 and _PLAIN_TEXT.fullmatch(value) and "=?" not in value:
        return line.encode("ascii")
    return _POLICY.fold_binary(name, _POLICY.header_store_parse(name, value)[1])


def _attachment_head(filename: str) -> bytes:
    """An attachment's part headers and the blank line after them."""
    typed = f"Content-Type: {content_type_for(filename)}\r\n".encode("ascii")
    return typed + _disposition(filename) + b"Content-Transfer-Encoding: base64\r\n\r\n"


def _attachment_body(content: Iterable[bytes]) -> Iterator[bytes]:
    empty = True
    for lines in base64_lines(content):
        empty = False
        yield lines
    if empty:
        yield b"\r\n"  # the next delimiter's own CRLF: lines otherwise end in one


def _disposition(filename: str) -> bytes:
    """Content-Disposition with the file name: a quoted string when it is short plain ASCII,
    else RFC 2231 percent-encoded UTF-8 in continuations of at most 64 characters.

    Written here rather than by the email package, whose folder turns an RFC 2231 ASCII value
    back into a quoted string: readers strip quotes and angle brackets around a quoted name as
    if it were an address. Readers strip surrounding spaces too, so the name is sent stripped.
    """
    name = filename.strip()
    if len(name) <= _PLAIN_NAME_MAX and _PLAIN_NAME.fullmatch(name):
        return f'Content-Disposition: attachment; filename="{name}"\r\n'.encode("ascii")
    encoded = "utf-8''" + urllib.parse.quote(name, safe="")
    pieces = _split_percent_encoded(encoded, 64)
    if len(pieces) == 1:
        params = [f"filename*={encoded}"]
    else:
        params = [f"filename*{i}*={piece}" for i, piece in enumerate(pieces)]
    return ("Content-Disposition: attachment;\r\n " + ";\r\n ".join(params) + "\r\n").encode()


def _split_percent_encoded(text: str, size: int) -> list[str]:
    """`text` in pieces of at most `size` characters, never splitting a %XX escape."""
    pieces = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        escape = text.rfind("%", end - 2, end)
        if escape != -1 and end < len(text):
            end = escape
        pieces.append(text[start:end])
        start = end
    return pieces


def _text_body(body: str, boundary: str | None) -> tuple[str, bytes]:
    """The body's transfer encoding and octets: 7bit when it is short-lined ASCII (and holds no
    boundary), else quoted-printable UTF-8 (8bit would need the server's 8BITMIME)."""
    lines = _NEWLINE.split(body) if body else []
    plain = "\r\n".join(lines)
    seven_bit = (
        plain.isascii()
        and "\x00" not in plain
        and all(len(line) <= _MAX_LINE for line in lines)
        and (boundary is None or "--" + boundary not in plain)
    )
    if seven_bit:
        return "7bit", plain.encode("ascii")
    quoted = binascii.b2a_qp("\n".join(lines).encode("utf-8"), istext=True)
    return "quoted-printable", quoted.replace(b"\n", b"\r\n")


def base64_lines(content: Iterable[bytes]) -> Iterator[bytes]:
    """Base64 (RFC 2045 §6.8) of `content`, one output chunk per input chunk, in 76-character
    lines each ending in CRLF. At most 56 octets are carried from one chunk to the next."""
    pending = b""
    for chunk in content:
        data = pending + chunk if pending else bytes(chunk)
        whole = len(data) - len(data) % _BASE64_LINE
        pending = data[whole:]
        if whole:
            yield _wrap(binascii.b2a_base64(memoryview(data)[:whole], newline=False))
    if pending:
        yield _wrap(binascii.b2a_base64(pending, newline=False))


def _wrap(encoded: bytes) -> bytes:
    step = 76
    lines = [encoded[i : i + step] for i in range(0, len(encoded), step)]
    lines.append(b"")
    return b"\r\n".join(lines)
