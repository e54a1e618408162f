"""Reasons kept in token states are texts: recorded by one process, shown in the reader's
language by another; rows written before that (plain strings) still read, as they were."""

from __future__ import annotations

import json

from tokenpost.adapters import store_codec as codec
from tokenpost.cli.render import status_table
from tokenpost.cli.token_cmds import status_json
from tokenpost.i18n import translator
from tokenpost.secret import Secret
from tokenpost.services.authorize import CANCELLED
from tokenpost.services.status import SettingStatus
from tokenpost.settings.model import AuthMethod
from tokenpost.text import Text
from tokenpost.tokens.machine import SETTINGS_CHANGED
from tokenpost.tokens.state import Acquired, Invalid, NotAcquired
from tokenpost.tokens.state_id import StateId

GERMAN = translator("de").gettext


def through_the_store(state: object) -> object:
    public, secrets = codec.encode_state(state)  # type: ignore[arg-type]
    return codec.decode_state(json.loads(codec.dumps(public)), secrets)


def test_a_recorded_reason_is_shown_in_the_readers_language() -> None:
    state = through_the_store(NotAcquired(note=CANCELLED))
    assert isinstance(state, NotAcquired)
    assert state.note is not None
    assert str(state.note) == "the authorization was cancelled"
    assert state.note.translate(GERMAN) == "die Autorisierung wurde abgebrochen"
    changed = through_the_store(NotAcquired(note=SETTINGS_CHANGED))
    assert isinstance(changed, NotAcquired)
    assert changed.note == SETTINGS_CHANGED
    assert changed.note.translate(GERMAN) == "Einstellungen geändert"


def test_a_row_from_before_texts_reads_as_it_was() -> None:
    public, secrets = codec.encode_state(Invalid(Text.verbatim("x"), since=1.0))
    public["reason"] = "invalid_grant: consent revoked"
    state = codec.decode_state(json.loads(codec.dumps(public)), secrets)
    assert isinstance(state, Invalid)
    assert state.reason.translate(GERMAN) == "invalid_grant: consent revoked"


def row(**fields: object) -> SettingStatus:
    base: dict[str, object] = {
        "setting_id": "smtp",
        "auth": AuthMethod.OAUTH2,
        "account": "scanner@example.com",
        "provider": "m365",
        "state": StateId.NOT_ACQUIRED,
    }
    base.update(fields)
    return SettingStatus(**base)  # type: ignore[arg-type]


def test_status_shows_reasons_in_german() -> None:
    rows = [
        row(reason=CANCELLED),
        row(
            setting_id="pop:fax",
            state=StateId.WAITING_FOR_AUTHORIZATION,
            expires_at=1_800_000_600.0,
            previous_state=StateId.ACQUIRED,
            previous_expires_at=1_800_003_600.0,
        ),
    ]
    table = status_table(rows, "de", GERMAN)
    assert "Nicht abgerufen" in table
    assert "die Autorisierung wurde abgebrochen" in table
    assert "Warten auf Autorisierung" in table
    assert "das bisherige Token bleibt bis 2027-01-15 09:00 UTC gültig" in table
    english = status_table(rows, "en", translator("en").gettext)
    assert "the previous token stays in force until 2027-01-15 09:00 UTC" in english
    data = status_json(rows[0], "de")
    assert (data["label"], data["reason"], data["in_force"]) == (
        "Nicht abgerufen",
        "die Autorisierung wurde abgebrochen",
        False,
    )
    waiting = status_json(rows[1], "en")
    assert waiting["state"] == "waiting_for_authorization"
    assert (waiting["previous_state"], waiting["previous_expires_at"]) == (
        "acquired",
        "2027-01-15T09:00:00Z",
    )
    assert waiting["in_force"] is True


def test_a_refresh_failure_reason_in_acquired_is_a_text() -> None:
    acquired = Acquired(
        access_token=Secret("s3cr3t"),
        expires_at=2.0,
        obtained_at=1.0,
        last_error=Text("the authorization was cancelled"),
    )
    stored = through_the_store(acquired)
    assert stored == acquired
