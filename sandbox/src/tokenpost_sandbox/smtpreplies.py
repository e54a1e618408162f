"""What the sandbox SMTP server says, byte for byte, in each provider's style.

Sources: protocols.md §1.11 (Exchange Online), §2.7 (Gmail), §3.4 (RFC 7628), §3.8 (RFC 4954).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Final

from tokenpost_sandbox.smtpknobs import Block, Style

HOSTNAME: Final = "smtp.sandbox.test"

GOOGLE_XOAUTH2_ERROR: Final = (
    b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
)
OAUTHBEARER_ERROR: Final = b'{"status":"invalid_token","scope":"mail"}'  # RFC 7628 §3.2.2
BASIC_RETIRED: Final = "550 5.7.30 Basic authentication is not supported for Client Submission."
TEMPORARY_FAILURE: Final = "454 4.7.0 Temporary authentication failure"  # RFC 4954 §6
NOT_AUTHENTICATED: Final = "530 5.7.57 Client not authenticated to send mail."
UNRECOGNIZED_MECHANISM: Final = f"504 5.7.4 Unrecognized authentication type [{HOSTNAME}]"

_BLOCK_LINES: Final = {
    Block.TENANT: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
    f"for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [{HOSTNAME}]",
    Block.MAILBOX: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
    "for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
    Block.SECURITY_DEFAULTS: "535 5.7.139 Authentication unsuccessful, user is locked by your "
    "organization's security defaults policy. Contact your administrator.",
}


@dataclass(frozen=True, slots=True)
class StyleReplies:
    """One provider's mechanisms (as advertised after TLS) and AUTH outcomes."""

    mechanisms: tuple[str, ...]
    success: str
    failure: tuple[str, ...]
    # Google answers a bad token with a `334 <base64 JSON>` challenge first; Exchange does not.
    error_challenge: bool

    def failure_reply(self) -> str:
        """The failure lines as one reply (aiosmtpd terminates the last line)."""
        return "\r\n".join(self.failure)


REPLIES: Final = {
    Style.MICROSOFT: StyleReplies(
        mechanisms=("LOGIN", "XOAUTH2"),
        success="235 2.7.0 Authentication successful",
        failure=(f"535 5.7.3 Authentication unsuccessful [{HOSTNAME}]",),
        error_challenge=False,
    ),
    Style.GOOGLE: StyleReplies(
        mechanisms=("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"),
        success="235 2.7.0 Accepted",
        failure=(
            "535-5.7.8 Username and Password not accepted. Learn more at",
            # Two spaces after 5.7.8, as Gmail sends it.
            "535 5.7.8  https://support.google.com/mail/?p=BadCredentials sbx - gsmtp",
        ),
        error_challenge=True,
    ),
}


def block_reply(block: Block) -> str:
    """Exchange's `535 5.7.139` line for a policy that disables SMTP AUTH."""
    return _BLOCK_LINES[block]


def greeting_ident(style: Style) -> str:
    """The text after ``220 <hostname> `` in the greeting."""
    if style is Style.MICROSOFT:
        now = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        return f"Microsoft ESMTP MAIL Service ready at {now}"
    return f"ESMTP {secrets.token_hex(6)} - gsmtp"
