"""The receive service with a fake POP3 server (our port) and a real Maildir on disk."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from service_world import TOKEN_URL, World, provider

from fakes import FakeClock, json_response
from kill_points import KillPoints
from pop3_fakes import FakeConnector, FakeMaildrop, Pop3Crash
from tokenpost.adapters.maildir import MaildirDrop, ledger_name, open_maildir
from tokenpost.errors import NotFoundError, OperationError
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.ports import CommandResult
from tokenpost.secret import Secret
from tokenpost.services.receive import Receiver, pop_oauth_mechanism
from tokenpost.services.targets import load_target
from tokenpost.settings.model import AuthMethod, PopSetting, Security
from tokenpost.text import Text
from tokenpost.tokens.state import Acquired

ACCOUNT = "fax@example.test"


def mail(n: int, size: int = 300) -> bytes:
    head = f"From: sender@example.test\r\nMessage-ID: <m{n}@example.test>\r\n\r\n"
    return head.encode() + (f"line {n}\r\n" * (size // 8)).encode()


@dataclass
class RecordingRunner:
    """A fake of `ports.CommandRunner` that records each call and answers `returncode`. With
    `kills`, a kill may strike as the command starts or once it has had its effect (the call is
    recorded: the fax is printed) but before tokenpost hears of its end."""

    returncode: int | None = 0
    fails_to_start: bool = False
    output: str = "printer on fire\n"
    calls: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)
    kills: KillPoints | None = None

    async def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        if self.fails_to_start:
            self.calls.append((list(argv), dict(env or {})))
            raise OperationError("cannot run 'print-fax': No such file or directory")
        if self.kills is not None:
            self.kills.point("command starts")
        self.calls.append((list(argv), dict(env or {})))
        if self.kills is not None:
            self.kills.point("command ends")
        return CommandResult(self.returncode, self.output)


class ReceiveWorld:
    def __init__(self, world: World, folder: Path) -> None:
        self.world = world
        self.folder = folder
        self.server = FakeMaildrop(tokens={"at-1"})
        self.connector = FakeConnector(self.server)
        self.runner = RecordingRunner()
        self.events: list[tuple[str, str, str]] = []
        self.receiver = Receiver(
            world.store,
            self.connector,
            open_maildir,
            self.runner,
            world.refresher,
            world.clock,
            on_event=lambda *event: self.events.append(event),
        )

    def setting(self, **overrides: object) -> PopSetting:
        base: dict[str, object] = {
            "name": "fax",
            "server": "pop.example.test",
            "port": 995,
            "security": Security.TLS,
            "check_interval": 300,
            "auth": AuthMethod.OAUTH2,
            "deliver_to": str(self.folder),
            "provider": "as",
            "account": ACCOUNT,
        }
        base.update(overrides)
        return PopSetting(**base)  # type: ignore[arg-type]

    async def put(self, **overrides: object) -> PopSetting:
        setting = self.setting(**overrides)
        await self.world.store.put_pop(setting)
        return setting

    async def token(self, value: str = "at-1", *, age: float = 0.0, name: str = "fax") -> None:
        target = await load_target(self.world.store, "pop:" + name)
        now = self.world.clock.now()
        state = Acquired(Secret(value), now + 3600, now - age, Secret("rt-1"))
        record = await self.world.store.load_token("pop:" + name)
        await self.world.store.save_token(
            "pop:" + name, state, binding=target.binding, expected_version=record.version
        )

    def delivered(self) -> list[bytes]:
        """Every message in the folder, new/ and cur/."""
        paths = sorted((self.folder / "new").iterdir()) + sorted((self.folder / "cur").iterdir())
        return [p.read_bytes() for p in paths]


@pytest.fixture
async def rw(world: World, tmp_path: Path) -> ReceiveWorld:
    r = ReceiveWorld(world, tmp_path / "inbox")
    await r.put()
    await r.token()
    return r


async def test_new_messages_are_delivered_and_deleted(rw: ReceiveWorld) -> None:
    for n in range(1, 4):
        rw.server.add(f"uid-{n}", mail(n))
    report = await rw.receiver.receive()
    [one] = report.settings
    assert report.ok
    assert (one.setting_id, one.fetched, one.deleted, one.skipped) == ("pop:fax", 3, 3, 0)
    assert sorted(rw.delivered()) == sorted(mail(n) for n in range(1, 4))
    assert rw.server.messages == {}
    assert rw.connector.sessions[0].quitted
    again = (await rw.receiver.receive("fax")).settings[0]
    assert (again.fetched, again.deleted) == (0, 0)
    assert len(rw.delivered()) == 3


async def test_leave_on_server_never_fetches_a_uidl_twice(rw: ReceiveWorld) -> None:
    await rw.put(leave_on_server=True)
    rw.server.add("uid-1", mail(1))
    rw.server.add("uid-2", mail(2))
    first = (await rw.receiver.receive()).settings[0]
    rw.server.add("uid-3", mail(3))
    second = (await rw.receiver.receive()).settings[0]
    assert (first.fetched, first.deleted) == (2, 0)
    assert (second.fetched, second.skipped, second.deleted) == (1, 2, 0)
    assert rw.server.retrieved == ["uid-1", "uid-2", "uid-3"]
    assert len(rw.server.messages) == 3
    for path in (rw.folder / "new").iterdir():
        path.unlink()  # the user cleans up: the ledger still remembers
    third = (await rw.receiver.receive()).settings[0]
    assert (third.fetched, third.skipped) == (0, 3)


async def test_a_failed_quit_deletes_nothing_and_the_next_run_heals(rw: ReceiveWorld) -> None:
    rw.server.add("uid-1", mail(1))
    rw.server.add("uid-2", mail(2))
    rw.server.quit_fails = True
    failed = (await rw.receiver.receive()).settings[0]
    assert (failed.fetched, failed.deleted) == (2, 0)
    assert failed.error is not None
    assert len(rw.server.messages) == 2
    rw.server.quit_fails = False
    healed = (await rw.receiver.receive()).settings[0]
    assert (healed.fetched, healed.skipped, healed.deleted) == (0, 2, 2)
    assert rw.server.messages == {}
    assert rw.server.retrieved == ["uid-1", "uid-2"]
    assert len(rw.delivered()) == 2


async def test_a_drop_mid_retr_keeps_earlier_messages_only(rw: ReceiveWorld) -> None:
    for n in range(1, 4):
        rw.server.add(f"uid-{n}", mail(n, size=5000))
    rw.server.broken_retr = {"uid-2"}
    report = (await rw.receiver.receive()).settings[0]
    assert report.fetched == 1
    assert report.error is not None
    assert "closed the connection" in str(report.error)
    assert rw.delivered() == [mail(1, size=5000)]
    assert os.listdir(rw.folder / "tmp") == []
    assert len(rw.server.messages) == 3  # no QUIT: nothing deleted
    assert [(e, s, str(d)) for e, s, d in rw.events] == [
        ("receive_failed", "pop:fax", str(report.error))
    ]
    rw.server.broken_retr = set()
    healed = (await rw.receiver.receive()).settings[0]
    assert (healed.fetched, healed.skipped, healed.deleted) == (2, 1, 3)
    assert sorted(rw.delivered()) == sorted(mail(n, size=5000) for n in range(1, 4))
    assert rw.events[-1] == ("receive_recovered", "pop:fax", "")


@pytest.mark.parametrize(
    ("capabilities", "mechanism"),
    [
        ({"UIDL", "SASL XOAUTH2"}, "XOAUTH2"),
        ({"UIDL", "SASL XOAUTH2", "SASL OAUTHBEARER"}, "XOAUTH2"),
        ({"UIDL", "SASL OAUTHBEARER"}, "OAUTHBEARER"),
        ({"UIDL", "SASL PLAIN OAUTHBEARER"}, "OAUTHBEARER"),
        ({"UIDL"}, "XOAUTH2"),
    ],
)
async def test_oauth_mechanism_choice(
    rw: ReceiveWorld, capabilities: set[str], mechanism: str
) -> None:
    assert pop_oauth_mechanism(capabilities) == mechanism
    rw.server.capabilities = frozenset(capabilities)
    rw.server.add("uid-1", mail(1))
    assert (await rw.receiver.receive()).ok
    assert rw.server.attempts == [(mechanism, ACCOUNT, "at-1")]


async def test_a_refused_stale_token_is_refreshed_once(rw: ReceiveWorld) -> None:
    await rw.token("at-old", age=600)
    rw.server.tokens = {"at-new"}

    def grant(request: HttpRequest) -> HttpResponse:
        return json_response(200, {"access_token": "at-new", "expires_in": 3600})

    rw.world.http.routes[TOKEN_URL] = grant
    rw.server.add("uid-1", mail(1))
    assert (await rw.receiver.receive()).ok
    assert [a[2] for a in rw.server.attempts] == ["at-old", "at-new"]
    assert rw.world.http.count(TOKEN_URL) == 1


async def test_a_refused_fresh_token_fails_without_refreshing(
    rw: ReceiveWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rw.server.tokens = set()
    rw.server.add("uid-1", mail(1))
    report = (await rw.receiver.receive()).settings[0]
    assert report.error is not None
    assert "Authentication failed" in str(report.error)
    assert rw.world.http.requests == []
    assert len(rw.server.messages) == 1
    assert rw.connector.sessions[0].closed
    assert "at-1" not in caplog.text
    assert "at-1" not in repr(report)


@pytest.mark.parametrize(
    ("capabilities", "verb"),
    [
        ({"UIDL", "USER", "SASL PLAIN"}, "USER"),
        ({"UIDL", "SASL PLAIN"}, "PLAIN"),
        (set(), "USER"),
    ],
)
async def test_password_logins(rw: ReceiveWorld, capabilities: set[str], verb: str) -> None:
    await rw.put(auth=AuthMethod.PASSWORD, provider=None, password=Secret("hunter2"))
    rw.server.capabilities = frozenset(capabilities)
    rw.server.passwords = {ACCOUNT: "hunter2"}
    rw.server.add("uid-1", mail(1))
    report = await rw.receiver.receive()
    assert report.ok, report
    assert rw.server.attempts == [(verb, ACCOUNT, "hunter2")]


async def test_apop_needs_the_greeting_timestamp(rw: ReceiveWorld) -> None:
    await rw.put(auth=AuthMethod.APOP, provider=None, password=Secret("tanstaaf"))
    rw.server.passwords = {ACCOUNT: "tanstaaf"}
    rw.server.add("uid-1", mail(1))
    refused = (await rw.receiver.receive()).settings[0]
    assert refused.error is not None
    assert "APOP" in str(refused.error)
    assert "tanstaaf" not in str(refused.error)
    rw.server.apop_timestamp = "<1896.697170952@dbc.mtview.ca.us>"
    assert (await rw.receiver.receive()).ok
    assert rw.server.attempts == [("APOP", ACCOUNT, "tanstaaf")]


@pytest.mark.parametrize("capabilities", [{"USER", "SASL XOAUTH2"}, set()])
async def test_a_server_without_uidl_is_a_clear_error(
    rw: ReceiveWorld, capabilities: set[str]
) -> None:
    rw.server.capabilities = frozenset(capabilities)
    rw.server.uidl_supported = False
    rw.server.add("uid-1", mail(1))
    report = (await rw.receiver.receive()).settings[0]
    assert report.error is not None
    assert "does not support UIDL" in str(report.error)
    assert rw.server.retrieved == []
    assert len(rw.server.messages) == 1


async def test_plaintext_is_refused_before_connecting(rw: ReceiveWorld) -> None:
    await rw.put(security=Security.NONE)
    report = (await rw.receiver.receive()).settings[0]
    assert report.error is not None
    assert "unencrypted" in str(report.error)
    assert rw.server.connections == 0
    await rw.put(security=Security.NONE, server="127.0.0.1")
    await rw.token()  # a token belongs to its server
    assert not (await rw.receiver.receive()).ok
    assert (await rw.receiver.receive(allow_plaintext=True)).ok
    assert rw.server.connections == 1


async def test_the_command_runs_once_per_message_and_its_failure_is_reported(
    rw: ReceiveWorld,
) -> None:
    await rw.put(command="print-fax --tray 'A 4'")
    rw.server.add("uid-1", mail(1))
    rw.server.add("uid-2", mail(2))
    rw.runner.returncode = 1
    report = (await rw.receiver.receive()).settings[0]
    assert (report.fetched, report.deleted, report.commands_failed) == (2, 2, 2)
    assert not report.ok
    assert report.error is None
    assert rw.events == []  # receiving worked: no receive_failed
    paths = sorted(str(p) for p in (rw.folder / "new").iterdir())
    assert sorted(argv[-1] for argv, _ in rw.runner.calls) == paths
    for argv, env in rw.runner.calls:
        assert argv[:3] == ["print-fax", "--tray", "A 4"]
        assert env["TOKENPOST_SETTING"] == "pop:fax"
        assert env["TOKENPOST_MESSAGE"] == argv[-1]
    rw.runner.returncode = 0
    await rw.receiver.receive()
    assert len(rw.runner.calls) == 2


async def test_a_command_that_cannot_start_leaves_the_message_delivered(rw: ReceiveWorld) -> None:
    await rw.put(command="print-fax")
    rw.runner.fails_to_start = True
    rw.server.add("uid-1", mail(1))
    report = (await rw.receiver.receive()).settings[0]
    assert (report.fetched, report.deleted, report.commands_failed) == (1, 1, 1)
    assert rw.delivered() == [mail(1)]


async def test_a_message_stored_but_not_recorded_is_finished_and_not_fetched_again(
    rw: ReceiveWorld,
) -> None:
    await rw.put(command="print-fax")
    rw.server.add("uid-1", mail(1))
    drop = MaildirDrop.open(rw.folder, "pop:fax")
    delivery = await drop.begin("uid-1")
    delivery.write(mail(1))
    await delivery.commit()  # and killed before the drop's sync: no ledger line
    assert not (rw.folder / ledger_name("pop:fax")).exists()
    report = (await rw.receiver.receive()).settings[0]
    assert (report.recovered, report.fetched, report.skipped, report.deleted) == (1, 0, 1, 1)
    assert rw.server.retrieved == []
    assert len(rw.runner.calls) == 1
    assert rw.delivered() == [mail(1)]


async def test_an_unusable_folder_fails_before_connecting(rw: ReceiveWorld) -> None:
    rw.folder.parent.mkdir(parents=True, exist_ok=True)
    rw.folder.write_text("a file, not a folder")
    rw.server.add("uid-1", mail(1))
    report = (await rw.receiver.receive()).settings[0]
    assert report.error is not None
    assert "delivery folder" in str(report.error)
    assert rw.server.connections == 0
    assert len(rw.server.messages) == 1


async def test_a_setting_without_a_usable_token_makes_no_connection(rw: ReceiveWorld) -> None:
    await rw.put(name="scan", deliver_to=str(rw.folder.parent / "scan"))  # never got a token
    rw.server.add("uid-1", mail(1))
    report = (await rw.receiver.receive("scan")).settings[0]
    assert report.error is not None
    assert "token get" in str(report.error)  # says what to do
    assert rw.server.connections == 0
    assert len(rw.server.messages) == 1


async def test_once_stopping_no_other_setting_starts(rw: ReceiveWorld) -> None:
    for name in ("scan", "print"):
        await rw.put(name=name, deliver_to=str(rw.folder.parent / name))
        await rw.token(name=name)
    stop = asyncio.Event()
    connect = rw.connector.connect

    async def stopping(setting: PopSetting, **options: Any) -> Any:
        stop.set()  # SIGTERM arrives while the first setting runs
        return await connect(setting, **options)

    rw.connector.connect = stopping  # type: ignore[method-assign]
    rw.receiver.concurrency = 1  # the others wait for a slot
    await rw.receiver.run_due(stop=stop)
    assert rw.server.connections == 1  # the run in flight finished; none waiting started


async def test_the_summary_and_the_reason_in_german(rw: ReceiveWorld) -> None:
    from tokenpost.cli.receive_cmd import summary_line
    from tokenpost.i18n import translator

    rw.folder.parent.mkdir(parents=True, exist_ok=True)
    rw.folder.write_text("a file, not a folder")
    report = (await rw.receiver.receive()).settings[0]
    report.commands_run = 1

    line = summary_line(report, translator("de"))

    assert line.startswith("pop:fax: 0 abgeholt, 0 gelöscht, 1 Befehl ausgeführt\n")
    assert f"Empfang fehlgeschlagen: Der Zustellordner {rw.folder} ist nicht verwendbar" in line
    assert "'tokenpost pop add fax --deliver-to ORDNER'" in line
    assert "cannot use the delivery folder" in summary_line(report, translator("en"))


async def test_messages_sharing_a_uidl_stay_on_the_server(rw: ReceiveWorld) -> None:
    rw.server.add("uid-1", mail(1))
    rw.server.add("dup", mail(2))
    session_numbers = {1: "uid-1", 2: "dup", 3: "dup"}

    async def broken_uidl() -> dict[int, str]:
        return session_numbers

    original = rw.connector.connect

    async def connect(setting: PopSetting, **kwargs: object) -> object:
        session = await original(setting)
        session.uidl = broken_uidl  # type: ignore[method-assign]
        return session

    rw.connector.connect = connect  # type: ignore[method-assign]
    report = (await rw.receiver.receive()).settings[0]
    assert (report.fetched, report.failed, report.deleted) == (1, 2, 1)
    assert report.error is not None
    assert rw.server.retrieved == ["uid-1"]
    assert list(rw.server.messages) == ["dup"]


async def test_two_concurrent_runs_deliver_each_message_once(rw: ReceiveWorld) -> None:
    for n in range(1, 6):
        rw.server.add(f"uid-{n}", mail(n))
    reports = await asyncio.gather(rw.receiver.receive(), rw.receiver.receive())
    assert sum(r.settings[0].fetched for r in reports) == 5
    assert sorted(rw.delivered()) == sorted(mail(n) for n in range(1, 6))
    assert rw.server.messages == {}


async def test_names_and_unknown_settings(rw: ReceiveWorld) -> None:
    await rw.world.store.put_pop(
        rw.setting(name="print", deliver_to=str(rw.folder.parent / "print"))
    )
    await rw.token(name="print")
    assert [r.setting_id for r in (await rw.receiver.receive()).settings] == [
        "pop:fax",
        "pop:print",
    ]
    assert [r.setting_id for r in (await rw.receiver.receive("pop:print")).settings] == [
        "pop:print"
    ]
    with pytest.raises(NotFoundError):
        await rw.receiver.receive("nope")


async def test_schedule_follows_the_check_interval(rw: ReceiveWorld) -> None:
    clock = rw.world.clock
    setting = rw.setting()
    assert rw.receiver.due_at(setting) == clock.now()
    start = clock.now()
    assert await rw.receiver.run_due() == start + 300
    assert rw.server.connections == 1
    await clock.sleep(100)
    assert await rw.receiver.run_due() == start + 300
    assert rw.server.connections == 1
    await clock.sleep(200)
    assert await rw.receiver.run_due() == start + 600
    assert rw.server.connections == 2


async def test_no_pop_settings_nothing_due(world: World) -> None:
    receiver = ReceiveWorld(world, Path("/nonexistent")).receiver
    assert await receiver.run_due() is None
    assert (await receiver.receive()).settings == ()


def test_reports_count_a_command_failure_as_not_ok() -> None:
    from tokenpost.services.receive import ReceiveReport, SettingReport

    assert ReceiveReport((SettingReport("pop:a"),)).ok
    assert not ReceiveReport((SettingReport("pop:a", commands_failed=1),)).ok
    assert not ReceiveReport((replace(SettingReport("pop:a"), error=Text("x")),)).ok


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 6),
    crashes=st.lists(st.integers(0, 40), max_size=6),
    leave_on_server=st.booleans(),
)
def test_runs_killed_at_any_session_point_lose_nothing_and_double_nothing(
    count: int, crashes: list[int], leave_on_server: bool
) -> None:
    asyncio.run(_killed_runs(count, crashes, leave_on_server))


async def _killed_runs(count: int, crashes: list[int], leave_on_server: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World()
        await world.store.put_provider(provider())
        rw = ReceiveWorld(world, Path(tmp) / "inbox")
        await rw.put(leave_on_server=leave_on_server)
        await rw.token()
        originals = {f"uid-{n}": mail(n, size=3000) for n in range(1, count + 1)}
        for uidl, data in originals.items():
            rw.server.add(uidl, data)
        for crash_at in crashes:
            points = itertools.count()

            def crash(point: str, crash_at: int = crash_at, points: itertools.count[int] = points):
                if next(points) == crash_at:
                    raise Pop3Crash(point)

            rw.server.crash_hook = crash
            with contextlib.suppress(Pop3Crash):
                await rw.receiver.receive()
        rw.server.crash_hook = lambda point: None
        assert (await rw.receiver.receive()).ok
        assert sorted(rw.delivered()) == sorted(originals.values())
        assert rw.server.messages == ({} if not leave_on_server else originals)
        refetched = len(rw.server.retrieved)
        assert (await rw.receiver.receive()).ok
        assert len(rw.server.retrieved) == refetched


async def test_a_server_that_never_answers_holds_up_only_its_own_settings(
    rw: ReceiveWorld,
) -> None:
    # Three settings on a dead server, three on a live one, one slot per server: the live
    # server's settings all run while the dead one's first connection hangs.
    rw.receiver.per_server = 1
    for n in range(3):
        for server in ("dead.example.test", "pop.example.test"):
            name = f"{server[:4]}{n}"
            await rw.put(name=name, server=server, deliver_to=str(rw.folder.parent / name))
            await rw.token(name=name)
    connect = rw.connector.connect
    hanging: list[str] = []

    async def answering(setting: PopSetting, **options: Any) -> Any:
        if setting.server.startswith("dead"):
            hanging.append(setting.name)
            await asyncio.Event().wait()  # no answer, ever
        return await connect(setting, **options)

    rw.connector.connect = answering  # type: ignore[method-assign]
    settings = await rw.world.store.list_pop()
    live = len([s for s in settings if s.server == "pop.example.test"])
    assert live >= 3
    task = asyncio.create_task(rw.receiver.run_due(settings))
    for _ in range(500):  # the maildir's lock is taken in a thread: real time passes
        await asyncio.sleep(0.01)
        if rw.server.connections == live:
            break
    assert rw.server.connections == live  # every setting of the live server ran
    assert hanging == ["dead0"]  # the dead server holds its one slot, not the others'
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_setting_never_run_is_due_while_the_clock_moves(rw: ReceiveWorld) -> None:
    # A real clock moves between reads: a setting never run is due at the first pass anyway.
    class MovingClock(FakeClock):
        def now(self) -> float:
            self.t += 0.001
            return self.t

    rw.receiver.clock = MovingClock(rw.world.clock.now())
    await rw.receiver.run_due()
    assert rw.server.connections == 1
