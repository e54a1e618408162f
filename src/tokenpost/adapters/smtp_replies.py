"""What an SMTP server's refusals mean, as tokenpost errors with text safe to show.

Replies are server text: every one is cut to one printable line of at most `REPLY_LIMIT`
characters before it reaches an error. Servers never echo a credential, and nothing here sees one.

Exchange Online's policy refusals (protocols.md §1.11: `535 5.7.139 …`, `550 5.7.30 …`) are
`MailPolicyError`s whose `fix` says what the tenant administrator must change: no token, refreshed
or new, gets past them.
"""

from __future__ import annotations

from typing import Final

from aiosmtplib import SMTPResponse

from tokenpost.errors import (
    MailAuthError,
    MailPolicyError,
    MailRejectedError,
    RemoteProtocolError,
    TokenpostError,
    TransportError,
)
from tokenpost.oauth.rfc6749 import sanitize_text
from tokenpost.sasl import SaslClient

REPLY_LIMIT: Final = 300  # characters of a server reply kept in an error

# (what the reply says, lower case; what to change) — first match wins.
_POLICY_FIXES: Final = (
    (
        "disabled for the tenant",
        "SMTP AUTH is disabled for the whole tenant: enable it (Set-TransportConfig "
        "-SmtpClientAuthenticationDisabled $false) or for this mailbox only (Set-CASMailbox "
        "-Identity <mailbox> -SmtpClientAuthenticationDisabled $false)",
    ),
    (
        "disabled for the mailbox",
        "SMTP AUTH is disabled for this mailbox in the tenant: enable it (Set-CASMailbox "
        "-Identity <mailbox> -SmtpClientAuthenticationDisabled $false)",
    ),
    (
        "security defaults",
        "the tenant's security defaults block SMTP AUTH: turn security defaults off and protect "
        "sign-ins with conditional access instead (Microsoft Entra admin center)",
    ),
    (
        "did not meet the criteria",
        "a conditional access policy of the tenant blocked this sign-in: ask the tenant "
        "administrator to allow it for this device",
    ),
    (
        "basic authentication",
        "basic authentication (a password) is retired for this server: use OAuth 2.0 "
        "(tokenpost smtp set --auth oauth2 --provider …, then tokenpost token get smtp)",
    ),
)
_POLICY_DEFAULT_FIX: Final = (
    "the tenant refused SMTP AUTH by policy: see https://aka.ms/smtp_auth_disabled"
)


def policy_fix(reply: SMTPResponse) -> str | None:
    """What to change for an Exchange policy refusal (`5.7.139`, `5.7.30`); None for others."""
    text = reply.message.lower()
    if reply.code not in (535, 550) or not text.startswith(("5.7.139", "5.7.30")):
        return None
    return next((fix for key, fix in _POLICY_FIXES if key in text), _POLICY_DEFAULT_FIX)


def auth_refusal(client: SaslClient, reply: SMTPResponse) -> TokenpostError:
    """The error for a final AUTH reply other than 235.

    4xx is temporary (no other token would pass now): TransportError. An Exchange policy
    refusal: MailPolicyError. Any other 5xx: MailAuthError with the OAuth status of the error
    challenge, if the server sent one."""
    shown = reply_text(reply)
    if 400 <= reply.code < 500:
        return TransportError(f"the SMTP server cannot authenticate now: {shown}")
    if reply.code < 400:
        return RemoteProtocolError(f"{client.mechanism}: unexpected reply to AUTH: {shown}")
    fix = policy_fix(reply)
    if fix is not None:
        return MailPolicyError(f"the SMTP server refused by policy: {shown}", fix=fix, reply=shown)
    status = client.error.status if client.error is not None else ""
    return MailAuthError(
        f"the SMTP server refused {client.mechanism} authentication: {shown}",
        reply=shown,
        status=status,
    )


def rejected(what: str, reply: SMTPResponse) -> MailRejectedError:
    """`what` (the sender, the message, …) was refused; transient for 4xx."""
    shown = reply_text(reply)
    message = f"the server refused {what}: {shown}"
    return MailRejectedError(message, reply=shown, transient=400 <= reply.code < 500)


def recipients_refused(refused: list[tuple[str, SMTPResponse]]) -> MailRejectedError:
    """Some recipients were refused, so nothing was sent; transient when every refusal was."""
    listed = "; ".join(f"{address}: {reply_text(reply)}" for address, reply in refused)
    transient = all(400 <= reply.code < 500 for _address, reply in refused)
    return MailRejectedError(
        f"the server refused {len(refused)} recipient(s), nothing was sent: {safe_text(listed)}",
        reply=reply_text(refused[0][1]),
        transient=transient,
    )


def reply_text(reply: SMTPResponse) -> str:
    """A server reply made safe to show: one line, printable, cut short."""
    return safe_text(f"{reply.code} {reply.message}")


def safe_text(text: str) -> str:
    """Server text on one printable line of at most REPLY_LIMIT characters."""
    return sanitize_text(text.replace("\n", " "), limit=REPLY_LIMIT)
