"""Alerts through the real services, with fakes of our own ports only: the hook command, alert
mail for invalid tokens, refresh failing and receive failing (once per episode), and the
fallback to the log when the alert mail cannot be sent."""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from service_world import TOKEN_URL, provider, smtp_setting

from fakes import FakeClock, MemoryLock, MemoryStore, ScriptedHttp, json_response
from tokenpost.errors import OperationError, StoreError, TokenpostError
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.ports import CommandResult
from tokenpost.secret import Secret
from tokenpost.services import alerts as alerts_module
from tokenpost.services.alerts import EVENTS, Alerter
from tokenpost.services.deletion import Deleter
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.refresh import Refresher, TokenUnavailableError
from tokenpost.services.targets import load_target
from tokenpost.settings.model import AlertSettings, AuthMethod, PopSetting, Security
from tokenpost.tokens.state import Acquired

HOOK = "/usr/local/bin/notify --tag 'scan room'"
ADMINS = ("admin@example.com", "desk@example.com")
ACCESS = "s3cr3t-at-0"
REFRESH = "s3cr3t-rt-0"


@dataclass
class AlertStore(MemoryStore):
    """MemoryStore with the alert settings of `SettingsStore`."""

    alert_settings: AlertSettings = field(default_factory=AlertSettings)

    async def get_alerts(self) -> AlertSettings:
        return self.alert_settings

    async def put_alerts(self, alerts: AlertSettings) -> None:
        self.alert_settings = alerts


@dataclass
class RecordingRunner:
    """A CommandRunner that records each command and answers with `result` (or raises)."""

    result: CommandResult = field(default_factory=lambda: CommandResult(0, ""))
    fail: OperationError | None = None
    calls: list[tuple[list[str], float, dict[str, str]]] = field(default_factory=list)

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.calls.append((list(argv), timeout, dict(env or {})))
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return self.result

    def events(self) -> list[str]:
        return [argv[-3] for argv, _, _ in self.calls]


@dataclass
class RecordingMailer:
    """`send_alert`: records each mail; raises `fail` or hangs when told to."""

    fail: TokenpostError | None = None
    hang: bool = False
    mails: list[tuple[tuple[str, ...], str, str]] = field(default_factory=list)
    attempts: int = 0

    async def __call__(self, recipients: Sequence[str], subject: str, body: str) -> None:
        self.attempts += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail
        self.mails.append((tuple(recipients), subject, body))


class AlertWorld:
    def __init__(self) -> None:
        self.store = AlertStore()
        self.http = ScriptedHttp()
        self.lock = MemoryLock()
        self.clock = FakeClock()
        self.runner = RecordingRunner()
        self.mailer = RecordingMailer()
        self.alerter = Alerter(self.store, self.clock, self.runner, self.mailer)
        resolver = EndpointResolver(self.http)
        hook = self.alerter.on_event
        self.refresher = Refresher(
            self.store, self.http, self.lock, self.clock, resolver, on_event=hook
        )
        self.deleter = Deleter(
            self.store, self.http, self.lock, self.clock, resolver, on_event=hook
        )

    async def seed_token(self, setting_id: str = "smtp", *, expires_in: float = -10) -> None:
        target = await load_target(self.store, setting_id)
        now = self.clock.now()
        state = Acquired(
            access_token=Secret(ACCESS),
            expires_at=now + expires_in,
            obtained_at=now - 3000,
            refresh_token=Secret(REFRESH),
        )
        await self.store.save_token(setting_id, state, binding=target.binding, expected_version=0)

    async def token(self, setting_id: str = "smtp") -> Acquired:
        state = (await self.store.load_token(setting_id)).state
        assert isinstance(state, Acquired)
        return state


@pytest.fixture
async def aw() -> AlertWorld:
    w = AlertWorld()
    await w.store.put_provider(provider())
    await w.store.put_smtp(smtp_setting())
    await w.store.put_alerts(
        AlertSettings(
            recipients=ADMINS, hook=HOOK, refresh_failing_after=3600, receive_failing_after=1800
        )
    )
    return w


def answer(status: int, body: dict[str, object]) -> object:
    def respond(request: HttpRequest) -> HttpResponse:
        return json_response(status, body)

    return respond


INVALID_GRANT = answer(400, {"error": "invalid_grant", "error_description": "consent revoked"})
UNAVAILABLE = answer(503, {"error": "temporarily_unavailable"})
GRANTED = answer(200, {"access_token": "s3cr3t-at-1", "token_type": "Bearer", "expires_in": 3600})


def pop_setting(name: str = "fax") -> PopSetting:
    return PopSetting(
        name=name,
        server="pop.example",
        port=995,
        security=Security.TLS,
        check_interval=300,
        auth=AuthMethod.OAUTH2,
        deliver_to="/var/spool/fax",
        provider="as",
        account="fax@example.com",
    )


# -- the hook --------------------------------------------------------------------------------------


async def test_on_event_only_enqueues_and_the_hook_gets_argv_and_env(aw: AlertWorld) -> None:
    aw.alerter.on_event("token_deleted", "pop:fax", "revoked at the provider")
    assert aw.runner.calls == []  # nothing ran inside the caller

    await aw.alerter.drain()

    [(argv, timeout, env)] = aw.runner.calls
    assert argv == [*shlex.split(HOOK), "token_deleted", "pop:fax", "revoked at the provider"]
    assert argv[:3] == ["/usr/local/bin/notify", "--tag", "scan room"]
    assert timeout == aw.alerter.hook_timeout
    assert env["TOKENPOST_EVENT"] == "token_deleted"
    assert env["TOKENPOST_SETTING"] == "pop:fax"
    assert env["TOKENPOST_DETAIL"] == "revoked at the provider"
    assert aw.clock.now() == 1_800_000_000
    assert env["TOKENPOST_TIME"] == "2027-01-15T08:00:00Z"  # ISO 8601 UTC, as in JSON output
    assert aw.mailer.attempts == 0  # deleting is no reason for an alert mail


async def test_without_a_hook_nothing_runs(aw: AlertWorld) -> None:
    await aw.store.put_alerts(AlertSettings(recipients=ADMINS))
    aw.alerter.on_event("token_acquired", "smtp", "")
    await aw.alerter.drain()
    assert aw.runner.calls == []


async def test_events_are_handled_in_order(aw: AlertWorld) -> None:
    for name in ("token_acquired", "token_refreshed", "token_deleted"):
        aw.alerter.on_event(name, "smtp", "")
    await aw.alerter.drain()
    assert aw.runner.events() == ["token_acquired", "token_refreshed", "token_deleted"]


@pytest.mark.parametrize(
    ("result", "fail", "logged"),
    [
        (CommandResult(3, "starting\nboom: no route\n"), None, "exited with 3: boom: no route"),
        (CommandResult(None, ""), None, "stopped after 30 s"),
        (CommandResult(0, ""), OperationError("cannot run /usr/local/bin/notify"), "cannot run"),
    ],
    ids=["exit-status", "timeout", "not-started"],
)
async def test_a_failing_hook_is_logged_and_the_alert_mail_still_goes_out(
    aw: AlertWorld,
    caplog: pytest.LogCaptureFixture,
    result: CommandResult,
    fail: OperationError | None,
    logged: str,
) -> None:
    aw.runner.result, aw.runner.fail = result, fail
    aw.alerter.on_event("token_invalid", "smtp", "invalid_grant")
    with caplog.at_level(logging.WARNING, logger="tokenpost.alerts"):
        await aw.alerter.drain()
    [record] = [r for r in caplog.records if "alert hook" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert logged in record.getMessage()
    assert len(aw.mailer.mails) == 1


async def test_a_full_queue_drops_events_with_one_warning_and_never_blocks(
    aw: AlertWorld, caplog: pytest.LogCaptureFixture
) -> None:
    alerter = Alerter(aw.store, aw.clock, aw.runner, aw.mailer, queue_limit=2)
    with caplog.at_level(logging.WARNING, logger="tokenpost.alerts"):
        for n in range(5):
            alerter.on_event("token_refreshed", f"pop:p{n}", "")
    await alerter.drain()
    assert [argv[-2] for argv, _, _ in aw.runner.calls] == ["pop:p0", "pop:p1"]
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 1


# -- token invalid -----------------------------------------------------------------------------


async def test_a_token_that_becomes_invalid_mails_the_administrators(aw: AlertWorld) -> None:
    await aw.seed_token()
    aw.http.routes[TOKEN_URL] = INVALID_GRANT  # type: ignore[assignment]
    with pytest.raises(TokenUnavailableError):
        await aw.refresher.access_token("smtp")

    await aw.alerter.drain()

    assert aw.runner.events() == ["token_invalid"]
    [(recipients, subject, body)] = aw.mailer.mails
    assert recipients == ADMINS
    assert "smtp" in subject
    assert "invalid" in subject
    assert "consent revoked" in body
    assert "tokenpost token delete smtp" in body
    assert "tokenpost token get smtp" in body


async def test_no_recipients_means_no_mail_but_the_hook_runs(aw: AlertWorld) -> None:
    await aw.store.put_alerts(AlertSettings(hook=HOOK))
    aw.alerter.on_event("token_invalid", "smtp", "invalid_grant")
    await aw.alerter.drain()
    assert aw.runner.events() == ["token_invalid"]
    assert aw.mailer.attempts == 0


async def test_deleting_through_the_service_reaches_the_hook(aw: AlertWorld) -> None:
    await aw.seed_token(expires_in=3600)
    aw.http.routes["https://as.example/revoke"] = answer(200, {})  # type: ignore[assignment]
    await aw.deleter.delete("smtp")
    await aw.alerter.drain()
    [(argv, _, _)] = aw.runner.calls
    assert argv[-3:] == ["token_deleted", "smtp", "revoked at the provider"]


# -- when the alert mail cannot be sent ---------------------------------------------------------


async def test_an_unusable_smtp_token_sends_the_alert_to_the_log_once(
    aw: AlertWorld, caplog: pytest.LogCaptureFixture
) -> None:
    aw.mailer.fail = TokenUnavailableError("the token of smtp is invalid: invalid_grant")
    aw.alerter.on_event("token_invalid", "smtp", "invalid_grant")
    with caplog.at_level(logging.WARNING, logger="tokenpost.alerts"):
        await aw.alerter.drain()
        await aw.alerter.drain()  # nothing left over: no retry

    assert aw.mailer.attempts == 1
    assert aw.runner.events() == ["token_invalid"]
    [record] = [r for r in caplog.records if "alert not mailed" in r.getMessage()]
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "\n" not in message
    assert "tokenpost: the token of smtp is invalid" in message  # the alert itself
    assert "invalid_grant" in message  # why it was not mailed


async def test_a_mail_server_that_never_answers_is_given_up_on(
    aw: AlertWorld, caplog: pytest.LogCaptureFixture
) -> None:
    aw.mailer.hang = True
    aw.alerter.send_timeout = 0.05
    aw.alerter.on_event("token_invalid", "pop:fax", "invalid_grant")
    with caplog.at_level(logging.WARNING, logger="tokenpost.alerts"):
        await aw.alerter.drain()
    assert any("no answer in 0.05 s" in r.getMessage() for r in caplog.records)


# -- refresh failing ---------------------------------------------------------------------------


async def fail_refresh(aw: AlertWorld) -> None:
    """One scheduler pass: refresh when due (retry_at respected); failures stay in the state."""
    state = await aw.token()
    if state.retry_at is not None:
        aw.clock.t = max(aw.clock.t, state.retry_at)
    await aw.refresher.refresh_if_due("smtp")


async def test_refresh_failing_alerts_once_per_run_of_failures(aw: AlertWorld) -> None:
    await aw.seed_token(expires_in=100)
    aw.http.routes[TOKEN_URL] = UNAVAILABLE  # type: ignore[assignment]
    await fail_refresh(aw)
    started = (await aw.token()).failing_since
    assert started == aw.clock.t

    failures = 1
    while (retry_at := (await aw.token()).retry_at) is not None and retry_at < started + 3599:
        await fail_refresh(aw)
        failures += 1
        await aw.alerter.check_refresh()
        await aw.alerter.drain()
    assert failures >= 5
    assert (await aw.token()).failures == failures
    assert aw.mailer.mails == []
    assert (await aw.token()).failing_since == started

    aw.clock.t = started + 3600
    for _ in range(3):
        await aw.alerter.check_refresh()
        await aw.alerter.drain()
        await fail_refresh(aw)
    [(recipients, subject, body)] = aw.mailer.mails
    assert recipients == ADMINS
    assert "refreshing the token of smtp keeps failing" in subject
    assert "temporarily_unavailable" in body
    assert aw.runner.events().count("refresh_failing") == 1
    [(argv, _, _)] = [c for c in aw.runner.calls if "refresh_failing" in c[0]]
    assert "temporarily_unavailable" in argv[-1]

    # A successful refresh ends the run; the next run alerts again once it lasts long enough.
    aw.http.routes[TOKEN_URL] = GRANTED  # type: ignore[assignment]
    await fail_refresh(aw)
    assert (await aw.token()).failing_since is None
    await aw.alerter.check_refresh()
    aw.http.routes[TOKEN_URL] = UNAVAILABLE  # type: ignore[assignment]
    aw.clock.t = (await aw.token()).expires_at - 60
    await fail_refresh(aw)
    second = (await aw.token()).failing_since
    assert second is not None
    assert second > started
    aw.clock.t = second + 3600
    await aw.alerter.check_refresh()
    await aw.alerter.check_refresh()
    await aw.alerter.drain()
    assert len(aw.mailer.mails) == 2


async def test_refresh_failing_is_checked_per_setting_and_ignores_other_states(
    aw: AlertWorld,
) -> None:
    await aw.store.put_pop(pop_setting("fax"))
    await aw.store.put_pop(pop_setting("print"))
    await aw.seed_token("smtp", expires_in=3600)
    await aw.seed_token("pop:fax", expires_in=3600)
    record = await aw.store.load_token("pop:fax")
    assert isinstance(record.state, Acquired)
    failing = replace(record.state, failures=4, last_error="HTTP 502", failing_since=aw.clock.t)
    await aw.store.save_token(
        "pop:fax", failing, binding=record.binding, expected_version=record.version
    )
    aw.clock.t += 3600

    await aw.alerter.check_refresh()
    await aw.alerter.drain()

    assert aw.runner.events() == ["refresh_failing"]
    assert aw.runner.calls[0][0][-2:] == ["pop:fax", "HTTP 502"]
    [(_, subject, _)] = aw.mailer.mails
    assert "pop:fax" in subject


# -- receive failing ---------------------------------------------------------------------------


async def test_receive_failing_alerts_once_per_episode(aw: AlertWorld) -> None:
    async def receive_failed(at: float, setting: str = "pop:fax") -> None:
        aw.clock.t = at
        aw.alerter.on_event("receive_failed", setting, "connection refused")
        await aw.alerter.drain()

    t0 = aw.clock.t
    for at in (t0, t0 + 600, t0 + 1799):
        await receive_failed(at)
    assert aw.mailer.mails == []
    await receive_failed(t0 + 300, "pop:print")  # another setting: its own episode

    await receive_failed(t0 + 1800)
    await receive_failed(t0 + 2400)
    [(recipients, subject, body)] = aw.mailer.mails
    assert recipients == ADMINS
    assert "receiving mail for pop:fax keeps failing" in subject
    assert "connection refused" in body
    assert "30 min" in body
    assert "tokenpost check pop:fax" in body

    aw.alerter.on_event("receive_recovered", "pop:fax", "")
    await aw.alerter.drain()
    t1 = t0 + 10_000
    await receive_failed(t1)
    await receive_failed(t1 + 1000)
    assert len(aw.mailer.mails) == 1  # a new episode, not yet long enough
    await receive_failed(t1 + 1800)
    assert len(aw.mailer.mails) == 2
    assert aw.runner.events().count("receive_failed") == 9
    assert aw.runner.events().count("receive_recovered") == 1


# -- the store cannot be written -----------------------------------------------------------------

DISK_FULL = StoreError("cannot write the store: {reason}", reason="database or disk is full")


async def test_store_unwritable_runs_the_hook_logs_and_mails_what_to_do(
    aw: AlertWorld, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tokenpost"):
        aw.alerter.on_event("store_unwritable", "pop:fax", DISK_FULL)
        await aw.alerter.drain()

    [(argv, _, env)] = aw.runner.calls
    assert argv[-3:] == ["store_unwritable", "pop:fax", str(DISK_FULL)]
    assert env["TOKENPOST_DETAIL"] == "cannot write the store: database or disk is full"
    [(recipients, subject, body)] = aw.mailer.mails
    assert recipients == ADMINS
    assert subject == "tokenpost: the new token of pop:fax cannot be stored"
    assert "database or disk is full" in body  # what happened
    assert "kept in memory" in body
    assert "free space" in body  # what to do
    assert "do not restart tokenpost" in body  # and what not to
    assert "tokenpost token get pop:fax" in body
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "store_unwritable"]
    assert line.levelno == logging.ERROR
    assert "database or disk is full" in line.getMessage()


async def test_store_unwritable_mail_that_cannot_go_out_is_a_warning(
    aw: AlertWorld, caplog: pytest.LogCaptureFixture
) -> None:
    aw.mailer.fail = OperationError("connection refused by smtp.example:587")
    aw.alerter.on_event("store_unwritable", "smtp", DISK_FULL)
    with caplog.at_level(logging.WARNING, logger="tokenpost.alerts"):
        await aw.alerter.drain()
    assert aw.runner.events() == ["store_unwritable"]
    [record] = [r for r in caplog.records if "alert not mailed" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "tokenpost: the new token of smtp cannot be stored" in record.getMessage()
    assert "connection refused" in record.getMessage()


async def test_store_unwritable_mail_in_german(aw: AlertWorld) -> None:
    aw.alerter.lang = "de"
    aw.alerter.on_event("store_unwritable", "smtp", DISK_FULL)
    await aw.alerter.drain()
    [(_, subject, body)] = aw.mailer.mails
    assert subject == "tokenpost: das neue Token von smtp kann nicht gespeichert werden"
    assert "Arbeitsspeicher" in body
    assert "Starten Sie tokenpost nicht neu" in body
    assert "tokenpost token get smtp" in body


# -- the consumer task ------------------------------------------------------------------------


async def test_run_handles_events_as_they_come_and_checks_refresh(aw: AlertWorld) -> None:
    await aw.seed_token(expires_in=3600)
    record = await aw.store.load_token("smtp")
    assert isinstance(record.state, Acquired)
    failing = replace(record.state, failures=9, last_error="timeout", failing_since=aw.clock.t)
    await aw.store.save_token("smtp", failing, binding=record.binding, expected_version=1)
    aw.clock.t += 7200
    aw.alerter.check_every = 0.01
    task = asyncio.create_task(aw.alerter.run())
    try:
        aw.alerter.on_event("token_acquired", "pop:fax", "")
        async with asyncio.timeout(5):
            while len(aw.runner.calls) < 2 or not aw.mailer.mails:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # further checks in the same run of failures: no alert
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sorted(aw.runner.events()) == ["refresh_failing", "token_acquired"]
    assert len(aw.mailer.mails) == 1


async def test_run_returns_on_stop_and_leaves_queued_events_for_drain(aw: AlertWorld) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(aw.alerter.run(stop))
    aw.alerter.on_event("token_acquired", "smtp", "")
    async with asyncio.timeout(5):
        while not aw.runner.calls:
            await asyncio.sleep(0.01)
    stop.set()
    async with asyncio.timeout(5):
        await task  # returns by itself: no cancellation needed
    aw.alerter.on_event("token_deleted", "smtp", "")
    await aw.alerter.drain()
    assert aw.runner.events() == ["token_acquired", "token_deleted"]


# -- language, secrets, the catalogue -----------------------------------------------------------


async def test_alert_mail_in_german(aw: AlertWorld) -> None:
    aw.alerter.lang = "de"
    aw.alerter.on_event("token_invalid", "smtp", "invalid_grant")
    await aw.alerter.drain()
    [(_, subject, body)] = aw.mailer.mails
    assert "ungültig" in subject
    assert "tokenpost token get smtp" in body


async def test_no_token_reaches_the_hook_the_mail_or_the_log(
    aw: AlertWorld, caplog: pytest.LogCaptureFixture
) -> None:
    await aw.seed_token(expires_in=100)
    aw.http.routes[TOKEN_URL] = UNAVAILABLE  # type: ignore[assignment]
    with caplog.at_level(logging.DEBUG):
        await fail_refresh(aw)
        aw.clock.t += 4000
        await aw.alerter.check_refresh()
        aw.http.routes[TOKEN_URL] = INVALID_GRANT  # type: ignore[assignment]
        await fail_refresh(aw)
        aw.mailer.fail = TokenUnavailableError("the token of smtp is invalid")
        await aw.alerter.drain()
    assert aw.runner.events() == ["refresh_failing", "token_invalid"]
    seen = [repr(call) for call in aw.runner.calls]
    seen += [repr(mail) for mail in aw.mailer.mails]
    seen += [r.getMessage() for r in caplog.records]
    for text in seen:
        assert "s3cr3t" not in text


def test_every_event_the_services_emit_is_in_the_catalogue() -> None:
    services = Path(alerts_module.__file__).parent
    emitted = {
        match.group(1)
        for path in services.glob("*.py")
        for match in re.finditer(r'on_event\(\s*"([a-z_]+)"', path.read_text(encoding="utf-8"))
    }
    assert {"token_acquired", "token_refreshed", "token_invalid", "token_deleted"} <= emitted
    assert emitted <= set(EVENTS)
