"""Message building (RFC 5322, MIME): fixed vectors, header injection, and round trips through the
standard library's parser for arbitrary text, names and bytes."""

from __future__ import annotations

import base64
import email
import email.header
import email.policy
import email.utils
import re
import tracemalloc
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage, Message

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenpost.errors import UsageError
from tokenpost.mime import (
    OCTET_STREAM,
    Attachment,
    Draft,
    Mailbox,
    base64_lines,
    base64_size,
    build,
    check_address,
    make_message_id,
    part_type,
)

DATE = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
MID = "<0123abcd@example.com>"
SENDER = Mailbox("Scanner", "scanner@example.com")
BOUNDARY = "=_a5172a7b5f003643287b942a68419fc3"  # sha256(MID)[:32], checked below

PDF_BASE64 = "JVBERi0xLjcKAP8="
SINGLE_PART = (
    b"From: Scanner <scanner@example.com>\r\n"
    b"To: ops@example.com, desk@example.com\r\n"
    b"Cc: boss@example.com\r\n"
    b"Subject: Scan 7\r\n"
    b"Date: Tue, 02 Jan 2024 03:04:05 +0000\r\n"
    b"Message-ID: <0123abcd@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: text/plain; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"\r\n"
    b"Hello,\r\n"
    b".the scan.\r\n"
)

# Unprintable characters never reach a header (they are refused); everything else may.
header_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=120)
file_names = header_text.filter(lambda name: bool(name.strip()))


def attached(name: str, chunks: Sequence[bytes], content_type: str = OCTET_STREAM) -> Attachment:
    """An attachment of `chunks` (kept as they are: their boundaries are part of the test)."""
    return Attachment(name, chunks, size=sum(map(len, chunks)), content_type=content_type)


def render(draft: Draft, sender: Mailbox = SENDER) -> bytes:
    return b"".join(build(draft, sender, date=DATE, message_id=MID))


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(data: bytes) -> str:
    """The text part as a reader shows it, with LF line ends."""
    part = parsed(data).get_body(("plain",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def display_name(data: bytes) -> str:
    """The From display name decoded by the classic parser (RFC 2047 words joined exactly)."""
    name, _address = email.utils.parseaddr(email.message_from_bytes(data)["From"])
    return str(email.header.make_header(email.header.decode_header(name)))


def attachment_parts(data: bytes) -> list[Message]:
    """Attachment parts as the classic (compat32) parser sees them: it decodes RFC 2231 names
    without treating quotes or angle brackets in them as address syntax."""
    message = email.message_from_bytes(data)
    return [part for part in message.walk() if part.get_content_disposition() == "attachment"]


# --- fixed vectors ------------------------------------------------------------------------------


def test_single_part_message_byte_for_byte() -> None:
    draft = Draft(
        to=("ops@example.com", "desk@example.com"),
        cc=("boss@example.com",),
        bcc=("audit@example.com",),
        subject="Scan 7",
        body="Hello,\n.the scan.",
    )
    assert render(draft) == SINGLE_PART


def test_multipart_message_byte_for_byte() -> None:
    import hashlib

    assert "=_" + hashlib.sha256(MID.encode()).hexdigest()[:32] == BOUNDARY
    assert base64.b64decode(PDF_BASE64) == b"%PDF-1.7\n\x00\xff"
    draft = Draft(
        to=("ops@example.com",),
        body="See attached.",
        attachments=(attached("scan.pdf", [b"%PDF-1.7\n", b"\x00\xff"], "application/pdf"),),
    )
    head, _, rest = render(draft).partition(b"\r\n\r\n")
    assert head.endswith(f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"'.encode())
    assert (
        rest
        == (
            f"--{BOUNDARY}\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: 7bit\r\n"
            "\r\n"
            "See attached.\r\n"
            f"--{BOUNDARY}\r\n"
            "Content-Type: application/pdf\r\n"
            'Content-Disposition: attachment; filename="scan.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            "\r\n"
            f"{PDF_BASE64}\r\n"
            f"--{BOUNDARY}--\r\n"
        ).encode()
    )


def test_bcc_is_in_the_envelope_only() -> None:
    draft = Draft(to=("a@example.com",), cc=("b@example.com",), bcc=("hidden@example.com",))
    assert draft.recipients == ("a@example.com", "b@example.com", "hidden@example.com")
    data = render(draft)
    assert b"hidden" not in data
    assert parsed(data)["Bcc"] is None


def test_recipients_are_listed_once() -> None:
    draft = Draft(
        to=("a@example.com", "b@example.com"), cc=("a@example.com",), bcc=("b@example.com",)
    )
    assert draft.recipients == ("a@example.com", "b@example.com")


def test_bcc_alone_is_enough() -> None:
    data = render(Draft(bcc=("hidden@example.com",)))
    assert parsed(data)["To"] is None


def test_non_ascii_sender_name_and_subject_are_encoded_words() -> None:
    draft = Draft(to=("a@example.com",), subject="Grüße - Scan «1»")
    data = render(draft, Mailbox("Scänner, 2. OG", "scanner@example.com"))
    assert data.isascii()
    assert b"From: =?utf-8?" in data
    assert b"Subject: =?utf-8?" in data
    message = parsed(data)
    assert message["Subject"] == "Grüße - Scan «1»"
    assert message["From"].addresses[0].display_name == "Scänner, 2. OG"
    assert message["From"].addresses[0].addr_spec == "scanner@example.com"


def test_ascii_sender_name_with_a_comma_is_quoted() -> None:
    data = render(Draft(to=("a@example.com",)), Mailbox("Scanner, floor 2", "s@example.com"))
    assert b'From: "Scanner, floor 2" <s@example.com>\r\n' in data


def test_many_recipients_are_folded() -> None:
    to = tuple(f"user{i}@example.com" for i in range(40))
    data = render(Draft(to=to))
    to_lines = data.partition(b"\r\nDate:")[0].partition(b"To: ")[2].split(b"\r\n")
    assert len(to_lines) > 10
    # The email package's folder may leave a trailing comma in column 79.
    assert max(len(line) for line in to_lines) <= 79
    assert [a.addr_spec for a in parsed(data)["To"].addresses] == list(to)


def test_make_message_id_uses_the_sender_domain() -> None:
    assert make_message_id("abc", "scanner@dept.example.com") == "<abc@dept.example.com>"


# --- body encodings -----------------------------------------------------------------------------


def test_ascii_body_is_7bit_and_any_other_quoted_printable() -> None:
    ascii_data = render(Draft(to=("a@example.com",), body="plain text"))
    assert b"Content-Transfer-Encoding: 7bit" in ascii_data
    utf8_data = render(Draft(to=("a@example.com",), body="Größe: 3 m²\nline  \n"))
    assert b"Content-Transfer-Encoding: quoted-printable" in utf8_data
    assert b"Gr=C3=B6=C3=9Fe" in utf8_data
    assert b"line =20" in utf8_data  # trailing spaces survive transport
    assert text_of(utf8_data) == "Größe: 3 m²\nline  \n"


def test_ascii_body_with_an_overlong_line_is_quoted_printable() -> None:
    data = render(Draft(to=("a@example.com",), body="x" * 2000))
    assert b"Content-Transfer-Encoding: quoted-printable" in data
    assert all(len(line) <= 76 for line in data.split(b"\r\n"))
    assert text_of(data) == "x" * 2000 + "\n"


def test_a_body_holding_the_boundary_is_quoted_printable() -> None:
    body = f"quoting a message:\n--{BOUNDARY}\n"
    draft = Draft(to=("a@example.com",), body=body, attachments=(attached("a.txt", [b"x"]),))
    data = render(draft)
    assert data.count(f"--{BOUNDARY}\r\n".encode()) == 2  # the two real delimiters only
    assert text_of(data) == body
    assert [p.get_payload(decode=True) for p in attachment_parts(data)] == [b"x"]


def test_every_line_ending_becomes_crlf() -> None:
    data = render(Draft(to=("a@example.com",), body="a\rb\nc\r\nd"))
    assert data.endswith(b"\r\n\r\na\r\nb\r\nc\r\nd\r\n")


# --- attachments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("application/pdf", "application/pdf"),
        ("Image/TIFF", "image/tiff"),
        ("application/vnd.ms-excel", "application/vnd.ms-excel"),
        ("message/rfc822", OCTET_STREAM),  # may not be base64-encoded (RFC 2046 §5.2.1)
        ("multipart/mixed", OCTET_STREAM),  # the same (§5.1.1)
        ("text/plain; charset=x", OCTET_STREAM),  # no parameters from the caller
        ("text/plain\r\nBcc: x@evil.test", OCTET_STREAM),
        ("pdf", OCTET_STREAM),
        ("", OCTET_STREAM),
    ],
)
def test_the_callers_content_type_is_sent_when_it_is_one(given: str, sent: str) -> None:
    assert part_type(given) == sent
    draft = Draft(to=("a@example.com",), attachments=(attached("f", [b"x"], given),))
    assert [p.get_content_type() for p in attachment_parts(render(draft))] == [sent]


def test_non_ascii_file_name_is_rfc_2231_encoded() -> None:
    draft = Draft(to=("a@example.com",), attachments=(attached("Bericht ü.pdf", [b"x"]),))
    data = render(draft)
    assert b"filename*=utf-8''Bericht%20%C3%BC.pdf" in data
    assert attachment_parts(data)[0].get_filename() == "Bericht ü.pdf"


def test_long_file_name_is_split_into_continuations() -> None:
    name = "Übersicht " * 30 + ".pdf"
    data = render(Draft(to=("a@example.com",), attachments=(attached(name, [b"x"]),)))
    assert b"filename*0*=utf-8''" in data
    assert b"filename*1*=" in data
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    assert attachment_parts(data)[0].get_filename() == name.strip()


def test_file_name_with_quotes_or_brackets_is_not_a_quoted_string() -> None:
    draft = Draft(to=("a@example.com",), attachments=(attached('<"x">.pdf', [b"x"]),))
    data = render(draft)
    assert b"filename*=utf-8''%3C%22x%22%3E.pdf" in data
    assert attachment_parts(data)[0].get_filename() == '<"x">.pdf'


def test_attachment_base64_lines_are_76_characters() -> None:
    content = bytes(range(256)) * 40
    data = render(
        Draft(
            to=("a@example.com",),
            attachments=(attached("b.bin", [content[:1000], content[1000:]]),),
        )
    )
    body = data.split(b"Content-Transfer-Encoding: base64\r\n\r\n")[1].split(b"\r\n--")[0]
    lines = body.split(b"\r\n")
    assert all(len(line) == 76 for line in lines[:-1])
    assert 0 < len(lines[-1]) <= 76
    assert base64.b64decode(b"".join(lines)) == content


def test_empty_attachment_and_several_attachments() -> None:
    draft = Draft(
        to=("a@example.com",),
        attachments=(
            attached("empty.tif", [], "image/tiff"),
            attached("one.pdf", [b"1"], "application/pdf"),
            attached("two.bin", [b"", b"22"]),
        ),
    )
    parts = attachment_parts(render(draft))
    assert [p.get_filename() for p in parts] == ["empty.tif", "one.pdf", "two.bin"]
    assert [p.get_payload(decode=True) for p in parts] == [b"", b"1", b"22"]
    assert [p.get_content_type() for p in parts] == ["image/tiff", "application/pdf", OCTET_STREAM]


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_base64_lines_equal_the_standard_encoding_for_any_chunking(chunks: list[bytes]) -> None:
    encoded = b"".join(base64_lines(chunks))
    assert encoded == base64.encodebytes(b"".join(chunks)).replace(b"\n", b"\r\n")


def test_attachment_content_is_read_only_as_the_message_is_written() -> None:
    pulled: list[int] = []

    def endless() -> Iterator[bytes]:
        n = 0
        while True:
            pulled.append(n)
            n += 1
            yield b"\xab" * 57_000

    message = build(
        Draft(to=("a@example.com",), attachments=(Attachment("big.bin", endless(), size=10**9),)),
        SENDER,
        date=DATE,
        message_id=MID,
    )
    assert pulled == []  # building checks the draft and knows the size, reads nothing
    assert message.size > 10**9 * 4 // 3
    chunks = iter(message)
    written = 0
    while len(pulled) < 5:
        written += len(next(chunks))
    assert len(pulled) == 5
    assert written < 6 * 57_000 * 78 // 57


def test_memory_stays_bounded_for_a_large_attachment() -> None:
    size = 20 * 1024 * 1024
    block = b"\x5a" * (64 * 1024)

    def content() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    draft = Draft(to=("a@example.com",), attachments=(Attachment("big.bin", content(), size=size),))
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in build(draft, SENDER, date=DATE, message_id=MID))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > size * 4 // 3
    assert peak < 2 * 1024 * 1024, peak


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draft", "sender", "field"),
    [
        (Draft(to=("a@example.com",), subject="hi\r\nBcc: x@evil.test"), SENDER, "subject"),
        (Draft(to=("a@example.com",), subject="hi\nthere"), SENDER, "subject"),
        (Draft(to=("a@example.com\r\nRCPT TO:<x@evil.test>",)), SENDER, "to"),
        (Draft(to=("a@example.com",), cc=("b@example.com\n",)), SENDER, "cc"),
        (Draft(bcc=("b@example.com\r",)), SENDER, "bcc"),
        (
            Draft(to=("a@example.com",)),
            Mailbox("Scan\r\nX-Evil: 1", "s@example.com"),
            "sender name",
        ),
        (Draft(to=("a@example.com",)), Mailbox("Scan", "s@example.com\n"), "sender address"),
        (
            Draft(to=("a@example.com",), attachments=(attached("a\r\n.pdf", [b""]),)),
            SENDER,
            "attachment",
        ),
    ],
)
def test_line_breaks_in_any_header_value_are_refused(
    draft: Draft, sender: Mailbox, field: str
) -> None:
    with pytest.raises(UsageError, match=rf"^{field}: must not contain a line break"):
        build(draft, sender, date=DATE, message_id=MID)


@given(header_text, st.integers(min_value=0, max_value=120), st.sampled_from(["\r", "\n", "\r\n"]))
def test_a_line_break_anywhere_in_the_subject_is_refused(text: str, at: int, brk: str) -> None:
    subject = text[:at] + brk + text[at:]
    with pytest.raises(UsageError, match=r"^subject: "):
        build(Draft(to=("a@example.com",), subject=subject), SENDER, date=DATE, message_id=MID)


def test_other_control_characters_are_refused() -> None:
    with pytest.raises(UsageError, match=r"^subject: must not contain control characters"):
        build(Draft(to=("a@example.com",), subject="a\x00b"), SENDER, date=DATE, message_id=MID)
    with pytest.raises(UsageError, match=r"^attachment: must not contain control characters"):
        check_draft_of(Draft(to=("a@example.com",), attachments=(attached("a\x1b.pdf", []),)))


def check_draft_of(draft: Draft) -> None:
    build(draft, SENDER, date=DATE, message_id=MID)


def test_a_tab_in_the_subject_is_fine() -> None:
    assert parsed(render(Draft(to=("a@example.com",), subject="a\tb")))["Subject"] == "a\tb"


@pytest.mark.parametrize(
    "address",
    [
        "plain",
        "two@at@example.com",
        "spa ce@example.com",
        "<a@example.com>",
        "a@example.com, b@example.com",
        "dot.@example.com",
        "a..b@example.com",
        "@example.com",
        "a@",
        "a@-example.com",
        "ü@example.com",
        "a@bücher.example",
        '"quoted"@example.com',
        "a" * 250 + "@example.com",
    ],
)
def test_bad_addresses_are_refused_with_the_rule(address: str) -> None:
    with pytest.raises(UsageError, match=r"^cc: .* is not an address like name@example.com"):
        check_address("cc", address)


@pytest.mark.parametrize(
    "address",
    ["a@example.com", "first.last+tag@sub.example.co.uk", "x@localhost", "o'brien@[192.0.2.1]"],
)
def test_plain_addresses_are_accepted(address: str) -> None:
    assert check_address("to", address) == address


def test_a_draft_without_recipients_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^to: at least one recipient"):
        build(Draft(subject="nobody"), SENDER, date=DATE, message_id=MID)


def test_an_empty_file_name_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^attachment: the file name must not be empty"):
        check_draft_of(Draft(to=("a@example.com",), attachments=(attached("  ", []),)))


# --- round trips --------------------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(file_names, st.binary(max_size=400)), min_size=1, max_size=3), st.data())
def test_any_attachment_names_and_bytes_round_trip(
    files: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    attachments = []
    for name, content in files:
        cut = data.draw(st.integers(min_value=0, max_value=len(content)))
        attachments.append(attached(name, [content[:cut], content[cut:]]))
    parts = attachment_parts(render(Draft(to=("a@example.com",), attachments=tuple(attachments))))
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in parts] == [
        (name.strip(), content) for name, content in files
    ]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(header_text, header_text, st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_any_subject_sender_name_and_body_round_trip(subject: str, name: str, body: str) -> None:
    data = render(
        Draft(to=("a@example.com",), subject=subject, body=body), Mailbox(name, "s@x.test")
    )
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) <= 998 and b"\r" not in line and b"\n" not in line for line in lines)
    message = parsed(data)
    assert (message["Subject"] or "").strip() == subject.strip()
    assert display_name(data) == name.strip()
    expected = re.sub(r"\r\n|\r", "\n", body)
    if expected and not expected.endswith("\n"):
        expected += "\n"
    assert text_of(data) == expected


# --- the message's size (RFC 1870), known before any content is read ---------------------------


def test_the_size_of_a_fixed_vector() -> None:
    draft = Draft(
        to=("ops@example.com", "desk@example.com"),
        cc=("boss@example.com",),
        subject="Scan 7",
        body="Hello,\n.the scan.",
    )
    assert build(draft, SENDER, date=DATE, message_id=MID).size == len(SINGLE_PART)


@given(st.integers(min_value=0, max_value=5000))
def test_base64_size_is_the_size_of_the_encoded_lines(octets: int) -> None:
    encoded = b"".join(base64_lines([b"\x00" * octets]))
    assert base64_size(octets) == (len(encoded) if octets else 2)  # an empty part is one CRLF


class Counted:
    """Chunks that count how often they are read."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self.chunks = chunks
        self.reads = 0

    def __iter__(self) -> Iterator[bytes]:
        self.reads += 1
        return iter(self.chunks)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    header_text,
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
    header_text,
    st.lists(st.tuples(file_names, st.lists(st.binary(max_size=200), max_size=4)), max_size=3),
)
def test_the_size_is_exactly_what_is_written(
    subject: str, body: str, name: str, files: list[tuple[str, list[bytes]]]
) -> None:
    sources = [Counted(chunks) for _name, chunks in files]
    attachments = tuple(
        Attachment(file_name, source, size=sum(map(len, source.chunks)))
        for (file_name, _chunks), source in zip(files, sources, strict=True)
    )
    draft = Draft(to=("a@example.com",), subject=subject, body=body, attachments=attachments)
    message = build(draft, Mailbox(name, "s@x.test"), date=DATE, message_id=MID)
    assert [source.reads for source in sources] == [0] * len(sources)  # sized without reading
    assert message.size == len(b"".join(message))
    assert [source.reads for source in sources] == [1] * len(sources)  # and read once to send


@pytest.mark.parametrize("actual", [b"", b"x" * 99, b"x" * 101, b"x" * 1000])
def test_content_of_another_size_than_announced_stops_the_message(actual: bytes) -> None:
    written: list[bytes] = []
    chunks: Iterable[bytes] = [actual[i : i + 30] for i in range(0, len(actual), 30)]
    draft = Draft(to=("a@example.com",), attachments=(Attachment("scan.pdf", chunks, size=100),))
    message = build(draft, SENDER, date=DATE, message_id=MID)
    with pytest.raises(UsageError, match=r"^attachment scan\.pdf: it changed while it was being"):
        written.extend(message)
    encoded = b"".join(written).partition(b"Content-Transfer-Encoding: base64\r\n\r\n")[2]
    assert len(base64.b64decode(encoded)) < 100  # never more than announced


@pytest.mark.parametrize(
    ("draft", "sender", "field"),
    [
        (Draft(to=("a@example.com",), subject="caf\udce9"), SENDER, "subject"),
        (Draft(to=("a@example.com",), body="caf\udce9"), SENDER, "body"),
        (Draft(to=("a@example.com",)), Mailbox("Sc\udcc3nner", "s@example.com"), "sender name"),
        (
            Draft(to=("a@example.com",), attachments=(attached("\udce9.pdf", [b""]),)),
            SENDER,
            "attachment",
        ),
    ],
)
def test_text_from_bytes_that_were_not_utf8_is_refused(
    draft: Draft, sender: Mailbox, field: str
) -> None:
    with pytest.raises(UsageError, match=rf"^{field}: must be UTF-8 text"):
        build(draft, sender, date=DATE, message_id=MID)
