"""Internet messages (RFC 5322; MIME: RFC 2045-2047, RFC 2231) built as a stream of bytes, no I/O.

    pdf = Attachment("a.pdf", chunks, size=n, content_type="application/pdf")
    draft = Draft(to=("ops@example.com",), subject="Scan", attachments=(pdf,))
    message = build(draft, Mailbox("Scanner", "scanner@example.com"), date=now, message_id=mid)
    message.size          # octets, known before any attachment is read (RFC 1870 SIZE)
    for chunk in message: ...

Plain headers (short printable ASCII, checked addresses) are written as they are; any other is
encoded by the stdlib email package (RFC 2047 encoded words, folding at 78 columns), file names
here (RFC 2231). Bodies are written here too, so an attachment is base64-encoded chunk by chunk as
the caller's iterable yields it and memory stays bounded whatever its size. Every line ends in
CRLF; dot-stuffing is the transport's job. Bcc recipients go to the envelope only.

The caller does the I/O: it names each attachment's MIME type (a guess from the file name needs
the host's mime.types) and hands over its content as chunks with their total size. The message's
size is then exact without reading any content: base64 of N octets in CRLF-ended 76-character
lines has a size that follows from N alone, and everything else (headers, the text) is small and
built up front. An attachment that yields more or fewer octets than its size stops the stream with
a UsageError, so what is sent is never other than what was announced.

Every value that lands in a header is checked first: a line break in any of them (header
injection) or an address that is not a plain ``local@domain`` is a UsageError naming the field.
Text that is not valid Unicode (a surrogate from bytes that were not UTF-8) is refused the same
way, for the headers and the body alike.
"""

from __future__ import annotations

import binascii
import email.header
import email.policy
import email.utils
import hashlib
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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
_SURROGATE: Final = re.compile("[\ud800-\udfff]")  # what undecodable bytes become in a str
# type "/" subtype, each an RFC 2045 §5.1 token: no parameters, nothing to inject.
_TYPE_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MIME_TYPE: Final = re.compile(rf"{_TYPE_NAME}/{_TYPE_NAME}", re.ASCII)
_BASE64_LINE_OCTETS: Final = 78  # 76 characters and CRLF
OCTET_STREAM: Final = "application/octet-stream"

_TEXT_TYPE: Final = b'Content-Type: text/plain; charset="utf-8"\r\n'


@dataclass(frozen=True, slots=True)
class Mailbox:
    """The sender: display name (may be empty or non-ASCII) and address."""

    name: str
    address: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to attach: its name (no directory), its content as chunks of bytes, the number of
    octets the chunks add up to, and its MIME type (``application/pdf``).

    `content` is iterated once per message written; chunk size bounds memory. `size` must be what
    it yields: the message's size is computed from it before anything is read. A type that is
    not ``type/subtype`` of RFC 2045 tokens, or that may not be base64-encoded (message/*,
    multipart/*: RFC 2046 §5.2.1, §5.1.1), is sent as application/octet-stream."""

    filename: str
    content: Iterable[bytes]
    size: int = field(kw_only=True)
    content_type: str = field(default=OCTET_STREAM, kw_only=True)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("an attachment's size cannot be negative")

    @classmethod
    def of_bytes(cls, filename: str, data: bytes, content_type: str = OCTET_STREAM) -> Attachment:
        """An attachment held in memory."""
        return cls(filename, (data,), size=len(data), content_type=content_type)


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
        raise UsageError("{field}: must not contain a line break", field=field)
    if len(address) > _MAX_ADDRESS or not _ADDRESS.fullmatch(address):
        raise UsageError(
            "{field}: {address!r} is not an address like name@example.com "
            "(ASCII, at most {limit} characters)",
            field=field,
            address=address,
            limit=_MAX_ADDRESS,
        )
    return address


def check_draft(draft: Draft, sender: Mailbox) -> None:
    """Raise UsageError (field and rule) for anything `build` would refuse."""
    check_address("sender address", sender.address)
    _check_text("sender name", sender.name)
    if not draft.recipients:
        raise UsageError("to: at least one recipient is needed (to, cc or bcc)")
    for name, addresses in (("to", draft.to), ("cc", draft.cc), ("bcc", draft.bcc)):
        for address in addresses:
            check_address(name, address)
    _check_text("subject", draft.subject)
    _check_unicode("body", draft.body)
    for attachment in draft.attachments:
        _check_text("attachment", attachment.filename)
        if not attachment.filename.strip():
            raise UsageError("attachment: the file name must not be empty")


def make_message_id(unique: str, sender_address: str) -> str:
    """A Message-ID (RFC 5322 §3.6.4) in the sender's domain; `unique` is random, [0-9a-z.]."""
    return f"<{unique}@{sender_address.rpartition('@')[2]}>"


def build(draft: Draft, sender: Mailbox, *, date: datetime, message_id: str) -> Message:
    """The message: its exact size and its chunks of bytes (CRLF line ends, not dot-stuffed).

    Checks everything first (UsageError naming the field), so a bad draft fails before any
    connection; the attachments' content is read only as the result is iterated.
    """
    check_draft(draft, sender)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise UsageError("message id: must be one '<…@…>' token of printable ASCII")
    return Message(_pieces(draft, sender, date, message_id))


class Message:
    """A built message: `size` in octets and, when iterated, its content in chunks.

    `size` is what RFC 1870 calls the message size: the octets iterated, CRLF line ends included,
    before dot-stuffing and without the end-of-data line. Iterating again reads the attachments
    again (their chunk sources decide whether they can be read twice)."""

    __slots__ = ("_pieces", "size")

    def __init__(self, pieces: tuple[bytes | Attachment, ...]) -> None:
        self._pieces = pieces
        self.size = sum(
            len(piece) if isinstance(piece, bytes) else base64_size(piece.size) for piece in pieces
        )

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            if isinstance(piece, bytes):
                yield piece
            else:
                yield from _attachment_body(piece)

    def __repr__(self) -> str:
        return f"Message(size={self.size})"


def base64_size(octets: int) -> int:
    """The size of `base64_lines` (and `_attachment_body`) for content of `octets` octets: one
    78-octet line per 57 octets, a shorter last line for the rest, and an empty content's CRLF."""
    if octets == 0:
        return 2
    whole, rest = divmod(octets, _BASE64_LINE)
    return whole * _BASE64_LINE_OCTETS + (4 * -(-rest // 3) + 2 if rest else 0)


def _check_text(field: str, value: str) -> None:
    if _LINE_BREAK.search(value):
        raise UsageError("{field}: must not contain a line break", field=field)
    if _CONTROL.search(value):
        raise UsageError("{field}: must not contain control characters", field=field)
    _check_unicode(field, value)


def _check_unicode(field: str, value: str) -> None:
    """Refuse a lone surrogate: bytes that were not UTF-8 (in an argument, a file name) arrive so,
    and UTF-8 cannot encode them."""
    if _SURROGATE.search(value):
        raise UsageError("{field}: must be UTF-8 text (it holds bytes that are not)", field=field)


def _pieces(
    draft: Draft, sender: Mailbox, date: datetime, msg_id: str
) -> tuple[bytes | Attachment, ...]:
    """The message as literal octets and, where an attachment's base64 goes, the attachment."""
    # "=_" never occurs in quoted-printable or base64 output, so the boundary can only clash
    # with a 7bit body, which is then sent quoted-printable instead.
    boundary = "=_" + hashlib.sha256(msg_id.encode()).hexdigest()[:32]
    encoding, text = _text_body(draft.body, boundary if draft.attachments else None)
    text_head = _TEXT_TYPE + f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode()
    head = _message_head(draft, sender, date, msg_id)
    if not draft.attachments:
        ending = b"" if not text or text.endswith(b"\r\n") else b"\r\n"
        return (head + text_head + text + ending,)
    delimiter = f"--{boundary}\r\n".encode()
    pieces: list[bytes | Attachment] = [
        head + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'.encode(),
        b"\r\n" + delimiter + text_head + text + b"\r\n" + delimiter,
    ]
    for index, attachment in enumerate(draft.attachments):
        if index:
            pieces.append(delimiter)
        pieces += [_attachment_head(attachment), attachment]
    pieces.append(f"--{boundary}--\r\n".encode())
    return tuple(pieces)


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


def _attachment_head(attachment: Attachment) -> bytes:
    """An attachment's part headers and the blank line after them."""
    typed = f"Content-Type: {part_type(attachment.content_type)}\r\n".encode("ascii")
    disposition = _disposition(attachment.filename)
    return typed + disposition + b"Content-Transfer-Encoding: base64\r\n\r\n"


def part_type(content_type: str) -> str:
    """The Content-Type an attachment of `content_type` is sent with: the type in lower case, or
    application/octet-stream for one that is malformed or may not be base64-encoded."""
    lowered = content_type.strip().lower()
    if not _MIME_TYPE.fullmatch(lowered) or lowered.startswith(("message/", "multipart/")):
        return OCTET_STREAM
    return lowered


def _attachment_body(attachment: Attachment) -> Iterator[bytes]:
    empty = True
    for lines in base64_lines(_exactly(attachment)):
        empty = False
        yield lines
    if empty:
        yield b"\r\n"  # the next delimiter's own CRLF: lines otherwise end in one


def _exactly(attachment: Attachment) -> Iterator[bytes]:
    """The attachment's chunks, stopped by a UsageError as soon as they add up to more than its
    size, or at their end when they add up to less: the message's size was announced."""
    read = 0
    for chunk in attachment.content:
        read += len(chunk)
        if read > attachment.size:
            break
        yield chunk
    if read != attachment.size:
        raise UsageError(
            "attachment {name}: it changed while it was being sent ({size} bytes were expected); "
            "send it again once it is complete",
            name=attachment.filename,
            size=attachment.size,
        )


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
