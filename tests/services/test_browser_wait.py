"""The browser flow's wait: the listener's redirect, a pasted address, hints when nothing comes
back, and the Authorizer using the registered redirect URI. Fakes of our own ports only (a
listener, a line source) and a fake clock, on which a whole wait runs at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from service_world import AUTHZ_URL, TOKEN_URL, World, provider

from fakes import FakeClock, json_response
from tokenpost.clock import Clock, SystemClock
from tokenpost.errors import (
    AuthorizationEndedError,
    RemoteProtocolError,
    TokenpostError,
    UsageError,
)
from tokenpost.i18n import show
from tokenpost.oauth import authcode
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.oauth.pending import BrowserPending
from tokenpost.oauth.redirect_uri import LoopbackRedirect
from tokenpost.secret import Secret
from tokenpost.services.authorize import Authorizer, BrowserPrompt, Prompt
from tokenpost.services.browser_wait import (
    HINT_AFTER_S,
    HINT_BEFORE_EXPIRY_S,
    BrowserHooks,
    RedirectHint,
    RedirectWait,
    redirect_hint_text,
)
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.settings.model import Flow, Preset
from tokenpost.tokens.state import Acquired, NotAcquired

SENT = "http://localhost:53682"
CODE = "code-Zq9-secret"


@dataclass
class FakeListener:
    """ports.RedirectListener: a test delivers the redirect with `arrive`."""

    redirect_uri: str = SENT
    requests: int = 0
    closed: bool = False
    redirect: asyncio.Future[str] = field(default_factory=asyncio.Future)

    def arrive(self, query: str) -> None:
        self.requests += 1
        self.redirect.set_result(query)

    async def wait_for_redirect(self) -> str:
        return await asyncio.shield(self.redirect)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Lines:
    """ports.LineSource fed by the test; None ends the input."""

    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    reads: int = 0

    async def next_line(self) -> str | None:
        self.reads += 1
        return await self.queue.get()


@dataclass
class Seen:
    hints: list[tuple[float, RedirectHint]] = field(default_factory=list)
    refused: list[TokenpostError] = field(default_factory=list)


def flow(clock: Clock, redirect_uri: str = SENT) -> BrowserPending:
    return authcode.start_browser_flow(
        authorization_endpoint=AUTHZ_URL,
        client_id="client-1",
        redirect_uri=redirect_uri,
        scope=("mail",),
        now=clock.now(),
        issuer="https://as.example",
    )


def redirect_query(pending: BrowserPending, **extra: str) -> str:
    return urlencode({"code": CODE, "state": pending.state.reveal(), **extra})


def waiting(
    listener: FakeListener, lines: Lines | None = None
) -> tuple[RedirectWait, Seen, FakeClock]:
    clock = FakeClock()
    seen = Seen()
    hooks = BrowserHooks(
        pasted=lines,
        on_hint=lambda hint: seen.hints.append((clock.now(), hint)),
        on_refused=seen.refused.append,
    )
    wait = RedirectWait.start(
        flow(clock, listener.redirect_uri),
        listener,
        clock,
        hooks,
        preset=Preset.MICROSOFT,
        registered="http://localhost",
    )
    return wait, seen, clock


async def test_the_listeners_redirect_gives_the_code() -> None:
    listener = FakeListener()
    wait, seen, _ = waiting(listener)
    listener.arrive(redirect_query(wait.pending))

    assert await wait.code() == Secret(CODE)
    assert seen.hints == []


async def test_hints_come_after_a_minute_and_before_expiry_when_nothing_arrives() -> None:
    listener = FakeListener()
    wait, seen, clock = waiting(listener)
    start = clock.now()

    with pytest.raises(AuthorizationEndedError, match="expired") as ended:
        await wait.code()

    assert ended.value.error == "expired_token"
    expires = wait.pending.expires_at
    assert [when for when, _ in seen.hints] == [
        start + HINT_AFTER_S,
        expires - HINT_BEFORE_EXPIRY_S,
    ]
    hint = seen.hints[0][1]
    assert (hint.registered, hint.redirect_uri, hint.expires_at) == (
        "http://localhost",
        SENT,
        expires,
    )
    assert "Mobile and desktop applications" in str(hint.text)
    assert clock.now() == expires


async def test_no_hint_once_a_request_reached_the_listener() -> None:
    listener = FakeListener(requests=1)  # e.g. a wrong path, answered 404
    wait, seen, _ = waiting(listener)

    with pytest.raises(AuthorizationEndedError, match="expired"):
        await wait.code()

    assert seen.hints == []


async def test_a_short_hint_delay_for_tests() -> None:
    listener = FakeListener()
    wait, seen, clock = waiting(listener)
    wait.hint_after = 1.0
    start = clock.now()

    with pytest.raises(AuthorizationEndedError):
        await wait.code()

    assert seen.hints[0][0] == start + 1.0


async def test_a_pasted_address_gives_the_code() -> None:
    listener = FakeListener()
    lines = Lines()
    wait, seen, _ = waiting(listener, lines)
    lines.queue.put_nowait(f"{SENT}/?{redirect_query(wait.pending)}")

    assert await wait.code() == Secret(CODE)
    assert seen.refused == []


async def test_a_wrong_paste_is_reported_and_waiting_goes_on() -> None:
    listener = FakeListener()
    lines = Lines()
    wait, seen, _ = waiting(listener, lines)
    state = wait.pending.state.reveal()
    for line in (
        "",  # an Enter alone is not reported
        f"{SENT}/?code={CODE}&state=tampered",
        f"http://localhost:1/?code={CODE}&state={state}",
        "something else",
    ):
        lines.queue.put_nowait(line)
    lines.queue.put_nowait(f"{SENT}?{redirect_query(wait.pending)}")

    assert await wait.code() == Secret(CODE)
    assert [type(e) for e in seen.refused] == [
        authcode.RedirectRefusedError,
        authcode.NotRedirectAddressError,
        authcode.NotRedirectAddressError,
    ]
    problems = [getattr(e, "problem", None) for e in seen.refused]
    assert problems == ["state", "not_redirect_address", "not_redirect_address"]
    assert isinstance(seen.refused[0], RemoteProtocolError)
    assert all(isinstance(e, UsageError) for e in seen.refused[1:])
    assert "state mismatch" in str(seen.refused[0])
    for refusal in seen.refused:
        assert CODE not in str(refusal)
        assert state not in str(refusal)


async def test_a_pasted_denial_ends_the_wait() -> None:
    listener = FakeListener()
    lines = Lines()
    wait, _, _ = waiting(listener, lines)
    denied = urlencode({"error": "access_denied", "state": wait.pending.state.reveal()})
    lines.queue.put_nowait(f"{SENT}/?{denied}")

    with pytest.raises(AuthorizationEndedError, match="denied"):
        await wait.code()


async def test_the_end_of_input_stops_reading_but_not_waiting() -> None:
    listener = FakeListener()
    lines = Lines()
    wait, _, _ = waiting(listener, lines)
    lines.queue.put_nowait(None)
    task = asyncio.create_task(wait.code())
    for _ in range(5):
        await asyncio.sleep(0)
    listener.arrive(redirect_query(wait.pending))

    assert await task == Secret(CODE)
    assert lines.reads == 1


async def test_cancelling_the_wait_leaves_no_task_behind() -> None:
    clock = SystemClock()
    listener = FakeListener()
    hooks = BrowserHooks(pasted=Lines())
    wait = RedirectWait.start(
        flow(clock), listener, clock, hooks, preset=Preset.GENERIC, registered="http://localhost"
    )
    before = asyncio.all_tasks()
    task = asyncio.create_task(wait.code())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert asyncio.all_tasks() == before


# --- the hint's words -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "words"),
    [
        (Preset.MICROSOFT, 'the platform "Mobile and desktop applications" with the redirect URI'),
        (Preset.GOOGLE, 'an OAuth client of the type "Desktop app" needs no registered redirect'),
        (Preset.GENERIC, "callback URL or reply URL"),
    ],
)
def test_the_hint_names_the_uri_and_where_each_portal_takes_it(preset: Preset, words: str) -> None:
    text = str(redirect_hint_text(preset, "http://localhost", SENT, can_paste=False))

    assert text.startswith("No answer from the browser yet.")
    assert "here http://localhost exactly" in text
    assert words in text
    assert "error page at the provider about the redirect URI means that it is not registered" in (
        text
    )
    assert "paste" not in text


def test_the_hint_mentions_pasting_where_possible_in_german() -> None:
    text = redirect_hint_text(Preset.MICROSOFT, "http://localhost", SENT, can_paste=True)

    assert "(it starts with http://localhost:53682)" in str(text)
    assert show(text, "de") == (
        "Noch keine Antwort vom Browser. Der Anbieter schickt den Browser nur zu einer für den"
        " Client registrierten Weiterleitungs-URI zurück, hier genau http://localhost. Bei"
        " Microsoft: Fügen Sie im Microsoft Entra Admin Center unter App-Registrierungen, der"
        " App, Authentifizierung die Plattform „Mobile Anwendungen und Desktopanwendungen“"
        " (Mobile and desktop applications) mit der Umleitungs-URI http://localhost hinzu. Eine"
        " Fehlerseite des Anbieters zur Weiterleitungs-URI bedeutet, dass sie nicht registriert"
        " ist. Läuft der Browser auf einem anderen Gerät, kopieren Sie die Adresse, auf der er"
        " gelandet ist (sie beginnt mit http://localhost:53682), aus seiner Adressleiste und"
        " fügen Sie sie hier ein."
    )


# --- the Authorizer: the registered redirect URI, sent exactly ---------------------------------


@dataclass
class Listeners:
    """ports.RedirectListenerFactory: records what it was asked to listen for; the listener it
    makes answers at once with the redirect the (fake) provider would send."""

    asked: list[LoopbackRedirect] = field(default_factory=list)
    made: list[FakeListener] = field(default_factory=list)

    async def __call__(self, redirect: LoopbackRedirect) -> FakeListener:
        self.asked.append(redirect)
        listener = FakeListener(redirect.with_port(redirect.port or 53682))
        self.made.append(listener)
        return listener


TOKEN = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}


async def browser_world(world: World, **provider_fields: object) -> Listeners:
    await world.store.put_provider(provider(flow=Flow.BROWSER, **provider_fields))
    listeners = Listeners()
    world.authorizer = Authorizer(
        world.store,
        world.http,
        world.lock,
        world.clock,
        EndpointResolver(world.http),
        listeners,
        owners=world.owners,
    )
    return listeners


@pytest.mark.parametrize(
    ("fields", "registered", "sent"),
    [
        ({}, "http://127.0.0.1", "http://127.0.0.1:53682"),  # the generic preset's default
        ({"redirect_uri": "http://localhost"}, "http://localhost", "http://localhost:53682"),
        (
            {"redirect_uri": "http://localhost:8400/tp/"},
            "http://localhost:8400/tp/",
            "http://localhost:8400/tp/",
        ),
    ],
)
async def test_the_flow_sends_the_registered_uri_with_the_port(
    world: World, fields: dict[str, object], registered: str, sent: str
) -> None:
    listeners = await browser_world(world, **fields)
    exchanged: list[HttpRequest] = []

    def token(request: HttpRequest) -> HttpResponse:
        exchanged.append(request)
        return json_response(200, TOKEN)

    world.http.routes[TOKEN_URL] = token
    prompts: list[Prompt] = []

    async def on_prompt(prompt: Prompt) -> None:
        prompts.append(prompt)
        assert isinstance(prompt, BrowserPrompt)
        state = parse_qs(urlsplit(prompt.authorization_url).query)["state"][0]
        listeners.made[0].arrive(urlencode({"code": CODE, "state": state}))

    acquired = await world.authorizer.obtain("smtp", on_prompt)

    assert isinstance(acquired, Acquired)
    assert [r.registered for r in listeners.asked] == [registered]
    [prompt] = prompts
    assert isinstance(prompt, BrowserPrompt)
    assert (prompt.redirect_uri, prompt.can_paste) == (sent, False)
    assert parse_qs(urlsplit(prompt.authorization_url).query)["redirect_uri"] == [sent]
    assert dict(exchanged[0].form)["redirect_uri"] == sent
    assert listeners.made[0].closed


async def test_a_flow_that_hears_nothing_expires_after_hints(world: World) -> None:
    await browser_world(world, redirect_uri="http://localhost")
    hints: list[RedirectHint] = []

    async def on_prompt(prompt: Prompt) -> None:
        assert isinstance(prompt, BrowserPrompt)
        assert prompt.can_paste

    with pytest.raises(AuthorizationEndedError, match="expired"):
        await world.authorizer.obtain(
            "smtp", on_prompt, BrowserHooks(pasted=Lines(), on_hint=hints.append)
        )

    assert len(hints) == 2
    assert "paste it here" in str(hints[0].text)
    assert isinstance((await world.store.load_token("smtp")).state, NotAcquired)
