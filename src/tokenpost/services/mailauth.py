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
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, TypeVar

from tokenpost import sasl
from tokenpost.clock import Clock
from tokenpost.errors import MailAuthError, MailPolicyError, PlaintextRefusedError, UsageError
from tokenpost.ports import SmtpSession
from tokenpost.sasl import SaslClient
from tokenpost.secret import Secret
from tokenpost.services.refresh import Refresher
from tokenpost.settings.model import AuthMethod, Preset, Security, SmtpSetting

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
    token = auth is AuthMethod.OAUTH2
    if not is_loopback(server):
        if token:
            raise PlaintextRefusedError(
                "security 'none' would send the token to {server} unencrypted: use security"
                " starttls or tls (plaintext is allowed only for a server on loopback, with"
                " --allow-plaintext)",
                server=server,
            )
        raise PlaintextRefusedError(
            "security 'none' would send the password to {server} unencrypted: use security"
            " starttls or tls (plaintext is allowed only for a server on loopback, with"
            " --allow-plaintext)",
            server=server,
        )
    if not allow_plaintext:
        if token:
            raise PlaintextRefusedError(
                "security 'none' would send the token unencrypted: pass --allow-plaintext to"
                " allow it for this loopback server"
            )
        raise PlaintextRefusedError(
            "security 'none' would send the password unencrypted: pass --allow-plaintext to"
            " allow it for this loopback server"
        )


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


# -- SMTP: one mechanism choice and one AUTH for sending and the connection test ------------------


def choose_smtp_mechanism(
    auth: AuthMethod, offered: Iterable[str], *, preset: Preset | None = None
) -> str | None:
    """The SASL mechanism to authenticate to an SMTP server with; None for auth none.

    oauth2: OAUTHBEARER (the standard, RFC 7628) when offered and the provider is not Microsoft,
    else XOAUTH2; whichever of the two is offered when only one is (Exchange offers only
    XOAUTH2). password: PLAIN, else LOGIN. (POP3 has its own rules: `services.receive`.)

    Raises:
        MailAuthError: the server offers nothing this setting can use; says what it offers.
    """
    if auth is AuthMethod.NONE:
        return None
    mechanisms = frozenset(m.upper() for m in offered)
    if auth is AuthMethod.OAUTH2:
        ranked = _MICROSOFT_ORDER if preset is Preset.MICROSOFT else _STANDARD_ORDER
    elif auth is AuthMethod.PASSWORD:
        ranked = _PASSWORD_ORDER
    else:
        raise MailAuthError("authentication {auth} is for POP3 only", auth=auth.value)
    for mechanism in ranked:
        if mechanism in mechanisms:
            return mechanism
    if not mechanisms:
        raise MailAuthError(
            "the SMTP server offers no mechanism for {auth} authentication "
            "(it offers none; usable: {usable})",
            auth=auth.value,
            usable=" ".join(ranked),
        )
    raise MailAuthError(
        "the SMTP server offers no mechanism for {auth} authentication "
        "(it offers: {offered}; usable: {usable})",
        auth=auth.value,
        offered=" ".join(sorted(mechanisms)),
        usable=" ".join(ranked),
    )


_STANDARD_ORDER: Final = ("OAUTHBEARER", "XOAUTH2")
_MICROSOFT_ORDER: Final = ("XOAUTH2", "OAUTHBEARER")
_PASSWORD_ORDER: Final = ("PLAIN", "LOGIN")


async def authenticate_smtp(
    session: SmtpSession,
    setting: SmtpSetting,
    refresher: Refresher,
    clock: Clock,
    *,
    preset: Preset | None = None,
) -> str | None:
    """Authenticate per `setting.auth` with the mechanism `choose_smtp_mechanism` picks
    (OAuth 2.0 through `authenticate_with_refresh`); returns that mechanism, None for auth none.

    Raises:
        MailAuthError (MailPolicyError), TokenUnavailableError, TransportError,
        RemoteProtocolError, UsageError (an incomplete setting).
    """
    mechanism = choose_smtp_mechanism(setting.auth, session.auth_mechanisms, preset=preset)
    if mechanism is None:
        return None
    account = setting.account
    if not account:
        raise UsageError(
            "{setting}: auth {auth} needs an account",
            setting=setting.setting_id,
            auth=setting.auth.value,
        )

    def client(credential: Secret) -> SaslClient:
        match mechanism:
            case "OAUTHBEARER":
                return sasl.oauthbearer(account, credential, setting.server, setting.port)
            case "XOAUTH2":
                return sasl.xoauth2(account, credential)
            case "PLAIN":
                return sasl.plain(account, credential)
            case _:
                return sasl.login(account, credential)

    if setting.auth is AuthMethod.OAUTH2:

        async def attempt(token: Secret) -> None:
            await session.authenticate(client(token))

        await authenticate_with_refresh(refresher, clock, setting.setting_id, attempt)
        return mechanism
    if setting.password is None:
        raise UsageError(
            "{setting}: auth {auth} needs a password",
            setting=setting.setting_id,
            auth=setting.auth.value,
        )
    await session.authenticate(client(setting.password))
    return mechanism
