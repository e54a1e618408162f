"""The settings service: what a change discards is revoked with the settings it was obtained for,
an import that would remove settings needs `replace`, every problem comes in one error, and a
damaged record does not stop the others."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from service_world import REVOKE_URL, World, provider, smtp_setting

from damaged_store import DamagedStore
from fakes import MemoryStore, json_response
from tokenpost.errors import (
    FieldProblem,
    NotFoundError,
    UsageError,
    ValidationError,
)
from tokenpost.i18n import translator
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.secret import Secret
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.settings import SettingsService
from tokenpost.services.targets import target_of
from tokenpost.settings.model import (
    AuthMethod,
    MailSetting,
    PopSetting,
    Provider,
    Security,
)
from tokenpost.settings.toml_io import export_toml
from tokenpost.tokens.state import Acquired, NotAcquired

OLD_REVOKE = "https://old.example/revoke"
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


def token(name: str) -> Acquired:
    return Acquired(
        access_token=Secret(f"AT-{name}"),
        expires_at=2_000_000_000.0,
        obtained_at=1_999_996_400.0,
        refresh_token=Secret(f"RT-{name}"),
    )


@dataclass
class FoundOnHost:
    """HostChecks that report a fixed problem for any item with a CA file."""

    def problems(self, item: object) -> tuple[FieldProblem, ...]:
        if getattr(item, "ca_file", None):
            return (FieldProblem("ca_file", "holds no CA certificate"),)
        return ()


class Setup:
    def __init__(self, store: MemoryStore | None = None) -> None:
        self.world = World()
        if store is not None:
            self.world.store = store
            self.world.deleter.store = store
        self.store = self.world.store
        self.http = self.world.http
        self.revoked: list[HttpRequest] = []
        self.settings = SettingsService(
            self.store,
            self.world.lock,
            FoundOnHost(),
            revoker=self.world.deleter,
            resolver=EndpointResolver(self.http),
        )
        for url in (REVOKE_URL, OLD_REVOKE):
            self.http.routes[url] = self._revoke

    def _revoke(self, request: HttpRequest) -> HttpResponse:
        self.revoked.append(request)
        return json_response(200, {})

    def revoked_tokens(self) -> list[tuple[str, object, object]]:
        return [
            (r.url, str(r.form_value("client_id")), _reveal(r.form_value("token")))
            for r in self.revoked
        ]

    async def with_token(self, setting: MailSetting) -> None:
        binding = (await target_of(self.store, setting)).binding
        await self.store.save_token(
            setting.setting_id, token(setting.setting_id), binding=binding, expected_version=0
        )

    async def state(self, setting_id: str) -> object:
        return (await self.store.load_token(setting_id)).state


def _reveal(value: object) -> object:
    return value.reveal() if isinstance(value, Secret) else value


@pytest.fixture
async def setup() -> Setup:
    s = Setup()
    await s.store.put_provider(provider(revocation_endpoint=OLD_REVOKE, client_id="old-client"))
    await s.store.put_smtp(smtp_setting())
    await s.store.put_pop(FAX)
    await s.with_token(smtp_setting())
    await s.with_token(FAX)
    return s


# -- revocation of what a change discards ----------------------------------------------------


async def test_re_targeting_a_provider_revokes_with_the_old_provider_and_client(
    setup: Setup,
) -> None:
    changed = provider(revocation_endpoint=REVOKE_URL, client_id="new-client")
    discarded = await setup.settings.put_provider(changed)
    assert {d.setting_id for d in discarded} == {"smtp", "pop:fax"}
    assert all(d.revoked for d in discarded)
    assert sorted(setup.revoked_tokens()) == [
        (OLD_REVOKE, "old-client", "RT-pop:fax"),
        (OLD_REVOKE, "old-client", "RT-smtp"),
    ]
    assert isinstance(await setup.state("smtp"), NotAcquired)


async def test_a_change_that_keeps_the_binding_revokes_nothing(setup: Setup) -> None:
    assert await setup.settings.put_pop(dataclasses.replace(FAX, check_interval=600)) == ()
    assert await setup.settings.put_smtp(smtp_setting(timeout=60)) == ()
    assert setup.revoked == []
    assert isinstance(await setup.state("pop:fax"), Acquired)


async def test_re_targeting_a_setting_revokes_its_token_only(setup: Setup) -> None:
    (discarded,) = await setup.settings.put_smtp(smtp_setting(account="other@example.com"))
    assert (discarded.setting_id, discarded.revoked) == ("smtp", True)
    assert setup.revoked_tokens() == [(OLD_REVOKE, "old-client", "RT-smtp")]
    assert isinstance(await setup.state("pop:fax"), Acquired)


async def test_removing_a_pop_setting_revokes_its_token(setup: Setup) -> None:
    (discarded,) = await setup.settings.remove_pop("fax")
    assert discarded.setting_id == "pop:fax"
    assert setup.revoked_tokens() == [(OLD_REVOKE, "old-client", "RT-pop:fax")]
    assert await setup.store.get_pop("fax") is None
    with pytest.raises(NotFoundError):
        await setup.settings.remove_pop("fax")


async def test_a_failed_revocation_still_discards(setup: Setup) -> None:
    setup.http.routes[OLD_REVOKE] = lambda request: json_response(503, {})
    (discarded,) = await setup.settings.remove_pop("fax")
    assert discarded.revoked is False
    assert "503" in str(discarded.detail)


async def test_a_token_never_goes_to_a_provider_it_was_not_obtained_for(setup: Setup) -> None:
    # A token stored under another binding (obtained for other settings) is discarded, not sent.
    await setup.store.save_token("pop:fax", token("stale"), binding="other", expected_version=1)
    (discarded,) = await setup.settings.remove_pop("fax")
    assert discarded.revoked is None
    assert setup.revoked == []


# -- import ------------------------------------------------------------------------------------


async def test_an_import_that_would_remove_settings_is_refused_and_changes_nothing(
    setup: Setup,
) -> None:
    before = await setup.settings.export()
    with pytest.raises(UsageError) as caught:
        await setup.settings.import_toml("")
    message = str(caught.value)
    assert "POP setting fax" in message
    assert "--replace" in message
    assert "provider as" not in message  # the SMTP setting (kept) still uses it
    assert await setup.settings.export() == before
    assert setup.revoked == []


async def test_replace_removes_and_revokes(setup: Setup) -> None:
    result = await setup.settings.import_toml("", replace=True)
    assert result.removed.pop == ("fax",)
    assert [d.setting_id for d in result.discarded] == ["pop:fax"]
    assert setup.revoked_tokens() == [(OLD_REVOKE, "old-client", "RT-pop:fax")]
    assert await setup.store.list_pop() == []
    assert isinstance(await setup.state("smtp"), Acquired)  # no [smtp]: left as it is


async def test_a_re_targeting_import_revokes_the_old_token(setup: Setup) -> None:
    doc = await setup.settings.export()
    moved = dataclasses.replace(doc.pop[0], server="pop2.example")
    result = await setup.settings.import_toml(export_toml(dataclasses.replace(doc, pop=(moved,))))
    assert not result.removed
    assert [d.setting_id for d in result.discarded] == ["pop:fax"]
    assert setup.revoked_tokens() == [(OLD_REVOKE, "old-client", "RT-pop:fax")]
    assert (await setup.store.get_pop("fax")) == moved


async def test_an_invalid_import_revokes_nothing(setup: Setup) -> None:
    text = export_toml(await setup.settings.export()).replace("port = 995", "port = 0")
    text = text.replace('server = "pop.example"', 'server = "pop2.example"')
    with pytest.raises(ValidationError):
        await setup.settings.import_toml(text)
    assert setup.revoked == []
    assert isinstance(await setup.state("pop:fax"), Acquired)


async def test_rules_and_host_checks_come_in_one_error(setup: Setup) -> None:
    with pytest.raises(ValidationError) as caught:
        await setup.settings.put_pop(dataclasses.replace(FAX, port=0, ca_file="/etc/empty.pem"))
    assert [p.field for p in caught.value.problems] == ["port", "ca_file"]
    text = export_toml(await setup.settings.export()).replace("port = 995", "port = 0")
    text = text.replace("[pop.fax]", '[pop.fax]\nca_file = "/etc/empty.pem"')
    with pytest.raises(ValidationError) as caught:
        await setup.settings.import_toml(text)
    assert [p.field for p in caught.value.problems] == ["pop.fax.port", "pop.fax.ca_file"]


# -- a generic provider's offered scopes -----------------------------------------------------

ISSUER = "https://id.example"
DISCOVERY = "https://id.example/.well-known/oauth-authorization-server"


def metadata(**extra: object) -> HttpResponse:
    return json_response(200, {"issuer": ISSUER, "token_endpoint": ISSUER + "/token", **extra})


async def scope_problem(setup: Setup) -> str:
    no_scope = Provider("idp", provider().preset, "client", issuer=ISSUER)
    with pytest.raises(ValidationError) as caught:
        await setup.settings.put_provider(no_scope)
    (problem,) = [p for p in caught.value.problems if p.field == "scope"]
    return str(problem)


async def test_a_missing_scope_lists_the_scopes_the_provider_offers(setup: Setup) -> None:
    setup.http.routes[DISCOVERY] = lambda r: metadata(scopes_supported=["openid", "mail.send"])
    assert (await scope_problem(setup)).endswith("the provider offers: openid mail.send")


async def test_a_missing_scope_says_why_the_offer_is_unknown(setup: Setup) -> None:
    for url in (DISCOVERY, ISSUER + "/.well-known/openid-configuration"):
        setup.http.routes[url] = lambda r: json_response(500, {})
    assert "could not be fetched (authorization server metadata: HTTP 500" in (
        await scope_problem(setup)
    )
    setup.http.routes[DISCOVERY] = lambda r: metadata()
    setup.settings.resolver = EndpointResolver(setup.http)  # a fresh cache
    assert (await scope_problem(setup)).endswith("its discovery document lists no scopes")


async def test_the_offered_scopes_in_german(setup: Setup) -> None:
    setup.http.routes[DISCOVERY] = lambda r: metadata(scopes_supported=["mail.send"])
    no_scope = Provider("idp", provider().preset, "client", issuer=ISSUER)
    with pytest.raises(ValidationError) as caught:
        await setup.settings.put_provider(no_scope)
    german = caught.value.translate(translator("de").gettext)
    assert german.startswith("Anbieter idp: scope: ")
    assert "mail.send" in german
    assert "provider offers" not in german


# -- damaged records ---------------------------------------------------------------------------


@pytest.fixture
async def damaged() -> Setup:
    s = Setup(DamagedStore())
    await s.store.put_provider(provider(revocation_endpoint=OLD_REVOKE, client_id="old-client"))
    await s.store.put_smtp(smtp_setting())
    await s.store.put_pop(FAX)
    await s.with_token(smtp_setting())
    await s.with_token(FAX)
    return s


async def test_a_damaged_setting_can_be_overwritten_and_its_matching_token_stays(
    damaged: Setup,
) -> None:
    assert isinstance(damaged.store, DamagedStore)
    damaged.store.damage("smtp")
    # Given again in full with the same target: the token that works keeps working.
    assert await damaged.settings.put_smtp(smtp_setting()) == ()
    assert isinstance(await damaged.state("smtp"), Acquired)
    damaged.store.damage("smtp")
    (discarded,) = await damaged.settings.put_smtp(smtp_setting(account="new@example.com"))
    assert discarded.revoked is None  # what it was for cannot be read: it goes nowhere
    assert damaged.revoked == []


async def test_a_damaged_pop_setting_can_be_removed(damaged: Setup) -> None:
    assert isinstance(damaged.store, DamagedStore)
    damaged.store.damage("pop:fax")
    await damaged.settings.remove_pop("fax")
    assert await damaged.store.damaged_records() == []
    assert "fax" not in damaged.store.pops


async def test_export_and_changes_work_around_damaged_records(damaged: Setup) -> None:
    assert isinstance(damaged.store, DamagedStore)
    damaged.store.damage("smtp")
    damaged.store.damage("alerts")
    doc = await damaged.settings.export()
    assert (doc.smtp, doc.alerts, [p.name for p in doc.pop]) == (None, None, ["fax"])
    assert [d.record_id for d in await damaged.settings.damaged()] == ["alerts", "smtp"]
    # Other settings still change; the damaged one is left as it is.
    await damaged.settings.put_pop(dataclasses.replace(FAX, account="other@example.com"))
    assert damaged.store.smtp == smtp_setting()


async def test_a_setting_of_a_damaged_provider_is_told_to_add_the_provider_again(
    damaged: Setup,
) -> None:
    assert isinstance(damaged.store, DamagedStore)
    damaged.store.damage("provider:as")
    with pytest.raises(ValidationError) as caught:
        await damaged.settings.put_pop(dataclasses.replace(FAX, check_interval=600))
    assert "tokenpost provider add as" in str(caught.value)
    # The tokens of its settings are not discarded while it cannot be read.
    await damaged.settings.put_pop(
        dataclasses.replace(FAX, auth=AuthMethod.NONE, provider=None, account=None)
    )
    assert isinstance(await damaged.state("smtp"), Acquired)
