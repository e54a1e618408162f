"""What the administrator must do when a step of the connection test fails, in their language.

Each function maps one kind of failure to one instruction. Texts name the command to run or
the server setting to change; they never hold a secret (only setting ids, accounts, servers).
"""

from __future__ import annotations

from tokenpost.errors import (
    MailAuthError,
    MailPolicyError,
    MailRejectedError,
    OAuthError,
    PlaintextRefusedError,
    RemoteProtocolError,
    TlsVerifyError,
    TokenpostError,
    TransportError,
)
from tokenpost.i18n import translator
from tokenpost.services.refresh import TokenUnavailableError
from tokenpost.settings.model import SMTP_ID, AuthMethod, MailSetting, SmtpSetting
from tokenpost.text import translate
from tokenpost.tokens.state import Invalid, TokenState, WaitingForAuthorization


def setting_missing(lang: str, setting_id: str) -> str:
    _ = translator(lang).gettext
    if setting_id == SMTP_ID:
        return _("Configure the SMTP setting: tokenpost smtp set …")
    return _("Add the POP setting: tokenpost pop add {name} …").format(
        name=setting_id.removeprefix("pop:")
    )


def setting_incomplete(lang: str, setting: MailSetting) -> str:
    _ = translator(lang).gettext
    if isinstance(setting, SmtpSetting):
        return _("Complete the SMTP setting: tokenpost smtp set …")
    return _("Complete the POP setting: tokenpost pop add {name} …").format(name=setting.name)


def plaintext(lang: str, error: PlaintextRefusedError) -> str:
    """The refusal says what to do already."""
    return error.translate(translator(lang).gettext)


def transport(lang: str, setting: MailSetting, error: TokenpostError) -> str:
    """Connecting, TLS, greeting or EHLO/CAPA failed."""
    _ = translator(lang).gettext
    where = f"{setting.server}:{setting.port}"
    if isinstance(error, TlsVerifyError):
        return _(
            "The certificate of {server} did not verify. If the server uses a certificate from "
            "your own CA, install that CA in the system trust store or give its certificate with "
            "--ca-file (or, for every setting and provider, TOKENPOST_CA_FILE); check that the "
            "server name is the one in its certificate and that the device's clock is right."
        ).format(server=setting.server)
    if isinstance(error, TransportError):
        return _(
            "No connection to {where}: check the server name and port, the security setting "
            "({security}: tls is usually port 465 for SMTP and 995 for POP3, starttls port 587 "
            "for SMTP and 110 for POP3), and that no firewall blocks the connection."
        ).format(where=where, security=setting.security.value)
    if isinstance(error, RemoteProtocolError):
        return _(
            "{where} did not answer as a mail server should for security {security}: check the "
            "port and the security setting (the server may not offer STARTTLS on this port)."
        ).format(where=where, security=setting.security.value)
    return _(
        "{where} refused the connection: check the server name and that it accepts this device."
    ).format(where=where)


def token_state(lang: str, setting_id: str, state: TokenState) -> str:
    """The token step failed because the token is not Acquired."""
    _ = translator(lang).gettext
    if isinstance(state, Invalid):
        return invalid_token(lang, setting_id)
    if isinstance(state, WaitingForAuthorization):
        return _(
            "Finish the authorization that was started, or start it again: "
            "tokenpost token get {setting}"
        ).format(setting=setting_id)
    return _("Obtain the token: tokenpost token get {setting}").format(setting=setting_id)


def invalid_token(lang: str, setting_id: str) -> str:
    _ = translator(lang).gettext
    return _(
        "Token update failed: delete the token and obtain it again "
        "(tokenpost token delete {setting}, then tokenpost token get {setting})"
    ).format(setting=setting_id)


def token_error(lang: str, setting_id: str, error: TokenpostError) -> str:
    """Getting or refreshing the token failed."""
    _ = translator(lang).gettext
    if isinstance(error, TokenUnavailableError):
        return invalid_token(lang, setting_id)
    if isinstance(error, TransportError | OAuthError | RemoteProtocolError):
        return _(
            "The provider could not be reached to refresh the token: check the device's "
            "connection to the provider (network, proxy, firewall) and try again later."
        )
    return _("Check the provider settings: tokenpost provider …")


def authentication(lang: str, setting: MailSetting, error: TokenpostError) -> str:
    """The server refused to authenticate (or the exchange broke off)."""
    _ = translator(lang).gettext
    if isinstance(error, MailPolicyError):
        return translate(error.fix, _)
    if isinstance(error, TokenUnavailableError):
        return invalid_token(lang, setting.setting_id)
    if isinstance(error, TransportError | RemoteProtocolError | MailRejectedError):
        return transport(lang, setting, error)
    if not isinstance(error, MailAuthError) or setting.auth is not AuthMethod.OAUTH2:
        return _("Check the account name and the password of {setting}.").format(
            setting=setting.setting_id
        )
    return refused_fresh_token(lang, setting)


def refused_fresh_token(lang: str, setting: MailSetting) -> str:
    """The server refused a token that was fresh (or just refreshed): not a token problem."""
    _ = translator(lang).gettext
    if isinstance(setting, SmtpSetting):
        return _(
            "The server refused a fresh token. Check that SMTP AUTH is enabled for the account "
            "(Exchange Online: Set-CASMailbox -SmtpClientAuthenticationDisabled $false) and that "
            "the token was obtained by signing in as the mailbox {account}; if not, delete the "
            "token and obtain it again."
        ).format(account=setting.account or "-")
    return _(
        "The server refused a fresh token. Check that POP is enabled for the account "
        "(Exchange Online: Set-CASMailbox -PopEnabled $true) and that the token was obtained "
        "by signing in as the mailbox {account}; if not, delete the token and obtain it again."
    ).format(account=setting.account or "-")


def no_mechanism(lang: str) -> str:
    _ = translator(lang).gettext
    return _(
        "The server offers no authentication mechanism this setting can use: check the "
        "security setting (many servers offer AUTH only after STARTTLS) and the authentication "
        "method."
    )
