"""The one exception tree. Every failure tokenpost reports is one of these.

    TokenpostError                      message is safe to show: it never holds a secret
    ├── UsageError                      exit 2: the caller asked for something impossible
    │   ├── ValidationError             one or more (field, rule) problems in settings
    │   ├── NotFoundError               a named provider or setting does not exist
    │   └── PlaintextRefusedError       a bearer token or password would cross an unencrypted
    │                                   connection (DESIGN invariant 3)
    └── OperationError                  exit 1: a well-formed request failed
        ├── StoreError                  the local store
        │   ├── HomeError               home missing, not ours, or wrong permissions
        │   ├── KeyFileError            key file missing or not the key the store was written with
        │   ├── StoreCorruptError       unreadable rows or database file
    │   │   └── DamagedRecordError  one settings record is damaged; the others are intact
        │   ├── ConflictError           a compare-and-set lost against a newer write
        │   └── FlightLockBusyError     another process held a token's flight lock too long
        ├── TransportError              no usable exchange with a provider or mail server (DNS,
        │                               refused, TLS, timeout, connection dropped)
        │   └── TlsVerifyError          the peer's certificate did not verify
        ├── RemoteProtocolError         the peer answered outside the protocol (non-JSON, oversized,
        │                               missing fields, wrong state or iss on a redirect, a broken
        │                               SMTP or POP3 reply)
        ├── MailAuthError               the mail server refused authentication (535, -ERR)
        │   └── MailPolicyError         …for a configuration reason (Exchange 5.7.139, 5.7.30): fix
        │                               the tenant or mailbox, the token stays as it is
        ├── MailRejectedError           the SMTP server refused the sender, a recipient or the data
        ├── DeliveryError               a received message could not be stored durably
        └── OAuthError                  the provider answered with an OAuth error (RFC 6749 §5.2)
            ├── TransientOAuthError     retry later; never makes a token invalid
            ├── GrantInvalidError       the grant is gone: the token becomes invalid
            ├── ClientConfigError       the app registration or scopes are wrong: fix configuration
            └── AuthorizationEndedError the pending authorization ended without a token
                                        (denied, expired, bad verification code, cancelled)

`Transient` failures (`TransportError`, `TransientOAuthError`, HTTP 408/429/5xx) leave a token as
it is; callers find them with `is_transient`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokenpost.text import Gettext, Text


class TokenpostError(Exception):
    """Base of every tokenpost error. `str(error)` is safe to print and log.

    The message is a `Text`: a string literal (the msgid, English) and its parameters, as in
    ``NotFoundError("no POP setting {name!r}", name=name)``; `str(error)` is the English text and
    `translate(gettext)` the text in another language. A `Text` may be given instead.
    """

    exit_code: int = 1

    def __init__(self, message: str | Text = "", /, **params: object) -> None:
        if isinstance(message, Text):
            if params:
                raise TypeError("give a Text or a msgid with parameters, not both")
            self.text = message
        else:
            self.text = Text(message, **params)
        super().__init__(str(self.text))

    def as_text(self) -> Text:
        return self.text

    @staticmethod
    def _fields_as_params(
        message: str | Text, fields: dict[str, object], params: dict[str, object]
    ) -> dict[str, object]:
        """The parameters of a message whose error class keeps `fields` as attributes: with a
        msgid, the fields fill its placeholders too (``"{reply}"``); a Text brings its own."""
        return params if isinstance(message, Text) else {**fields, **params}

    def translate(self, gettext: Gettext) -> str:
        """The message in the language of `gettext`."""
        return self.text.translate(gettext)


class UsageError(TokenpostError):
    """Bad usage or invalid input: exit 2."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid field and the rule it breaks, e.g. ("port", "must be 1-65535"). The field is
    an option name (never translated); the rule is a msgid or a `Text`."""

    field: str
    rule: str | Text

    def __str__(self) -> str:
        return str(self.as_text())

    def as_text(self) -> Text:
        rule = self.rule if isinstance(self.rule, Text) else Text(self.rule)
        return Text("{field}: {rule}", field=self.field, rule=rule)

    def translate(self, gettext: Gettext) -> str:
        return self.as_text().translate(gettext)


class ValidationError(UsageError):
    """Settings that break one or more rules; every problem is reported at once."""

    def __init__(self, problems: Sequence[FieldProblem], *, subject: str | Text = "") -> None:
        self.problems = tuple(problems)
        self.subject = subject
        listed = tuple(p.as_text() for p in self.problems)
        if subject:
            super().__init__("{subject}: {problems}", subject=subject, problems=listed)
        else:
            super().__init__("{problems}", problems=listed)


class OperationError(TokenpostError):
    """A well-formed request that failed: exit 1."""


class StoreError(OperationError):
    """The local store cannot be used."""


class HomeError(StoreError):
    """The home directory is missing, unsafe or unusable."""


class KeyFileError(StoreError):
    """The key file is missing, malformed, or not the key this store was written with."""


class StoreCorruptError(StoreError):
    """The database or one of its rows cannot be read."""


class DamagedRecordError(StoreCorruptError):
    """One stored record (a provider, a mail setting, the alert settings) cannot be read or does
    not authenticate; the other records are intact. The message names the record and the fix."""


class ConflictError(StoreError):
    """A compare-and-set write found a newer version: re-read and decide again."""


class FlightLockBusyError(StoreError):
    """Another tokenpost process held a token's flight lock for the whole bounded wait: it is
    refreshing or authorizing, or it keeps a token the store would not take (disk full,
    read-only) until it can write it. The message says what to do."""


class NotFoundError(UsageError):
    """A named provider or setting does not exist."""


class TransportError(OperationError):
    """No usable exchange (HTTP, SMTP, POP3): DNS, connection, TLS, timeout, dropped. Transient."""


class TlsVerifyError(TransportError):
    """The server's certificate did not verify. Transient for retries, but reported plainly."""


class RemoteProtocolError(OperationError):
    """The peer answered outside the protocol: non-JSON, oversized, missing or wrong fields."""


class PlaintextRefusedError(UsageError):
    """A token or password would be sent without TLS: refused unless the server is on loopback
    and the administrator passed an explicit ``--allow-plaintext``."""


class MailAuthError(OperationError):
    """The SMTP or POP3 server refused to authenticate.

    `reply` is the server's final reply (code and text, control characters stripped, cut short);
    `status` is the OAuth status from an error challenge (RFC 7628 §3.2.2, Google's XOAUTH2
    JSON), or "". Neither ever holds a token: servers echo none, and the SASL core sends none
    back.
    """

    def __init__(
        self, message: str | Text, /, *, reply: str = "", status: str = "", **params: object
    ) -> None:
        self.reply = reply
        self.status = status
        fields: dict[str, object] = {"reply": reply, "status": status}
        super().__init__(message, **self._fields_as_params(message, fields, params))


class MailPolicyError(MailAuthError):
    """A refusal for a configuration reason (Exchange `535 5.7.139`, `550 5.7.30`): `fix` says
    what the administrator must change. Never a reason to refresh or to invalidate a token."""

    def __init__(
        self, message: str | Text, /, *, fix: str | Text, reply: str = "", **params: object
    ) -> None:
        self.fix = fix
        params = self._fields_as_params(message, {"fix": fix}, params)
        super().__init__(message, reply=reply, status="", **params)


class MailRejectedError(OperationError):
    """The SMTP server refused the sender, a recipient or the message (`reply` says which)."""

    def __init__(
        self,
        message: str | Text,
        /,
        *,
        reply: str = "",
        transient: bool = False,
        **params: object,
    ) -> None:
        self.reply = reply
        self.transient = transient  # a 4xx reply: the same message may pass later
        fields: dict[str, object] = {"reply": reply}
        super().__init__(message, **self._fields_as_params(message, fields, params))


class DeliveryError(OperationError):
    """A received message could not be stored durably; it stays on the server."""


class OAuthError(OperationError):
    """An OAuth error response (RFC 6749 §5.2, RFC 8628 §3.5).

    `error` is the RFC error code; `description` is the provider's text, cut short and stripped of
    control characters, for the administrator (never parsed: Microsoft says AADSTS texts change).
    """

    def __init__(
        self,
        message: str | Text,
        /,
        *,
        error: str = "",
        description: str = "",
        **params: object,
    ) -> None:
        self.error = error
        self.description = description
        fields: dict[str, object] = {"error": error, "description": description}
        super().__init__(message, **self._fields_as_params(message, fields, params))


class TransientOAuthError(OAuthError):
    """`temporarily_unavailable`, HTTP 408/429/5xx: retry with back-off, keep the token."""


class GrantInvalidError(OAuthError):
    """`invalid_grant`, `consent_required`, `interaction_required`…: the token becomes invalid."""


class ClientConfigError(OAuthError):
    """`invalid_client`, `unauthorized_client`, `invalid_scope`…: fix the provider settings."""


class AuthorizationEndedError(OAuthError):
    """A pending authorization ended without a token: denied, expired, bad code, cancelled."""


def is_transient(error: BaseException) -> bool:
    """True for failures that must never make a token invalid."""
    return isinstance(error, TransportError | TransientOAuthError)
