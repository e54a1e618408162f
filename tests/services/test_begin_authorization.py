"""An authorization started by a request and carried by the service (`Authorizer.begin`): the
whole stack (SQLite store in a home, httpx, file locks and flow owners) against the sandbox
authorization server, approved, denied and expired through its control API. The tests play the
browser with httpx.

The device flow is carried by the scheduler of the process that began it (`serve`); the
browser flow by its persisted state, which any process finishes with the address the browser
ended on. Re-authorizing never takes a working token down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from sandbox_support import DEFAULT_USER, Sandbox, ca_context
from tokenpost.clock import SystemClock
from tokenpost.errors import AuthorizationEndedError, TokenpostError, ValidationError
from tokenpost.i18n import translator
from tokenpost.oauth.pending import BrowserPending, DevicePending
from tokenpost.services.authorize import AddressRefusedError, BrowserPrompt, DevicePrompt
from tokenpost.services.daemon import Daemon
from tokenpost.services.status import SettingStatus, status
from tokenpost.settings.model import (
    AuthMethod,
    Flow,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
)
from tokenpost.tokens.state import Acquired, NotAcquired, WaitingForAuthorization
from tokenpost.tokens.state_id import StateId
from tokenpost.wiring import App, open_app

CALLBACK = "https://device.example.test:8025/oauth/callback"


class SteppingClock(SystemClock):
    """Real time plus an offset a test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return super().now() + self.offset


@dataclass
class Stack:
    app: App
    sandbox: Sandbox
    clock: SteppingClock

    async def state(self, setting: str = "smtp") -> object:
        return (await self.app.store.load_token(setting)).state

    async def row(self, setting: str = "smtp") -> SettingStatus:
        [row] = await status(
            self.app.store,
            now=self.clock.now(),
            owners=self.app.authorizer.owners,
            setting_id=setting,
        )
        return row

    def device_requests(self) -> int:
        return self.sandbox.control.stats().requests.get("device", 0)

    async def approve(self, prompt: object) -> None:
        assert isinstance(prompt, DevicePrompt)
        await asyncio.to_thread(self.sandbox.control.approve, prompt.user_code, user=DEFAULT_USER)

    async def until(self, done: Callable[[object], bool], timeout: float = 20) -> object:
        """Run the scheduler as `serve` does (tick, sleep what it says) until `done(state)`."""
        scheduler = self.app.scheduler()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            wait = await scheduler.tick()
            state = await self.state()
            if done(state):
                return state
            assert asyncio.get_running_loop().time() < deadline, state
            await asyncio.sleep(min(wait, 0.5))


def provider(sandbox: Sandbox, flow: Flow) -> Provider:
    return Provider(
        "sbx", Preset.GENERIC, sandbox.clients.public, flow=flow, issuer=sandbox.issuer,
        scope=("mail.send", "offline_access"), ca_file=str(sandbox.ca_file),
    )  # fmt: skip


SMTP = SmtpSetting(
    "smtp.example.test", 587, Security.STARTTLS, 30, "Scanner", "scanner@example.test",
    AuthMethod.OAUTH2, provider="sbx", account=DEFAULT_USER,
)  # fmt: skip


@asynccontextmanager
async def opened(home: Path, sandbox: Sandbox, clock: SteppingClock) -> AsyncIterator[Stack]:
    async with open_app(home, {}, clock=clock) as app:
        yield Stack(app, sandbox, clock)


@asynccontextmanager
async def stack_with(
    home: Path, sandbox: Sandbox, flow: Flow, *, pops: tuple[str, ...] = ()
) -> AsyncIterator[Stack]:
    sandbox.control.config(device_interval=1)
    async with opened(home, sandbox, SteppingClock()) as stack:
        await stack.app.settings.put_provider(provider(sandbox, flow))
        await stack.app.settings.put_smtp(SMTP)
        for name in pops:
            pop = PopSetting(
                name, "pop.example.test", 995, Security.TLS, 300, AuthMethod.OAUTH2,
                str(home / name), provider="sbx", account=DEFAULT_USER,
            )  # fmt: skip
            await stack.app.settings.put_pop(pop)
        yield stack


@pytest.fixture
async def device(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Stack]:
    async with stack_with(tmp_path / "home", sandbox, Flow.DEVICE) as stack:
        yield stack


@pytest.fixture
async def browser(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Stack]:
    async with stack_with(tmp_path / "home", sandbox, Flow.BROWSER, pops=("fax",)) as stack:
        yield stack


def acquired(state: object) -> bool:
    return isinstance(state, Acquired)


async def working(stack: Stack) -> Acquired:
    """Give the SMTP setting a working token through begin and the scheduler."""
    prompt = await stack.app.authorizer.begin("smtp")
    await stack.approve(prompt)
    state = await stack.until(acquired)
    assert isinstance(state, Acquired)
    return state


def sign_in(sandbox: Sandbox, authorization_url: str) -> str:
    """The provider's part of the browser: sign in, and the address it sends the browser to."""
    with httpx.Client(verify=ca_context(sandbox.ca_file), timeout=10) as client:
        answer = client.get(authorization_url)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


def with_query(address: str, **changes: str) -> str:
    parts = urlsplit(address)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def secrets_of(address: str, flow: object) -> list[str]:
    query = parse_qs(urlsplit(address).query)
    found = [query[name][0] for name in ("code", "state") if name in query]
    if isinstance(flow, WaitingForAuthorization) and isinstance(flow.flow, BrowserPending):
        found += [flow.flow.state.reveal(), flow.flow.verifier.reveal()]
    return found


def assert_hides(error: TokenpostError, secrets: list[str]) -> None:
    shown = [str(error), repr(error), error.translate(translator("de").gettext)]
    for secret in secrets:
        for text in shown:
            assert secret not in text


# -- the device flow -------------------------------------------------------------------------------


async def test_begin_returns_at_once_and_the_scheduler_completes_it(device: Stack) -> None:
    prompt = await device.app.authorizer.begin("smtp")
    assert isinstance(prompt, DevicePrompt)
    state = await device.state()
    assert isinstance(state, WaitingForAuthorization)
    assert state.owner_id is not None  # owned by this process: not judged orphaned
    assert (await device.row()).state is StateId.WAITING_FOR_AUTHORIZATION
    assert await device.app.authorizer.pending("smtp") == prompt

    # The scheduler's next tick comes no later than the flow's next poll.
    scheduler = device.app.scheduler()
    assert device.app.authorizer.flow_started.is_set()
    wait = await scheduler.tick()
    assert isinstance(state.flow, DevicePending)
    assert wait <= state.flow.next_poll_at - device.clock.now() + 0.05

    await device.approve(prompt)
    done = await device.until(acquired)
    assert isinstance(done, Acquired)
    assert await device.app.authorizer.pending("smtp") is None
    assert (await device.row()).state is StateId.ACQUIRED


async def test_a_second_begin_shows_the_pending_flow(device: Stack) -> None:
    first = await device.app.authorizer.begin("smtp")
    requests = device.device_requests()
    again = await device.app.authorizer.begin("smtp")
    assert again == first
    assert device.device_requests() == requests  # no second device code
    await device.approve(again)
    await device.until(acquired)


async def test_serve_wakes_for_a_flow_begun_in_its_process(device: Stack) -> None:
    """`serve`'s token loop sleeps until its next due time (here its 30 s maximum); a flow
    begun meanwhile is polled on time, not 30 s later."""
    app = device.app
    daemon = Daemon(app.status_cache, app.clock, app.scheduler(), app.receiver(), app.alerter)
    stop = asyncio.Event()
    running = asyncio.create_task(daemon.run(stop))
    try:
        await asyncio.sleep(0.3)  # the loop has ticked and sleeps (nothing is due)
        prompt = await app.authorizer.begin("smtp")
        await device.approve(prompt)
        async with asyncio.timeout(10):
            while not acquired(await device.state()):
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await running


async def test_re_authorizing_keeps_the_working_token_until_the_new_grant(device: Stack) -> None:
    before = await working(device)
    prompt = await device.app.authorizer.begin("smtp")
    row = await device.row()
    assert row.state is StateId.WAITING_FOR_AUTHORIZATION
    assert row.in_force
    assert (row.previous_state, row.previous_expires_at) == (StateId.ACQUIRED, before.expires_at)
    assert await device.app.refresher.access_token("smtp") == before.access_token
    await device.approve(prompt)
    after = await device.until(acquired)
    assert isinstance(after, Acquired)
    assert after.access_token != before.access_token


@pytest.mark.parametrize("action", ["deny", "expire"])
async def test_a_denied_or_expired_re_authorization_restores_the_token(
    device: Stack, action: str
) -> None:
    before = await working(device)
    prompt = await device.app.authorizer.begin("smtp")
    assert isinstance(prompt, DevicePrompt)
    await asyncio.to_thread(getattr(device.sandbox.control, action), prompt.user_code)
    restored = await device.until(lambda state: not isinstance(state, WaitingForAuthorization))
    assert restored == before
    assert await device.app.authorizer.pending("smtp") is None


async def test_a_flow_past_its_expiry_restores_the_token(device: Stack) -> None:
    before = await working(device)
    prompt = await device.app.authorizer.begin("smtp")
    device.clock.offset = prompt.expires_at - device.clock.now() + 1
    assert await device.app.authorizer.pending("smtp") is None
    assert await device.until(lambda state: state == before) == before


async def test_cancel_ends_the_flow_and_the_previous_token_stays(device: Stack) -> None:
    before = await working(device)
    await device.app.authorizer.begin("smtp")
    await device.app.authorizer.cancel("smtp")
    assert await device.state() == before
    assert await device.app.authorizer.pending("smtp") is None
    await device.app.authorizer.cancel("smtp")  # nothing pending: nothing happens
    assert await device.state() == before


async def test_cancel_without_a_previous_token_leaves_it_not_acquired(device: Stack) -> None:
    await device.app.authorizer.begin("smtp")
    await device.app.authorizer.cancel("smtp")
    state = await device.state()
    assert isinstance(state, NotAcquired)
    assert state.note is not None
    assert str(state.note) == "the authorization was cancelled"


# -- the browser flow ------------------------------------------------------------------------------


async def test_browser_begin_and_finish_with_the_address_the_browser_ended_on(
    browser: Stack,
) -> None:
    prompt = await browser.app.authorizer.begin("smtp")
    assert isinstance(prompt, BrowserPrompt)
    assert prompt.redirect_uri == "http://127.0.0.1"  # as registered: nothing listens for it
    assert prompt.can_paste
    assert await browser.app.authorizer.begin("smtp") == prompt
    assert await browser.app.authorizer.pending("smtp") == prompt
    address = sign_in(browser.sandbox, prompt.authorization_url)
    assert address.startswith(("http://127.0.0.1?", "http://127.0.0.1/?"))
    assert await browser.app.authorizer.setting_of_address(address) == "smtp"
    token = await browser.app.authorizer.finish_browser("smtp", address)
    assert await browser.state() == token
    assert (await browser.row()).state is StateId.ACQUIRED

    # The same address again: its flow is finished; nothing changes.
    with pytest.raises(AddressRefusedError) as replayed:
        await browser.app.authorizer.finish_browser("smtp", address)
    assert replayed.value.problem == "no_pending"
    assert await browser.state() == token
    assert_hides(replayed.value, secrets_of(address, None))


async def test_the_web_page_s_own_callback(browser: Stack) -> None:
    browser.sandbox.control.config(redirect_uris=["http://127.0.0.1", CALLBACK])
    prompt = await browser.app.authorizer.begin("smtp", redirect_uri=CALLBACK)
    assert isinstance(prompt, BrowserPrompt)
    assert prompt.redirect_uri == CALLBACK
    address = sign_in(browser.sandbox, prompt.authorization_url)
    assert address.startswith(CALLBACK + "?")
    assert await browser.app.authorizer.finish_browser("smtp", address) == await browser.state()


@pytest.mark.parametrize(
    "redirect_uri", ["ftp://device.example.test/cb", "https://device.example.test/cb?x#y", "/cb"]
)
async def test_a_callback_that_cannot_be_used_is_refused_before_anything(
    browser: Stack, redirect_uri: str
) -> None:
    with pytest.raises(ValidationError, match="redirect_uri: must be an http:// or https://"):
        await browser.app.authorizer.begin("smtp", redirect_uri=redirect_uri)
    assert isinstance(await browser.state(), NotAcquired)


async def test_a_wrong_state_is_refused_and_the_flow_goes_on(browser: Stack) -> None:
    prompt = await browser.app.authorizer.begin("smtp")
    assert isinstance(prompt, BrowserPrompt)
    address = sign_in(browser.sandbox, prompt.authorization_url)
    pending = await browser.state()
    for forged, problem in [
        (with_query(address, state="forged-state-value"), "state"),
        ("http://127.0.0.1:9/elsewhere?" + urlsplit(address).query, "not_redirect_address"),
        (with_query(address, iss="https://evil.example.test"), "iss"),
    ]:
        with pytest.raises(AddressRefusedError) as refused:
            await browser.app.authorizer.finish_browser("smtp", forged)
        assert refused.value.problem == problem
        assert_hides(refused.value, secrets_of(address, pending))
        assert await browser.state() == pending  # nothing stored, the flow goes on
    assert isinstance(await browser.app.authorizer.finish_browser("smtp", address), Acquired)


async def test_an_expired_browser_flow_restores_the_previous_token(browser: Stack) -> None:
    browser.sandbox.control.config(device_interval=1)
    first = await browser.app.authorizer.begin("smtp")
    assert isinstance(first, BrowserPrompt)
    before = await browser.app.authorizer.finish_browser(
        "smtp", sign_in(browser.sandbox, first.authorization_url)
    )
    prompt = await browser.app.authorizer.begin("smtp")
    assert isinstance(prompt, BrowserPrompt)
    assert (await browser.row()).in_force
    address = sign_in(browser.sandbox, prompt.authorization_url)
    pending = await browser.state()
    browser.clock.offset = prompt.expires_at - browser.clock.now() + 1
    with pytest.raises(AuthorizationEndedError) as ended:
        await browser.app.authorizer.finish_browser("smtp", address)
    assert ended.value.error == "expired_token"
    assert "start it again" in str(ended.value)
    assert_hides(ended.value, secrets_of(address, pending))
    assert await browser.state() == before


async def test_a_denial_at_the_provider_restores_the_previous_token(browser: Stack) -> None:
    first = await browser.app.authorizer.begin("smtp")
    assert isinstance(first, BrowserPrompt)
    before = await browser.app.authorizer.finish_browser(
        "smtp", sign_in(browser.sandbox, first.authorization_url)
    )
    browser.sandbox.control.config(browser_decision="deny")
    prompt = await browser.app.authorizer.begin("smtp")
    assert isinstance(prompt, BrowserPrompt)
    address = sign_in(browser.sandbox, prompt.authorization_url)
    pending = await browser.state()
    with pytest.raises(AuthorizationEndedError) as denied:
        await browser.app.authorizer.finish_browser("smtp", address)
    assert denied.value.error == "access_denied"
    assert_hides(denied.value, secrets_of(address, pending))
    assert await browser.state() == before


async def test_another_setting_s_address_is_named_and_changes_nothing(browser: Stack) -> None:
    smtp = await browser.app.authorizer.begin("smtp")
    fax = await browser.app.authorizer.begin("pop:fax")
    assert isinstance(smtp, BrowserPrompt)
    assert isinstance(fax, BrowserPrompt)
    fax_address = sign_in(browser.sandbox, fax.authorization_url)
    smtp_pending, fax_pending = await browser.state(), await browser.state("pop:fax")
    with pytest.raises(AddressRefusedError) as refused:
        await browser.app.authorizer.finish_browser("smtp", fax_address)
    assert refused.value.problem == "other_setting"
    assert "pop:fax" in str(refused.value)
    assert_hides(refused.value, secrets_of(fax_address, fax_pending))
    assert await browser.state() == smtp_pending
    assert await browser.state("pop:fax") == fax_pending
    assert await browser.app.authorizer.setting_of_address(fax_address) == "pop:fax"
    assert isinstance(await browser.app.authorizer.finish_browser("pop:fax", fax_address), Acquired)
    assert await browser.state() == smtp_pending


async def test_cancel_a_browser_flow(browser: Stack) -> None:
    prompt = await browser.app.authorizer.begin("smtp")
    assert isinstance(prompt, BrowserPrompt)
    address = sign_in(browser.sandbox, prompt.authorization_url)
    await browser.app.authorizer.cancel("smtp")
    assert isinstance(await browser.state(), NotAcquired)
    with pytest.raises(AddressRefusedError) as refused:
        await browser.app.authorizer.finish_browser("smtp", address)
    assert refused.value.problem == "no_pending"


# -- another process -------------------------------------------------------------------------------


async def test_a_new_process_finishes_a_persisted_browser_flow(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    home = tmp_path / "home"
    async with stack_with(home, sandbox, Flow.BROWSER) as first:
        prompt = await first.app.authorizer.begin("smtp")
        assert isinstance(prompt, BrowserPrompt)
    # The process that began it is gone (its flow owners closed): the flow has no owner to lose.
    address = sign_in(sandbox, prompt.authorization_url)
    async with opened(home, sandbox, SteppingClock()) as second:
        assert await second.app.authorizer.pending("smtp") == prompt
        token = await second.app.authorizer.finish_browser("smtp", address)
        assert await second.state() == token


async def test_another_serve_polls_a_device_flow_whose_owner_is_alive(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    home = tmp_path / "home"
    async with stack_with(home, sandbox, Flow.DEVICE) as owner:
        prompt = await owner.app.authorizer.begin("smtp")
        async with opened(home, sandbox, SteppingClock()) as other:
            assert await other.app.authorizer.pending("smtp") == prompt  # not orphaned
            await other.approve(prompt)
            assert isinstance(await other.until(acquired), Acquired)


async def test_a_device_flow_whose_owner_is_gone_ends_as_orphaned(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    home = tmp_path / "home"
    async with stack_with(home, sandbox, Flow.DEVICE) as owner:
        before = await working(owner)
        prompt = await owner.app.authorizer.begin("smtp")
    async with opened(home, sandbox, SteppingClock()) as other:
        assert await other.app.authorizer.pending("smtp") is None
        assert (await other.row()).state is StateId.ACQUIRED
        await other.approve(prompt)  # too late: nobody polls an abandoned flow any more
        assert await other.until(lambda state: not isinstance(state, WaitingForAuthorization)) == (
            before
        )
        await asyncio.sleep(1.5)
        await other.app.scheduler().tick()
        assert await other.state() == before
