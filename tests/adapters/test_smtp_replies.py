"""What SMTP refusals say, in English and in German: sizes, the SIZE refusal, policy fixes."""

from __future__ import annotations

import pytest
from aiosmtplib import SMTPResponse

from tokenpost.adapters.smtp_replies import amount, auth_refusal, rejected, too_large
from tokenpost.errors import MailPolicyError
from tokenpost.i18n import translator
from tokenpost.sasl import xoauth2
from tokenpost.secret import Secret
from tokenpost.text import Text, translate

GERMAN = translator("de").gettext


@pytest.mark.parametrize(
    ("octets", "english", "german"),
    [
        (0, "0 bytes", "0 Bytes"),
        (1023, "1023 bytes", "1023 Bytes"),
        (1024, "1 KiB", "1 KiB"),
        (50_000, "48.8 KiB", "48,8 KiB"),
        (33_554_432, "32 MiB", "32 MiB"),
        (86_298_812, "82.3 MiB", "82,3 MiB"),
        (157_286_400, "150 MiB", "150 MiB"),  # Exchange Online's SIZE
        (5 * 1024**3 + 1, "5 GiB", "5 GiB"),
    ],
)
def test_amounts_in_binary_units_to_a_tenth(octets: int, english: str, german: str) -> None:
    assert str(amount(octets)) == english
    assert amount(octets).translate(GERMAN) == german


def test_the_size_refusal_has_both_sizes_and_the_fix_in_either_language() -> None:
    refusal = too_large(86_298_812, 33_554_432, "smtp.example.test:587")
    assert refusal.transient is False
    assert str(refusal) == (
        "the message is 82.3 MiB (86298812 bytes), more than the 32 MiB (33554432 bytes) that "
        "smtp.example.test:587 accepts: send smaller attachments or spread them over several "
        "messages, or ask the mail administrator for a higher limit"
    )
    assert refusal.translate(GERMAN) == (
        "die Nachricht ist 82,3 MiB (86298812 Bytes) groß, mehr als die 32 MiB (33554432 Bytes), "
        "die smtp.example.test:587 annimmt: senden Sie kleinere Anhänge oder verteilen Sie sie "
        "auf mehrere Nachrichten, oder bitten Sie die Mail-Administration um ein höheres Limit"
    )


def test_a_policy_fix_is_a_text_shown_in_german() -> None:
    reply = SMTPResponse(
        535, "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Mailbox."
    )  # fmt: skip
    refusal = auth_refusal(xoauth2("a@example.test", Secret("t")), reply)
    assert isinstance(refusal, MailPolicyError)
    assert isinstance(refusal.fix, Text)
    assert translate(refusal.fix, GERMAN).startswith(
        "SMTP AUTH ist für dieses Postfach im Mandanten (Tenant) deaktiviert"
    )
    assert refusal.translate(GERMAN).startswith(
        "der SMTP-Server hat per Richtlinie abgelehnt: 535 5.7.139"
    )


def test_a_refusal_names_what_was_refused_in_german() -> None:
    refusal = rejected(
        Text("the sender {address}", address="s@example.test"),
        SMTPResponse(550, "5.7.60 SMTP; Client does not have permissions to send as this sender"),
    )
    assert refusal.translate(GERMAN) == (
        "der Server hat den Absender s@example.test abgelehnt: 550 5.7.60 SMTP; Client does not "
        "have permissions to send as this sender"
    )
