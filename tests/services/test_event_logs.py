"""One log line per event and per failure: the events' own lines (`services.events`), and the
services logging nothing a second time about what they report."""

from __future__ import annotations

import logging

import pytest
from service_world import TOKEN_URL, World

from fakes import json_response
from tokenpost.errors import StoreError, TransientOAuthError
from tokenpost.i18n import translator
from tokenpost.logs import TranslatingFilter
from tokenpost.oauth.pending import DevicePending
from tokenpost.secret import Secret
from tokenpost.services.events import EVENTS, log_event
from tokenpost.services.targets import load_target
from tokenpost.text import Text
from tokenpost.tokens.state import Acquired, NotAcquired, WaitingForAuthorization


def tokenpost_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("tokenpost")]


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_event_has_a_line_of_its_own_with_its_fields(
    event: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tokenpost"):
        log_event(event, "pop:fax", "the detail")
    [record] = tokenpost_records(caplog)
    assert (getattr(record, "event", None), getattr(record, "setting", None)) == (
        event,
        "pop:fax",
    )
    message = record.getMessage()
    assert message.startswith("pop:fax: ")
    assert event not in message  # a sentence of its own, not the generic "event NAME" line


def test_an_event_without_a_line_is_still_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tokenpost"):
        log_event("something_new", "smtp", "")
    [record] = tokenpost_records(caplog)
    assert record.getMessage() == "smtp: event something_new: -"
    assert getattr(record, "event", None) == "something_new"


def test_an_event_line_in_german_translates_its_detail(caplog: pytest.LogCaptureFixture) -> None:
    error = StoreError("the database is read-only: {path}", path="/var/lib/tokenpost")
    with caplog.at_level(logging.INFO, logger="tokenpost"):
        log_event("store_unwritable", "smtp", error)
    [record] = tokenpost_records(caplog)
    assert record.levelno == logging.ERROR
    assert TranslatingFilter(translator("de").gettext).filter(record)
    message = record.getMessage()
    assert message.startswith("smtp: das neue Token kann nicht gespeichert werden")
    assert "/var/lib/tokenpost" in message


def test_a_detail_that_is_a_text_is_shown_in_the_language_of_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="tokenpost"):
        log_event("token_invalid", "smtp", Text("no token has been obtained"))
    [record] = tokenpost_records(caplog)
    assert TranslatingFilter(translator("de").gettext).filter(record)
    assert record.getMessage() == "smtp: Token ungültig: es wurde kein Token abgerufen"


# -- the services say a thing once ---------------------------------------------------------


async def seed_expired(world: World) -> None:
    target = await load_target(world.store, "smtp")
    now = world.clock.now()
    state = Acquired(
        access_token=Secret("at-0"),
        expires_at=now - 10,
        obtained_at=now - 3600,
        refresh_token=Secret("rt-0"),
    )
    await world.store.save_token("smtp", state, binding=target.binding, expected_version=0)


async def test_a_failed_refresh_of_an_expired_token_is_one_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await seed_expired(world)
    world.http.routes[TOKEN_URL] = lambda r: json_response(503, {"error": "server_error"})
    with caplog.at_level(logging.INFO, logger="tokenpost"):
        await world.refresher.refresh_if_due("smtp")
    [record] = tokenpost_records(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("refresh of smtp failed")
    state = (await world.store.load_token("smtp")).state
    assert isinstance(state, Acquired)
    assert state.failures == 1  # recorded in the state, said once in the log


async def test_a_failed_use_of_an_expired_token_raises_and_logs_nothing_itself(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await seed_expired(world)
    world.http.routes[TOKEN_URL] = lambda r: json_response(503, {"error": "server_error"})
    with caplog.at_level(logging.INFO, logger="tokenpost"), pytest.raises(TransientOAuthError):
        await world.refresher.access_token("smtp")
    assert tokenpost_records(caplog) == []  # the caller shows or logs the error


async def test_a_device_flow_denied_while_serve_polls_is_one_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    target = await load_target(world.store, "smtp")
    now = world.clock.now()
    flow = DevicePending(
        device_code=Secret("dc-1"),
        user_code="ABCD-EFGH",
        verification_uri="https://as.example/activate",
        expires_at=now + 600,
        interval=5,
        next_poll_at=now,
    )
    waiting = WaitingForAuthorization(flow, started_at=now)
    await world.store.save_token("smtp", waiting, binding=target.binding, expected_version=0)
    world.http.routes[TOKEN_URL] = lambda r: json_response(400, {"error": "access_denied"})
    with caplog.at_level(logging.INFO, logger="tokenpost"):
        await world.authorizer.poll_due("smtp")
    [record] = tokenpost_records(caplog)
    assert "authorization of smtp ended" in record.getMessage()
    assert isinstance((await world.store.load_token("smtp")).state, NotAcquired)
