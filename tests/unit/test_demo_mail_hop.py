"""`tokenpost demo` hands what the sandbox SMTP server accepted to the maildrop of each recipient
that names a POP setting, once, Maildir-style (written in tmp/, renamed into new/)."""

from __future__ import annotations

import json
from pathlib import Path

from tokenpost.cli.demo_cmd import _MailHop, recipient_of


def accept(messages: Path, number: int, recipients: list[str], content: bytes) -> None:
    messages.mkdir(parents=True, exist_ok=True)
    (messages / f"{number:06d}.eml").write_bytes(content)
    (messages / f"{number:06d}.json").write_text(json.dumps({"rcpt_tos": recipients}))


def test_each_message_reaches_the_maildrops_its_recipients_name_once(tmp_path: Path) -> None:
    messages, fax, office = tmp_path / "messages", tmp_path / "fax", tmp_path / "office"
    hop = _MailHop(messages, {recipient_of("fax"): fax, recipient_of("office"): office})
    hop.run_once()  # nothing accepted yet
    accept(messages, 1, ["FAX@example.test", "someone@else.test"], b"Subject: one\r\n\r\n")
    accept(messages, 2, ["office@example.test", "fax@example.test"], b"Subject: two\r\n\r\n")
    hop.run_once()
    hop.run_once()
    assert sorted(p.read_bytes() for p in (fax / "new").iterdir()) == [
        b"Subject: one\r\n\r\n",
        b"Subject: two\r\n\r\n",
    ]
    assert [p.read_bytes() for p in (office / "new").iterdir()] == [b"Subject: two\r\n\r\n"]
    assert list((fax / "tmp").iterdir()) == []


def test_a_message_for_nobody_known_is_left_alone(tmp_path: Path) -> None:
    messages, fax = tmp_path / "messages", tmp_path / "fax"
    hop = _MailHop(messages, {recipient_of("fax"): fax})
    accept(messages, 1, ["someone@else.test"], b"x")
    hop.run_once()
    assert not fax.exists()
