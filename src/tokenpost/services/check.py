"""The connection test (the device's "Connection Test" button): each step of reaching and
authenticating to a mail server, in order, stopping at the first that fails.

Steps (the ids are a contract: `tokenpost check --json` shows them):

    settings     the setting exists and is complete (its provider exists, auth has its fields)
    encryption   the plaintext rule (`mailauth.require_encryption`)
    connect      TCP connection to server:port
    tls          implicit TLS, STARTTLS or STLS (absent with security none)
    greeting     the server's greeting
    ehlo | capa  SMTP EHLO / POP3 CAPA (twice with STARTTLS/STLS: before and after TLS)
    token        oauth2 only: a usable access token, refreshed first when due
    auth         authentication, by the same procedure sending and receiving use
    quit         QUIT

The connector reports the transport steps as they succeed (`ports.StepCallback`); when it fails,
the failing step is the next one the setting's security calls for (a certificate that does not
verify is always the tls step). A failed step carries what the administrator must do
(`CheckReport.fix`, from `check_advice`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from tokenpost.clock import Clock
from tokenpost.errors import (
    MailAuthError,
    NotFoundError,
    PlaintextRefusedError,
    TlsVerifyError,
    TokenpostError,
    UsageError,
    ValidationError,
)
from tokenpost.i18n import translator
from tokenpost.ports import Pop3Connector, Pop3Session, SmtpConnector, SmtpSession, Store
from tokenpost.services import check_advice as advice
from tokenpost.services.mailauth import (
    authenticate_smtp,
    choose_smtp_mechanism,
    require_encryption,
)
from tokenpost.services.receive import authenticate_pop, pop_oauth_mechanism
from tokenpost.services.refresh import Refresher, TokenUnavailableError
from tokenpost.services.targets import load_current, load_setting, target_of
from tokenpost.settings.model import (
    AuthMethod,
    MailSetting,
    PopSetting,
    Preset,
    Security,
    SmtpSetting,
    Use,
    use_of,
)
from tokenpost.settings.network import trust_for
from tokenpost.settings.validate import pop_problems, smtp_problems
from tokenpost.text import N_, Gettext, Text
from tokenpost.tokens.state import Invalid, TokenState, WaitingForAuthorization, in_force

# The step ids, as the administrator reads them (msgids: translated where shown).
STEP_LABELS: Final[Mapping[str, str]] = {
    "settings": N_("Settings complete"),
    "encryption": N_("Encryption policy"),
    "connect": N_("Connect"),
    "tls": N_("TLS"),
    "greeting": N_("Greeting"),
    "ehlo": N_("EHLO"),
    "capa": N_("CAPA"),
    "token": N_("Token"),
    "auth": N_("Authenticate"),
    "quit": N_("Quit"),
}

# What a connector may call the TLS step; the report always says "tls".
_TLS_NAMES: Final = frozenset({"tls", "starttls", "stls"})


@dataclass(frozen=True, slots=True)
class Step:
    """One step's outcome; `detail` is safe to show (never a secret)."""

    step: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The whole test. `fix` says what to do about the failed step; `exit_code` is 0 when every
    step passed, 2 when the settings or the encryption rule stopped it, else 1."""

    setting_id: str
    steps: tuple[Step, ...]
    fix: str | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


StepHook = Callable[[Step], None]


def ignore_step(step: Step) -> None:
    """The default StepHook: nobody is watching."""
    del step


class _StepFailed(Exception):
    """Stops the test at `step` with the error (shown as the detail) and the fix."""

    def __init__(self, step: str, error: TokenpostError, fix: str) -> None:
        super().__init__(step)
        self.step = step
        self.error = error
        self.fix = fix


@dataclass
class _Run:
    """The steps so far, each reported to `on_step` as it completes."""

    on_step: StepHook
    gettext: Gettext  # the language of the details and the fix
    steps: list[Step] = field(default_factory=list)

    def passed(self, step: str, detail: str = "") -> None:
        self._add(Step(step, True, detail))

    def failed(self, setting_id: str, failure: _StepFailed) -> CheckReport:
        self._add(Step(failure.step, False, failure.error.translate(self.gettext)))
        exit_code = 2 if isinstance(failure.error, UsageError) else 1
        return CheckReport(setting_id, tuple(self.steps), failure.fix, exit_code)

    def _add(self, step: Step) -> None:
        self.steps.append(step)
        self.on_step(step)


@dataclass
class _Transport:
    """Turns the connector's step names into report steps, in the order `expected` gives."""

    run: _Run
    expected: tuple[str, ...]
    details: dict[str, str]
    done: int = 0  # how many of `expected` have passed
    connected: bool = False

    def reported(self, name: str) -> None:
        if self.connected:
            return  # the session's own auth and quit: the checker reports those itself
        step = "tls" if name in _TLS_NAMES else name
        if step not in self.expected[self.done :]:
            self.run.passed(step)  # a step this test does not know: shown as it came
            return
        # A step the connector did not report has passed if a later one did.
        upto = self.expected.index(step, self.done) + 1
        for passed in self.expected[self.done : upto]:
            self.run.passed(passed, self.details.get(passed, ""))
        self.done = upto

    def finish(self) -> None:
        """Connected: every expected step has passed, reported or not."""
        for passed in self.expected[self.done :]:
            self.run.passed(passed, self.details.get(passed, ""))
        self.done = len(self.expected)
        self.connected = True

    def failure(self, error: TokenpostError, fix: str) -> _StepFailed:
        if isinstance(error, TlsVerifyError):
            return _StepFailed("tls", error, fix)
        return _StepFailed(self.expected[min(self.done, len(self.expected) - 1)], error, fix)


@dataclass
class Checker:
    store: Store
    refresher: Refresher
    clock: Clock
    smtp: SmtpConnector
    pop: Pop3Connector
    lang: str = "en"
    pop_timeout: float = 60.0
    # TOKENPOST_CA_FILE, as the connectors were given it: the tls step says what was trusted.
    home_ca_file: str | None = None

    async def check(
        self, setting_id: str, *, allow_plaintext: bool = False, on_step: StepHook = ignore_step
    ) -> CheckReport:
        """Run the connection test for `setting_id` ("smtp" or "pop:NAME"). Failures of the
        test are in the report; only programming errors raise."""
        run = _Run(on_step, translator(self.lang).gettext)
        try:
            setting = await self._settings(setting_id)
            run.passed("settings", _describe(setting))
            try:
                require_encryption(
                    setting.security, setting.server, setting.auth, allow_plaintext=allow_plaintext
                )
            except PlaintextRefusedError as error:
                fix = advice.plaintext(self.lang, error)
                raise _StepFailed("encryption", error, fix) from error
            run.passed("encryption", setting.security.value)
            if isinstance(setting, SmtpSetting):
                await self._smtp(setting, run)
            else:
                await self._pop(setting, run)
        except _StepFailed as failure:
            return run.failed(setting_id, failure)
        return CheckReport(setting_id, tuple(run.steps))

    async def _settings(self, setting_id: str) -> MailSetting:
        try:
            setting = await load_setting(self.store, setting_id)
        except NotFoundError as missing:
            fix = advice.setting_missing(self.lang, setting_id)
            raise _StepFailed("settings", missing, fix) from missing
        providers = {p.name: p for p in await self.store.list_providers()}
        if isinstance(setting, SmtpSetting):
            problems = smtp_problems(setting, providers)
        else:
            problems = pop_problems(setting, providers)
        # Security none is the encryption step's to judge: it knows about --allow-plaintext.
        problems = tuple(p for p in problems if p.field != "security")
        if problems:
            invalid = ValidationError(problems, subject=setting_id)
            raise _StepFailed("settings", invalid, advice.setting_incomplete(self.lang, setting))
        return setting

    # -- SMTP ----------------------------------------------------------------------------------

    async def _smtp(self, setting: SmtpSetting, run: _Run) -> None:
        transport = _Transport(run, _expected(setting), self._details(setting, run))
        try:
            session = await self.smtp.connect(setting, on_step=transport.reported)
        except TokenpostError as error:
            raise transport.failure(error, advice.transport(self.lang, setting, error)) from error
        transport.finish()
        try:
            await self._smtp_auth(setting, session, run)
        finally:
            await session.close()
        run.passed("quit")

    async def _smtp_auth(self, setting: SmtpSetting, session: SmtpSession, run: _Run) -> None:
        offered = session.auth_mechanisms
        preset = await self._preset(setting)
        try:
            mechanism = choose_smtp_mechanism(setting.auth, offered, preset=preset)
        except MailAuthError as error:
            raise _StepFailed("auth", error, advice.no_mechanism(self.lang)) from error
        if mechanism is None:
            return
        await self._authenticate(
            setting,
            run,
            lambda: authenticate_smtp(session, setting, self.refresher, self.clock, preset=preset),
        )
        run.passed("auth", f"{mechanism} ({' '.join(sorted(offered))})")

    async def _preset(self, setting: SmtpSetting) -> Preset | None:
        provider = await self.store.get_provider(setting.provider) if setting.provider else None
        return provider.preset if provider is not None else None

    # -- POP3 ----------------------------------------------------------------------------------

    async def _pop(self, setting: PopSetting, run: _Run) -> None:
        transport = _Transport(run, _expected(setting), self._details(setting, run))
        try:
            session = await self.pop.connect(
                setting, timeout=self.pop_timeout, on_step=transport.reported
            )
        except TokenpostError as error:
            raise transport.failure(error, advice.transport(self.lang, setting, error)) from error
        transport.finish()
        try:
            await self._pop_auth(setting, session, run)
            try:
                await session.quit()
            except TokenpostError as error:
                fix = advice.transport(self.lang, setting, error)
                raise _StepFailed("quit", error, fix) from error
        finally:
            await session.close()
        run.passed("quit")

    async def _pop_auth(self, setting: PopSetting, session: Pop3Session, run: _Run) -> None:
        if setting.auth is AuthMethod.NONE:
            return
        await self._authenticate(
            setting, run, lambda: authenticate_pop(session, setting, self.refresher, self.clock)
        )
        if setting.auth is AuthMethod.OAUTH2:
            run.passed("auth", pop_oauth_mechanism(session.capabilities))
        else:
            run.passed("auth", setting.auth.value)

    def _details(self, setting: MailSetting, run: _Run) -> dict[str, str]:
        """The details of the transport steps: the address, and how TLS was checked (the
        trust source the connector used, by the same rule: `settings.network.trust_for`)."""
        upgrade = "STARTTLS" if use_of(setting) is Use.SMTP else "STLS"
        protocol = upgrade if setting.security is Security.STARTTLS else "TLS"
        trust = trust_for(setting.ca_file, self.home_ca_file).describe()
        tls = Text("{protocol}, trusted: {trust}", protocol=protocol, trust=trust)
        return {"connect": f"{setting.server}:{setting.port}", "tls": tls.translate(run.gettext)}

    # -- token and authentication, the same for both -------------------------------------------

    async def _authenticate(
        self, setting: MailSetting, run: _Run, authenticate: Callable[[], Awaitable[object]]
    ) -> None:
        """The token step (oauth2), then `authenticate`: the same procedure sending or
        receiving uses (a stale token that is refused is refreshed once and tried again)."""
        if setting.auth is AuthMethod.OAUTH2:
            run.passed("token", await self._token(setting))
        try:
            await authenticate()
        except TokenpostError as error:
            fix = advice.authentication(self.lang, setting, error)
            raise _StepFailed("auth", error, fix) from error

    async def _token(self, setting: MailSetting) -> str:
        """A usable token (refreshed when due); the step's detail says until when."""
        target = await target_of(self.store, setting)
        state = (await load_current(self.store, target)).state
        before = in_force(state)  # a pending re-authorization keeps the previous token in force
        if before is None:
            error = TokenUnavailableError(self._state_text(state))
            fix = advice.token_state(self.lang, setting.setting_id, state)
            raise _StepFailed("token", error, fix)
        try:
            token = await self.refresher.current_token(setting.setting_id)
        except TokenpostError as error:
            raise _StepFailed(
                "token", error, advice.token_error(self.lang, setting.setting_id, error)
            ) from error
        after = in_force((await load_current(self.store, target)).state)
        expires_at = after.expires_at if after is not None else before.expires_at
        _ = translator(self.lang).gettext
        if token.obtained_at != before.obtained_at:
            return _("refreshed, valid until {when}").format(when=_utc(expires_at))
        return _("valid until {when}").format(when=_utc(expires_at))

    @staticmethod
    def _state_text(state: TokenState) -> Text:
        if isinstance(state, Invalid):
            return Text("the token is invalid: {reason}", reason=state.reason)
        if isinstance(state, WaitingForAuthorization):
            return Text("the token is waiting for authorization")
        return Text("no token has been obtained")


def _expected(setting: MailSetting) -> tuple[str, ...]:
    """The transport steps the setting's security calls for, in order."""
    hello = "ehlo" if use_of(setting) is Use.SMTP else "capa"
    match setting.security:
        case Security.TLS:
            return ("connect", "tls", "greeting", hello)
        case Security.STARTTLS:
            return ("connect", "greeting", hello, "tls", hello)
        case Security.NONE:
            return ("connect", "greeting", hello)


def _describe(setting: MailSetting) -> str:
    parts = [f"{setting.server}:{setting.port}", setting.security.value, setting.auth.value]
    if setting.provider:
        parts.append(setting.provider)
    if setting.account:
        parts.append(setting.account)
    return " ".join(parts)


def _utc(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")
