"""The small interfaces tokenpost owns. Services receive these; `wiring` builds the adapters.

Tests fake these ports (never the libraries behind them); adapters are tested against real peers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tokenpost.errors import FieldProblem
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.secret import Secret
from tokenpost.settings.model import AlertSettings, PopSetting, Provider, SmtpSetting
from tokenpost.settings.network import Network
from tokenpost.text import Text
from tokenpost.tokens.state import TokenState

if TYPE_CHECKING:  # `token status` imports the ports: it should not pay for the SASL core
    from tokenpost.oauth.redirect_uri import LoopbackRedirect
    from tokenpost.sasl import SaslClient


class HttpClient(Protocol):
    # The timeout is per exchange and enforced by the adapter's HTTP client (connect, read,
    # write, pool), which an outer asyncio.timeout could not split up.
    async def send(
        self,
        request: HttpRequest,
        *,
        network: Network,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> HttpResponse:
        """One HTTP exchange to a provider. TLS is always verified, against the provider's CA
        file (`network.ca_file`), else the home's default CA file, else the system trust store;
        the request goes through the provider's proxy (`network.proxy`), else the environment's
        HTTPS_PROXY unless NO_PROXY exempts the host. Give `provider.network`.

        Raises:
            TransportError: no exchange (DNS, refused, timeout); TlsVerifyError for certificates.
            RemoteProtocolError: the body exceeded `oauth.http.MAX_RESPONSE_BYTES`.
        """
        ...


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A setting's token as stored. `version` grows with every write (compare-and-set);
    `binding` fingerprints what the token was obtained for (`tokens.binding`)."""

    setting_id: str
    state: TokenState
    binding: str
    version: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class DamagedRecord:
    """A settings record the store cannot read or authenticate: ``smtp``, ``pop:NAME``,
    ``provider:NAME`` or ``alerts``, and why (with the fix), for the administrator."""

    record_id: str
    reason: Text


class SettingsStore(Protocol):
    """Settings records. `list_*` return the intact records only; `get_*` of a damaged record
    raises DamagedRecordError; `damaged_records` names the damaged ones; `put_*` and `delete_*`
    overwrite or remove a record whether or not it is damaged."""

    async def damaged_records(self) -> list[DamagedRecord]: ...
    async def list_providers(self) -> list[Provider]: ...
    async def get_provider(self, name: str) -> Provider | None: ...
    async def put_provider(self, provider: Provider) -> None: ...
    async def delete_provider(self, name: str) -> None: ...
    async def get_smtp(self) -> SmtpSetting | None: ...
    async def put_smtp(self, setting: SmtpSetting) -> None: ...
    async def list_pop(self) -> list[PopSetting]: ...
    async def get_pop(self, name: str) -> PopSetting | None: ...
    async def put_pop(self, setting: PopSetting) -> None: ...
    async def delete_pop(self, name: str) -> None: ...
    async def get_alerts(self) -> AlertSettings:
        """The alert settings; never written reads as `AlertSettings()`."""
        ...

    async def put_alerts(self, alerts: AlertSettings) -> None: ...


class TokenStore(Protocol):
    async def load_token(self, setting_id: str) -> TokenRecord:
        """The stored token; a setting never written reads as NotAcquired at version 0."""
        ...

    async def load_tokens(self) -> list[TokenRecord]:
        """Every stored token, in one read, as `load_token` reads each (a damaged one as
        Invalid); a setting never written has none. For the status of every setting."""
        ...

    async def save_token(
        self, setting_id: str, state: TokenState, *, binding: str, expected_version: int
    ) -> TokenRecord:
        """Write if the stored version is still `expected_version`, else raise ConflictError."""
        ...


class Store(SettingsStore, TokenStore, Protocol):
    async def revision(self) -> int:
        """A number that changes with every committed change of a record (settings, tokens, web
        accounts, API tokens), whoever makes it; reads never change it. What is read after
        taking it is at least as new as it, so a reader that kept what it read may keep it
        while this is unchanged."""
        ...

    async def close(self) -> None: ...


class FlightLock(Protocol):
    """Mutual exclusion per key across coroutines and processes that share a home."""

    def hold(
        self,
        key: str,
        *,
        timeout: float | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """Hold the lock for `key` until the block exits.

        Waiting is bounded: by `timeout` seconds when given (0: take it only if it is free
        now), else by the lock's own limit.

        Raises:
            FlightLockBusyError: another holder kept it for the whole wait.
            StoreError: the lock cannot be taken at all.
        """
        ...


class FlowOwners(Protocol):
    """Which process waits for a pending authorization (`WaitingForAuthorization.owner_*`).

    A flow whose owner is gone has ended: nobody will finish it, and the token it replaced must
    serve again. Owners are told apart by host and id; only owners on this host can be checked.
    """

    def claim(self) -> tuple[str, str] | None:
        """(host, owner id) naming this process as the owner of the flows it starts, marked so
        that other processes see it alive until it exits (even by SIGKILL); None when owners
        are not tracked."""
        ...

    def is_gone(self, host: str, owner_id: str) -> bool:
        """True when the owner `owner_id` was on this host and no longer runs. An owner on
        another host, or one that cannot be checked, is never reported gone."""
        ...


class _UntrackedOwners:
    """FlowOwners that track nothing: flows are judged by their expiry alone."""

    def claim(self) -> tuple[str, str] | None:
        return None

    def is_gone(self, host: str, owner_id: str) -> bool:
        del host, owner_id
        return False


UNTRACKED_OWNERS: FlowOwners = _UntrackedOwners()


class RedirectListener(Protocol):
    """A loopback HTTP listener for the authorization-code redirect (RFC 8252 §7.3)."""

    @property
    def redirect_uri(self) -> str:
        """The registered redirect URI with the port listened on (`oauth.redirect_uri`)."""
        ...

    @property
    def requests(self) -> int:
        """How many requests have reached the listener so far (any path, any answer)."""
        ...

    async def wait_for_redirect(self) -> str:
        """The query string of the first GET to the redirect path."""
        ...

    async def close(self) -> None: ...


class RedirectListenerFactory(Protocol):
    async def __call__(self, redirect: LoopbackRedirect) -> RedirectListener:
        """Listen where `redirect` points, on its port or a free one.

        Raises:
            OperationError: the registered port is taken, or its address does not exist here.
        """
        ...


class LineSource(Protocol):
    """Lines a person types or pastes on the terminal, read only while a flow waits for one."""

    async def next_line(self) -> str | None:
        """The next line without its line break; None when no more will come (end of input).
        Cancelling the wait loses no line."""
        ...


class HostChecks(Protocol):
    """Checks of setting values against this host, which the settings rules cannot make (the
    settings core does no I/O). Their problems join the rules' in one ValidationError."""

    def problems(self, item: Provider | SmtpSetting | PopSetting) -> tuple[FieldProblem, ...]:
        """What is wrong with `item`'s paths here: a `ca_file` that is missing, unreadable or
        holds no CA certificate; a POP setting's `deliver_to` that exists but is no directory.
        Fields are named as in the rules ("ca_file"); paths not absolute are left to the rules."""
        ...


# --- Mail transports -------------------------------------------------------------------------

# Called with the name of each step of a connection as it succeeds ("connect", "tls",
# "greeting", "ehlo", "starttls", "auth", "quit"); the connection test prints them.
StepCallback = Callable[[str], None]


def no_steps(step: str) -> None:
    """The default StepCallback: nobody is watching."""
    del step


@dataclass(frozen=True, slots=True)
class Envelope:
    """SMTP envelope: MAIL FROM and RCPT TO (bcc recipients are here, not in the headers)."""

    sender: str
    recipients: tuple[str, ...]


class SmtpSession(Protocol):
    """An SMTP connection after the greeting, EHLO and (per the setting) TLS."""

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        """The AUTH mechanisms the server advertised after TLS, upper case."""
        ...

    async def authenticate(self, client: SaslClient) -> None:
        """Run one SASL exchange (initial response inline only when it fits in 512 octets).

        Raises:
            MailPolicyError: Exchange 535 5.7.139 / 550 5.7.30.
            MailAuthError: any other refusal. TransportError, RemoteProtocolError.
        """
        ...

    async def send(
        self,
        envelope: Envelope,
        message: Iterable[bytes],
        *,
        size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """MAIL, RCPT, DATA; `message` is streamed chunk by chunk (CRLF line ends, not yet
        dot-stuffed); `on_progress` gets the running count of message bytes written.

        `size` is the message's exact size in octets (RFC 1870: CRLF line ends, before
        dot-stuffing): when the server advertises SIZE it is announced on MAIL FROM, and a
        message over the server's limit is refused before MAIL FROM, the session unchanged.

        Raises:
            MailRejectedError: the message is over the server's SIZE limit (permanent), or the
                server refused the sender, a recipient or the data.
            TransportError, RemoteProtocolError.
        """
        ...

    async def close(self) -> None:
        """QUIT (best effort) and close. Never raises."""
        ...


class SmtpConnector(Protocol):
    async def connect(
        self, setting: SmtpSetting, *, on_step: StepCallback = no_steps
    ) -> SmtpSession:
        """Connect per `setting.security` (implicit TLS, STARTTLS or none), verifying the
        certificate against `setting.ca_file`, else TOKENPOST_CA_FILE, else the system store
        (`settings.network.trust_for`), within `setting.timeout`.

        Raises:
            TransportError (TlsVerifyError), RemoteProtocolError, MailRejectedError (greeting
            or EHLO refused).
        """
        ...


class Pop3Session(Protocol):
    """A POP3 connection in the AUTHORIZATION state, after the greeting, CAPA and TLS."""

    @property
    def capabilities(self) -> frozenset[str]:
        """CAPA tags, upper case (`UIDL`, `USER`, `STLS`…); SASL mechanisms as `SASL XOAUTH2`."""
        ...

    @property
    def apop_timestamp(self) -> str | None:
        """The greeting's `<…>` timestamp (RFC 1939 §7), if any."""
        ...

    async def authenticate(self, client: SaslClient) -> None:
        """AUTH in the two-line form (RFC 5034; Exchange needs it). Raises MailAuthError."""
        ...

    async def login(self, user: str, password: Secret) -> None:
        """USER/PASS. Raises MailAuthError."""
        ...

    async def apop(self, user: str, password: Secret) -> None:
        """APOP with the greeting's timestamp. Raises MailAuthError."""
        ...

    async def uidl(self) -> dict[int, str]:
        """Message number -> unique id, for every message in the maildrop."""
        ...

    async def retrieve(self, number: int, sink: Callable[[bytes], None]) -> int:
        """RETR; the message (dot-unstuffed, CRLF line ends) goes to `sink` in chunks; returns
        the number of octets. Raises TransportError when the connection drops mid-message."""
        ...

    async def delete(self, number: int) -> None:
        """DELE; the server removes the message only at a successful QUIT."""
        ...

    async def quit(self) -> None:
        """QUIT: commits the deletions (UPDATE state). Raises on an -ERR reply."""
        ...

    async def close(self) -> None:
        """Close without QUIT: nothing marked for deletion is deleted. Never raises."""
        ...


class Pop3Connector(Protocol):
    async def connect(
        self,
        setting: PopSetting,
        *,
        timeout: float = 60.0,  # noqa: ASYNC109
        on_step: StepCallback = no_steps,
    ) -> Pop3Session:
        """Connect per `setting.security` (implicit TLS, STLS or none), verifying certificates
        against `setting.ca_file`, else TOKENPOST_CA_FILE, else the system store.

        Raises:
            TransportError (TlsVerifyError), RemoteProtocolError, MailAuthError (greeting -ERR).
        """
        ...


@dataclass(frozen=True, slots=True)
class DeliveredMessage:
    """A message durably in its delivery folder: its file and, when it had any, the folder its
    attachments were extracted to."""

    path: str
    attachments: str | None = None


@dataclass(frozen=True, slots=True)
class OwedCommand:
    """A delivered message whose setting's command has not run to an end yet: `key` names it to
    `MailDrop.command_done`, `name` is its file name when it was stored (for log lines), and
    `message` is where it is now: None when it has been removed from the folder since."""

    key: str
    name: str
    message: DeliveredMessage | None


class MailDelivery(Protocol):
    """One received message on its way into a MailDrop: invisible until `commit`."""

    def write(self, chunk: bytes) -> None:
        """Append a chunk (the sink of `Pop3Session.retrieve`). Never raises: a write error is
        kept and raised by `commit`."""
        ...

    async def commit(self) -> DeliveredMessage:
        """Store the message (its content durably) and extract its attachments; from now on
        `MailDrop.delivered` is true for its UIDL. Its directory entry and the record of its
        UIDL become durable at the drop's next `sync`.

        Raises:
            DeliveryError: it is not delivered (nothing of it is visible), or it is stored but
                not yet recorded (the drop's next `recover` finishes it). Either way the server
                copy must stay.
        """
        ...

    def discard(self) -> None:
        """Drop a message that will not be committed. Never raises."""
        ...


class MailDrop(Protocol):
    """A POP setting's delivery folder and its record of the UIDLs already delivered there."""

    async def recover(self) -> list[DeliveredMessage]:
        """Finish what an interrupted run left: remove partial messages, record messages that
        were stored but not recorded (their command owed first, as `sync` does). Returns those.

        Raises:
            DeliveryError: the folder cannot be read or written.
        """
        ...

    def delivered(self, uidl: str) -> bool:
        """True when the message with this UIDL was delivered, even if since moved or deleted."""
        ...

    async def begin(self, uidl: str) -> MailDelivery:
        """Start writing the message with this UIDL. Raises DeliveryError."""
        ...

    async def sync(self) -> None:
        """Make every commit so far durable: after this, and only after this, may the server
        delete those messages (that is, QUIT after their DELE). When the setting has a command,
        each message's command is owed from the same step on (before the message is recorded as
        delivered), so whatever moment a kill picks, a stored message's command is owed or done.

        Raises:
            DeliveryError: the folder or the record cannot be synced.
        """
        ...

    async def owed_commands(self) -> list[OwedCommand]:
        """The messages whose command is owed, oldest first (recorded durably by `sync` and
        `recover`, and kept until `command_done`).

        Raises:
            DeliveryError: the folder cannot be read.
        """
        ...

    async def command_done(self, key: str) -> None:
        """The command of message `key` has run to an end (or is dropped): no longer owed. Not
        necessarily durable at once: after a power loss the command may be owed again.

        Raises:
            DeliveryError: the record cannot be written.
        """
        ...


class MailDropOpener(Protocol):
    def __call__(self, setting: PopSetting) -> AbstractAsyncContextManager[MailDrop]:
        """The drop of `setting` (its `deliver_to` folder, created when missing), held
        exclusively for the setting until the block exits: one receive run per setting and
        folder at a time, across processes (a second one waits). When the setting has a
        command, each message the drop records as delivered owes it (`MailDrop.sync`).

        Raises:
            DeliveryError: the folder cannot be created or used.
        """
        ...


# --- Commands (per-message command, alert hook) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How a command ended: `returncode` None means it was killed at its timeout; `output` is the
    tail of its combined stdout/stderr (bounded), for the log."""

    returncode: int | None
    output: str


class CommandRunner(Protocol):
    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,  # noqa: ASYNC109
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run `argv` (no shell) with stdin closed and `env` added to the environment.

        Raises:
            OperationError: the command could not be started (not found, not executable).
        """
        ...
