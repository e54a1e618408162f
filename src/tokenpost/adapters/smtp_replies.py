"""What an SMTP server's refusals and a failed exchange mean, as tokenpost errors with text safe
to show (`mapped` turns aiosmtplib's, asyncio's and the socket's exceptions into them).

Replies are server text: every one is cut to one printable line of at most `REPLY_LIMIT`
characters before it reaches an error. Servers never echo a credential, and nothing here sees one.

Exchange Online's policy refusals (protocols.md §1.11: `535 5.7.139 …`, `550 5.7.30 …`) are
`MailPolicyError`s whose `fix` says what the tenant administrator must change: no token, refreshed
or new, gets past them.

A message over the server's SIZE limit (RFC 1870) is refused here before it is offered
(`too_large`): both sizes, in units a person reads and in octets, and what to do.

Every message is a `Text` (English msgid, translated where it is shown); server text only ever
goes in as a parameter.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import aiosmtplib
from aiosmtplib import SMTPResponse

from tokenpost.adapters.tls import handshake_reason, verify_failed
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
from tokenpost.settings.network import Trust
from tokenpost.text import Text

REPLY_LIMIT: Final = 300  # characters of a server reply kept in an error

# (what the reply says, lower case; what to change) — first match wins.
_POLICY_FIXES: Final = (
    (
        "disabled for the tenant",
        Text(
            "SMTP AUTH is disabled for the whole tenant: enable it (Set-TransportConfig "
            "-SmtpClientAuthenticationDisabled $false) or for this mailbox only (Set-CASMailbox "
            "-Identity <mailbox> -SmtpClientAuthenticationDisabled $false)"
        ),
    ),
    (
        "disabled for the mailbox",
        Text(
            "SMTP AUTH is disabled for this mailbox in the tenant: enable it (Set-CASMailbox "
            "-Identity <mailbox> -SmtpClientAuthenticationDisabled $false)"
        ),
    ),
    (
        "security defaults",
        Text(
            "the tenant's security defaults block SMTP AUTH: turn security defaults off and "
            "protect sign-ins with conditional access instead (Microsoft Entra admin center)"
        ),
    ),
    (
        "did not meet the criteria",
        Text(
            "a conditional access policy of the tenant blocked this sign-in: ask the tenant "
            "administrator to allow it for this device"
        ),
    ),
    (
        "basic authentication",
        Text(
            "basic authentication (a password) is retired for this server: use OAuth 2.0 "
            "(tokenpost smtp set --auth oauth2 --provider …, then tokenpost token get smtp)"
        ),
    ),
)
_POLICY_DEFAULT_FIX: Final = Text(
    "the tenant refused SMTP AUTH by policy: see https://aka.ms/smtp_auth_disabled"
)
_UNITS: Final = ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB"))


def policy_fix(reply: SMTPResponse) -> Text | None:
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
        return TransportError("the SMTP server cannot authenticate now: {response}", response=shown)
    if reply.code < 400:
        return RemoteProtocolError(
            "{mechanism}: unexpected reply to AUTH: {response}",
            mechanism=client.mechanism,
            response=shown,
        )
    fix = policy_fix(reply)
    if fix is not None:
        return MailPolicyError(
            "the SMTP server refused by policy: {response}", fix=fix, reply=shown, response=shown
        )
    status = client.error.status if client.error is not None else ""
    return MailAuthError(
        "the SMTP server refused {mechanism} authentication: {response}",
        reply=shown,
        status=status,
        mechanism=client.mechanism,
        response=shown,
    )


def rejected(what: Text, reply: SMTPResponse) -> MailRejectedError:
    """`what` (the sender, the message, …) was refused; transient for 4xx."""
    shown = reply_text(reply)
    return MailRejectedError(
        "the server refused {what}: {response}",
        reply=shown,
        transient=400 <= reply.code < 500,
        what=what,
        response=shown,
    )


def recipients_refused(refused: list[tuple[str, SMTPResponse]]) -> MailRejectedError:
    """Some recipients were refused, so nothing was sent; transient when every refusal was."""
    listed = "; ".join(f"{address}: {reply_text(reply)}" for address, reply in refused)
    transient = all(400 <= reply.code < 500 for _address, reply in refused)
    return MailRejectedError(
        "the server refused {count} recipient(s), nothing was sent: {refusals}",
        reply=reply_text(refused[0][1]),
        transient=transient,
        count=len(refused),
        refusals=safe_text(listed),
    )


def too_large(size: int, limit: int, server: str) -> MailRejectedError:
    """A message of `size` octets is over the `limit` that `server` advertised (RFC 1870):
    refused before it is offered, permanently (the same message will never pass)."""
    return MailRejectedError(
        "the message is {size} ({octets} bytes), more than the {limit} ({limit_octets} bytes) "
        "that {server} accepts: send smaller attachments or spread them over several messages, "
        "or ask the mail administrator for a higher limit",
        transient=False,
        size=amount(size),
        octets=size,
        limit=amount(limit),
        limit_octets=limit,
        server=server,
    )


def amount(octets: int) -> Text:
    """`octets` in the largest binary unit it fills, to a tenth: "82.3 MiB", "32 MiB"."""
    for unit, name in _UNITS:
        if octets >= unit:
            whole, tenth = divmod(round(octets * 10 / unit), 10)
            if tenth:
                return Text("{whole}.{tenth} {unit}", whole=whole, tenth=tenth, unit=name)
            return Text("{whole} {unit}", whole=whole, unit=name)
    return Text("{count} bytes", count=octets)


@contextmanager
def mapped(where: str, trust: Trust) -> Iterator[None]:
    """aiosmtplib's, asyncio's and the socket's exceptions as tokenpost errors; a certificate
    that did not verify is reported with `trust`, what it was checked against."""
    try:
        yield
    except TokenpostError:
        raise
    except aiosmtplib.SMTPConnectResponseError as error:
        refusal = aiosmtplib.SMTPResponse(error.code, error.message)
        raise rejected(Text("a session ({where})", where=where), refusal) from None
    except aiosmtplib.SMTPResponseException as error:
        # aiosmtplib raises these for replies it could not frame ("Response too long", a line
        # without a code).
        shown = reply_text(SMTPResponse(error.code, error.message))
        raise RemoteProtocolError(
            "{where} answered outside the protocol: {response}", where=where, response=shown
        ) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise transport_error(where, error, trust) from None


def transport_error(where: str, error: BaseException, trust: Trust) -> TransportError:
    """A TransportError (TlsVerifyError) for a failed exchange with `where`, by its root cause."""
    cause = root(error)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return verify_failed(where, cause, trust)
    if isinstance(cause, ssl.SSLError):
        return TransportError(
            "TLS with {where} failed ({reason})", where=where, reason=handshake_reason(cause)
        )
    if isinstance(error, TimeoutError) or isinstance(cause, TimeoutError):
        return TransportError("{where} did not answer in time", where=where)
    if isinstance(error, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return TransportError("{where} closed the connection", where=where)
    if isinstance(cause, OSError):
        return TransportError(
            "the connection to {where} failed: {reason}", where=where, reason=reason(cause)
        )
    return TransportError(
        "the exchange with {where} failed: {detail}", where=where, detail=safe_text(str(error))
    )


def root(error: BaseException) -> BaseException:
    """The innermost cause: aiosmtplib wraps TLS and socket errors in its own."""
    seen = 0
    while error.__cause__ is not None and seen < 10:
        error = error.__cause__
        seen += 1
    return error


def reason(error: BaseException) -> str:
    """What went wrong, in a few words: the TLS reason, the OS error's text, or the message."""
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return safe_text(str(error)) or type(error).__name__


def reply_text(reply: SMTPResponse) -> str:
    """A server reply made safe to show: one line, printable, cut short."""
    return safe_text(f"{reply.code} {reply.message}")


def safe_text(text: str) -> str:
    """Server text on one printable line of at most REPLY_LIMIT characters."""
    return sanitize_text(text.replace("\n", " "), limit=REPLY_LIMIT)
