"""The settings service with the POP options and the alert settings: validated before they are
stored, exported and imported with the rest, and never a reason to discard a token."""

from __future__ import annotations

import dataclasses

import pytest
from service_world import World

from tokenpost.errors import ValidationError
from tokenpost.secret import Secret
from tokenpost.services.targets import target_of
from tokenpost.settings.document import ConfigDocument
from tokenpost.settings.model import AlertSettings, AuthMethod, PopSetting, Security
from tokenpost.tokens.state import Acquired

ALERTS = AlertSettings(recipients=("ops@example.com",), hook="notify --all")
FAX = PopSetting(
    name="fax",
    server="pop.example",
    port=995,
    security=Security.TLS,
    check_interval=300,
    auth=AuthMethod.OAUTH2,
    deliver_to="/var/spool/fax",
    provider="as",
    account="fax@example.com",
)
TOKEN = Acquired(
    access_token=Secret("AT-fax"),
    expires_at=2_000_000_000.0,
    obtained_at=1_999_996_400.0,
    refresh_token=Secret("RT-fax"),
)


async def test_alerts_are_validated_then_stored(world: World) -> None:
    await world.settings.put_alerts(ALERTS)
    assert await world.store.get_alerts() == ALERTS
    with pytest.raises(ValidationError) as caught:
        await world.settings.put_alerts(AlertSettings(recipients=("nobody",), hook="./x"))
    assert caught.value.subject == "alerts"
    assert [p.field for p in caught.value.problems] == ["recipients", "hook"]
    assert await world.store.get_alerts() == ALERTS


async def test_a_bad_command_keeps_the_pop_setting_out(world: World) -> None:
    with pytest.raises(ValidationError, match="command"):
        await world.settings.put_pop(dataclasses.replace(FAX, command="lpr 'unclosed"))
    assert await world.store.get_pop("fax") is None


async def test_pop_options_do_not_discard_the_token(world: World) -> None:
    await world.settings.put_pop(FAX)
    binding = (await target_of(world.store, FAX)).binding
    await world.store.save_token("pop:fax", TOKEN, binding=binding, expected_version=0)
    changed = dataclasses.replace(FAX, leave_on_server=True, command="/usr/bin/lp -d fax")
    await world.settings.put_pop(changed)
    await world.settings.put_alerts(ALERTS)
    record = await world.store.load_token("pop:fax")
    assert (record.state, record.version) == (TOKEN, 1)
    # The same check discards the token when the setting is re-targeted.
    await world.settings.put_pop(dataclasses.replace(changed, account="other@example.com"))
    assert (await world.store.load_token("pop:fax")).version == 2


async def test_export_and_apply_carry_the_alerts(world: World) -> None:
    await world.settings.put_pop(dataclasses.replace(FAX, leave_on_server=True))
    await world.settings.put_alerts(ALERTS)
    exported = await world.settings.export()
    assert exported.alerts == ALERTS
    assert exported.pop[0].leave_on_server is True

    await world.settings.apply_document(dataclasses.replace(exported, alerts=None))
    assert await world.store.get_alerts() == ALERTS  # a document without [alerts] keeps them
    await world.settings.apply_document(dataclasses.replace(exported, alerts=AlertSettings()))
    assert await world.store.get_alerts() == AlertSettings()


async def test_an_empty_store_exports_the_default_alerts(world: World) -> None:
    assert (await world.settings.export()).alerts == AlertSettings()
    assert ConfigDocument().alerts is None
