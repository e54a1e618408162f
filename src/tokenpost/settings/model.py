"""The settings an administrator edits: providers, the SMTP setting, POP settings.

Settings are frozen values; only the store persists them and only tokenpost writes token state
(DESIGN invariant 5). Secrets (client secret, mail passwords) are `Secret`s here and encrypted at
rest by the store.

If you add a field to `Provider`, `SmtpSetting`, `PopSetting` or `AlertSettings`, also update:
`settings.validate`, `settings.toml_io` (export) and `settings.toml_read` (import), the store's
tables (`adapters.migrations`) and a new migration, and `tokens.binding` when the field can
change where a token goes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from tokenpost.secret import Secret
from tokenpost.settings.network import Network
from tokenpost.text import N_

SMTP_ID: Final = "smtp"
POP_PREFIX: Final = "pop:"
_POP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class Preset(StrEnum):
    MICROSOFT = "microsoft"
    GOOGLE = "google"
    GENERIC = "generic"


class Flow(StrEnum):
    """How a token is obtained: device authorization grant, browser (auth code + PKCE), app-only."""

    DEVICE = "device"
    BROWSER = "browser"
    APP = "app"


class Security(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


class AuthMethod(StrEnum):
    NONE = "none"
    PASSWORD = "password"  # noqa: S105 - the name of a method, not a secret
    APOP = "apop"  # POP only (RFC 1939 §7)
    OAUTH2 = "oauth2"


class Use(StrEnum):
    """What a token is for; presets request different scopes per use."""

    SMTP = "smtp"
    POP = "pop"


@dataclass(frozen=True, slots=True)
class Provider:
    """Where tokens come from. Endpoint fields override what the preset or discovery gives."""

    name: str
    preset: Preset
    client_id: str
    client_secret: Secret | None = None
    flow: Flow | None = None  # None: the preset's default
    tenant: str | None = None  # microsoft: common | organizations | consumers | GUID | domain
    issuer: str | None = None  # generic: discovery by RFC 8414 / OpenID Connect
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    scope: tuple[str, ...] | None = None  # both uses unless overridden below
    smtp_scope: tuple[str, ...] | None = None
    pop_scope: tuple[str, ...] | None = None
    ca_file: str | None = None
    # The browser flow's loopback redirect URI as registered with the provider (RFC 8252 §7.3);
    # None: the preset's (oauth.providers.redirect_uri_for). Without a port, a free one is
    # chosen each time.
    redirect_uri: str | None = None
    # An HTTP(S) proxy for this provider's endpoints (no password: that belongs in HTTPS_PROXY);
    # None: the environment's HTTPS_PROXY / NO_PROXY.
    proxy: str | None = None

    @property
    def network(self) -> Network:
        """What the HTTP client needs to reach this provider's endpoints."""
        return Network(ca_file=self.ca_file, proxy=self.proxy)


@dataclass(frozen=True, slots=True)
class SmtpSetting:
    """The one SMTP setting; its token is shared by every function that sends mail."""

    server: str
    port: int
    security: Security
    timeout: int  # seconds
    sender_name: str
    sender_address: str
    auth: AuthMethod
    provider: str | None = None
    account: str | None = None
    password: Secret | None = None
    ca_file: str | None = None

    @property
    def setting_id(self) -> str:
        return SMTP_ID


@dataclass(frozen=True, slots=True)
class PopSetting:
    """A named POP setting; each has its own token, even for the same provider and account."""

    name: str
    server: str
    port: int
    security: Security
    check_interval: int  # seconds
    auth: AuthMethod
    deliver_to: str
    provider: str | None = None
    account: str | None = None
    password: Secret | None = None
    ca_file: str | None = None
    # Keep messages on the server; a UIDL already delivered is never fetched again.
    leave_on_server: bool = False
    # Run for each stored message (e.g. a print command): split like a shell line (no shell),
    # with the message file's path appended as the last argument.
    command: str | None = None

    @property
    def setting_id(self) -> str:
        return POP_PREFIX + self.name


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The device's "E-mail Alert and Status": who hears about token and receive trouble.

    Alert mail goes to `recipients` through the SMTP setting; `hook` is a command run for every
    event (split like a shell line, no shell) with the event name, setting id and detail appended.
    Refresh and receive failures alert once they have lasted the given number of seconds.
    """

    recipients: tuple[str, ...] = ()
    hook: str | None = None
    refresh_failing_after: int = 3600
    receive_failing_after: int = 3600


MailSetting = SmtpSetting | PopSetting


def use_of(setting: MailSetting) -> Use:
    return Use.SMTP if isinstance(setting, SmtpSetting) else Use.POP


def is_valid_pop_name(name: str) -> bool:
    """POP setting names: 1-63 of letters, digits, '_', '.', '-', starting alphanumeric."""
    return bool(_POP_NAME.match(name))


def parse_setting_id(text: str) -> str:
    """Normalise ``smtp`` / ``pop:NAME``; raise ValueError with the rule otherwise."""
    if text == SMTP_ID:
        return SMTP_ID
    if text.startswith(POP_PREFIX) and is_valid_pop_name(text[len(POP_PREFIX) :]):
        return text
    raise ValueError(N_("a setting is 'smtp' or 'pop:NAME'"))
