"""What sending, receiving and the connection test share about authenticating to a mail server.

Two rules live here so that every mail path applies them the same way:

- DESIGN invariant 3: a bearer token or password never crosses an unencrypted connection. The
  one exception is a server on loopback (a local test or relay peer) and only when the
  administrator asked for it explicitly with ``--allow-plaintext``.
- A mail server's `535` / `-ERR` for an OAuth token is answered by refreshing once and trying
  once more, but only when the token is older than a minute: a token issued moments ago is as
  fresh as a refresh would make it, so a refusal of it is a permission or configuration problem
  (and refreshing again would only hammer the provider). Policy refusals (`MailPolicyError`,
  Exchange 5.7.139 / 5.7.30) are never retried: no token cures them.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from tokenpost.clock import Clock
from tokenpost.errors import MailAuthError, MailPolicyError, PlaintextRefusedError
from tokenpost.secret import Secret
from tokenpost.services.refresh import Refresher
from tokenpost.settings.model import AuthMethod, Security

log = logging.getLogger("tokenpost.mailauth")

# A refused token younger than this is not refreshed: the refusal is not about its age.
STALE_AFTER_S: Final = 60.0

_T = TypeVar("_T")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ::1 (never a name lookup)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_encryption(
    security: Security, server: str, auth: AuthMethod, *, allow_plaintext: bool
) -> None:
    """Refuse to authenticate over a connection without TLS, with the one loopback exception.

    Raises:
        PlaintextRefusedError: `security` is none, the setting authenticates, and the server
            is not on loopback or ``--allow-plaintext`` was not given.
    """
    if security is not Security.NONE or auth is AuthMethod.NONE:
        return
    if not is_loopback(server):
        raise PlaintextRefusedError(
            f"security 'none' would send the {_credential(auth)} to {server} unencrypted:"
            " use security starttls or tls (plaintext is allowed only for a server on loopback,"
            " with --allow-plaintext)"
        )
    if not allow_plaintext:
        raise PlaintextRefusedError(
            f"security 'none' would send the {_credential(auth)} unencrypted: pass"
            " --allow-plaintext to allow it for this loopback server"
        )


def _credential(auth: AuthMethod) -> str:
    return "token" if auth is AuthMethod.OAUTH2 else "password"


async def authenticate_with_refresh(
    refresher: Refresher,
    clock: Clock,
    setting_id: str,
    attempt: Callable[[Secret], Awaitable[_T]],
) -> _T:
    """Run `attempt` with the setting's access token; on a refusal of a token older than
    `STALE_AFTER_S`, refresh once and run it once more.

    `attempt` authenticates on an open session (SMTP and POP3 both allow another AUTH after a
    failed one). A revoked grant shows up here as the refresh's TokenUnavailableError, after
    the refresher has marked the token Invalid.

    Raises:
        MailPolicyError: at once, without refreshing.
        MailAuthError: the refusal, when the token was fresh or its successor was refused too.
        TokenUnavailableError, TransportError, TransientOAuthError: from the refresher.
    """
    token = await refresher.current_token(setting_id)
    try:
        return await attempt(token.value)
    except MailPolicyError:
        raise
    except MailAuthError as refusal:
        age = clock.now() - token.obtained_at
        if age < STALE_AFTER_S:
            raise
        log.info("%s: the mail server refused a %d s old token; refreshing once", setting_id, age)
        fresh = await refresher.renew(setting_id, rejected=token.value)
        if fresh.value == token.value:
            # Refreshing failed for now and left the same token: trying it again is pointless.
            raise refusal from None
    return await attempt(fresh.value)
