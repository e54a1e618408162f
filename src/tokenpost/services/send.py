"""Sending mail through the SMTP setting: the one credential every sending function shares.

    async with sender.session() as outbox:        # one authenticated connection for a burst
        await outbox.send(Draft(to=("ops@example.com",), subject="Scan", attachments=…))
    await sender.send(draft)                      # one message, one connection

Theory of operation. A session connects lazily, on its first message: encryption rule first
(`mailauth.require_encryption`), then the connector's TLS and EHLO, then AUTH by the procedure the
connection test uses too (`mailauth.authenticate_smtp`: OAUTHBEARER or XOAUTH2 for oauth2, a
token refused while stale is refreshed once). The connection is reused for every message until
the token it authenticated with is about to expire (providers end such sessions then) or the
server drops it. A drop is noticed when a message fails with a TransportError before its first
byte was read: that message is sent once more on a new connection. A message whose content was
already being written is never sent again, so a drop mid-DATA is the caller's error to see.

Each message is checked in full (addresses, header values) before any connection is opened, and
its exact size is known before its first byte is read (`mime.Message.size`): a server that
advertises a smaller SIZE limit (RFC 1870) refuses it before anything is uploaded, with a
permanent MailRejectedError that leaves the connection as it was for the next message. The caller
opens attachment files (`adapters.outgoing_files`); they are read in chunks while the message is
written.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from tokenpost.clock import Clock
from tokenpost.errors import TokenpostError, TransportError
from tokenpost.mime import Draft, Mailbox, build, check_draft, make_message_id
from tokenpost.ports import Envelope, SmtpConnector, SmtpSession, StepCallback, Store, no_steps
from tokenpost.services.mailauth import authenticate_smtp, require_encryption
from tokenpost.services.refresh import Refresher
from tokenpost.services.targets import load_setting
from tokenpost.settings.model import SMTP_ID, AuthMethod, Preset, SmtpSetting

log = logging.getLogger("tokenpost.send")

# A connection is replaced this long before its token expires: the provider may end it then.
RECONNECT_BEFORE_EXPIRY_S: Final = 60.0

ProgressCallback = Callable[[int], None]


@dataclass
class Sender:
    """Sends drafts from the SMTP setting's sender address."""

    store: Store
    refresher: Refresher
    clock: Clock
    connector: SmtpConnector

    @asynccontextmanager
    async def session(
        self, *, allow_plaintext: bool = False, on_step: StepCallback = no_steps
    ) -> AsyncIterator[Outbox]:
        """An outbox on (at most) one connection at a time, closed on exit.

        Raises:
            NotFoundError: there is no SMTP setting.
            PlaintextRefusedError: security none to a server not on loopback, or without
                `allow_plaintext`.
        """
        setting = await self._setting()
        require_encryption(
            setting.security, setting.server, setting.auth, allow_plaintext=allow_plaintext
        )
        outbox = Outbox(self, setting, await self._preset(setting), on_step)
        try:
            yield outbox
        finally:
            await outbox.close()

    async def send(
        self,
        draft: Draft,
        *,
        allow_plaintext: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Send one message on a connection of its own; returns its Message-ID.

        Raises as `session` and `Outbox.send`; a bad draft fails before anything is opened."""
        setting = await self._setting()
        check_draft(draft, sender_of(setting))
        async with self.session(allow_plaintext=allow_plaintext) as outbox:
            return await outbox.send(draft, on_progress=on_progress)

    async def _setting(self) -> SmtpSetting:
        setting = await load_setting(self.store, SMTP_ID)
        assert isinstance(setting, SmtpSetting)  # noqa: S101 - load_setting("smtp") gives one
        return setting

    async def _preset(self, setting: SmtpSetting) -> Preset | None:
        if setting.auth is not AuthMethod.OAUTH2 or setting.provider is None:
            return None
        provider = await self.store.get_provider(setting.provider)
        return provider.preset if provider is not None else None


class Outbox:
    """The messages of one `Sender.session`; not for concurrent use."""

    def __init__(
        self, sender: Sender, setting: SmtpSetting, preset: Preset | None, on_step: StepCallback
    ) -> None:
        self._sender = sender
        self._setting = setting
        self._preset = preset
        self._on_step = on_step
        self._session: SmtpSession | None = None
        self._renew_at = 0.0  # when the connection must be replaced (its token's expiry)

    async def send(self, draft: Draft, *, on_progress: ProgressCallback | None = None) -> str:
        """Send `draft`; returns its Message-ID.

        Raises:
            UsageError: a bad address or header value (naming the field), an attachment that
                cannot be read or changed while it was sent.
            MailRejectedError: the message is larger than the server's SIZE limit (refused
                before MAIL FROM, the connection stays usable), or the server refused the
                sender, a recipient (then nobody gets it) or the message.
            MailAuthError (MailPolicyError), TokenUnavailableError: authentication failed.
            TransportError (TlsVerifyError), RemoteProtocolError.
        """
        sender = sender_of(self._setting)
        message_id = make_message_id(secrets.token_hex(16), sender.address)
        now = datetime.fromtimestamp(self._sender.clock.now(), UTC)
        message = build(draft, sender, date=now, message_id=message_id)
        content = _Started(iter(message))
        envelope = Envelope(sender.address, draft.recipients)
        reused = self._reusable()
        session = await self._connected()
        try:
            await session.send(envelope, content, size=message.size, on_progress=on_progress)
        except TransportError as error:
            if content.started or not reused:
                raise
            log.info("the SMTP connection was gone (%s); sending on a new one", error)
            await self.close()
            session = await self._connected()
            await session.send(envelope, content, size=message.size, on_progress=on_progress)
        log.info("sent %s to %d recipient(s)", message_id, len(envelope.recipients))
        return message_id

    async def close(self) -> None:
        """QUIT and close the connection, if there is one. Never raises."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _connected(self) -> SmtpSession:
        """The open connection, or a new authenticated one when there is none or its token is
        about to expire."""
        if self._session is not None and self._reusable():
            return self._session
        await self.close()
        sender = self._sender
        if self._setting.auth is AuthMethod.OAUTH2:
            # No usable token: no connection (TokenUnavailableError says what to do).
            await sender.refresher.access_token(SMTP_ID)
        session = await sender.connector.connect(self._setting, on_step=self._on_step)
        try:
            await authenticate_smtp(
                session, self._setting, sender.refresher, sender.clock, preset=self._preset
            )
            self._renew_at = await self._token_expiry() - RECONNECT_BEFORE_EXPIRY_S
        except BaseException:
            await session.close()
            raise
        self._session = session
        return session

    def _reusable(self) -> bool:
        return self._session is not None and self._sender.clock.now() < self._renew_at

    async def _token_expiry(self) -> float:
        """When the token this connection authenticated with expires (never without OAuth)."""
        if self._setting.auth is not AuthMethod.OAUTH2:
            return float("inf")
        # The token in force as the refresher knows it: the previous token of a pending
        # re-authorization, or a grant held while the store refuses it.
        try:
            return (await self._sender.refresher.token_in_force(SMTP_ID)).expires_at
        except TokenpostError:
            return 0.0


def sender_of(setting: SmtpSetting) -> Mailbox:
    """The From of every message: the setting's sender name and address."""
    return Mailbox(setting.sender_name, setting.sender_address)


class _Started:
    """The message's chunks; `started` once the transport has asked for the first."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.started = False

    def __iter__(self) -> Iterator[bytes]:
        self.started = True
        return self._chunks
