"""What a token was obtained for: a fingerprint of everything that decides where it may be sent.

A stored token carries the binding it was obtained under. When a setting's binding differs from
the stored one, the token is dropped (`machine.BindingChanged`): a token must never reach a
provider, an account or a mail server it was not obtained for (style.md principle 7; RFC 6749 §10.3
on keeping access tokens confidential to the parties they were issued for).

Included: provider preset, tenant, issuer, the explicit endpoint fields, client id, flow, scope,
the setting's id, account and mail server host. Excluded on purpose, because changing them cannot
send a token anywhere new: the client secret, CA files, ports, timeouts, sender name and address,
check interval, delivery directory, provider name.

If a field that can change where a token goes is added to `settings.model`, add it here.

`tokens` and `settings` are independent layers, so the provider and setting are taken as the
read-only shapes below, which `settings.model.Provider` and its `MailSetting`s satisfy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Final, Protocol

NO_BINDING: Final = ""
"""The binding of a setting that never had a token."""

# Part of the fingerprint: changing the composition changes every binding on purpose, so raise the
# version whenever a field is added or removed (every token then has to be obtained again).
_VERSION: Final = 1


class ProviderFields(Protocol):
    """What a binding reads of a `settings.model.Provider`."""

    @property
    def preset(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def flow(self) -> str | None: ...
    @property
    def tenant(self) -> str | None: ...
    @property
    def issuer(self) -> str | None: ...
    @property
    def authorization_endpoint(self) -> str | None: ...
    @property
    def token_endpoint(self) -> str | None: ...
    @property
    def device_authorization_endpoint(self) -> str | None: ...
    @property
    def revocation_endpoint(self) -> str | None: ...


class SettingFields(Protocol):
    """What a binding reads of a `settings.model.MailSetting`."""

    @property
    def setting_id(self) -> str: ...
    @property
    def server(self) -> str: ...
    @property
    def account(self) -> str | None: ...


def binding_of(
    provider: ProviderFields,
    setting: SettingFields,
    *,
    endpoints: str = "",
    scope: tuple[str, ...],
) -> str:
    """The binding (sha256 hex of a canonical JSON object, `canonical_fields`) of a token for
    `setting`.

    Args:
        provider: the setting's provider.
        setting: the SMTP or POP setting the token is for.
        endpoints: endpoints the caller resolved beyond the provider's fields (e.g. by RFC 8414
            discovery), canonically written; empty when none.
        scope: the effective scope requested for the setting's use. Order and repetition do not
            matter (RFC 6749 §3.3: scope is a set).

    The settings of one provider and use share every field but three, so the canonical text is
    made once per provider, scope and endpoints (`_Template`) and only the setting's id,
    account and server are written per call: a status of ten thousand settings computes ten
    thousand bindings. The template writes exactly `canonical_fields`'s text (a test checks
    it on arbitrary fields).
    """
    key = (
        provider.preset,
        provider.tenant,
        provider.issuer,
        provider.authorization_endpoint,
        provider.token_endpoint,
        provider.device_authorization_endpoint,
        provider.revocation_endpoint,
        provider.client_id,
        provider.flow,
        endpoints,
        frozenset(scope),
    )
    template = _TEMPLATES.get(key)
    if template is None:
        template = _Template.of(provider, endpoints, scope)
        if len(_TEMPLATES) >= _MAX_TEMPLATES:
            _TEMPLATES.clear()
        _TEMPLATES[key] = template
    return template.binding(setting)


def canonical_fields(
    provider: ProviderFields, setting: SettingFields, *, endpoints: str, scope: tuple[str, ...]
) -> dict[str, object]:
    """The fields a binding fingerprints (its definition; `binding_of` hashes their JSON with
    sorted keys, no spaces, UTF-8)."""
    return {
        "v": _VERSION,
        # str() of a StrEnum is its value.
        "preset": str(provider.preset),
        "tenant": provider.tenant,
        "issuer": provider.issuer,
        "authorization_endpoint": provider.authorization_endpoint,
        "token_endpoint": provider.token_endpoint,
        "device_authorization_endpoint": provider.device_authorization_endpoint,
        "revocation_endpoint": provider.revocation_endpoint,
        "resolved_endpoints": endpoints,
        "client_id": provider.client_id,
        "flow": None if provider.flow is None else str(provider.flow),
        "scope": sorted(set(scope)),
        "setting": setting.setting_id,
        "account": setting.account,
        # Host names are case-insensitive (RFC 4343); the same server must not lose its token.
        "server": setting.server.lower(),
    }


def canonical_text(fields: dict[str, object]) -> str:
    """The JSON text a binding hashes."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _Template:
    """The canonical text of one provider, scope and endpoints, cut where a setting's three
    fields go: `parts` are the text before the account, between it and the server, between
    the server and the setting id, and after it (the sorted keys put them in that order)."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str, str, str, str]) -> None:
        self.parts = parts

    @classmethod
    def of(cls, provider: ProviderFields, endpoints: str, scope: tuple[str, ...]) -> _Template:
        marked = canonical_fields(provider, _MARKERS, endpoints=endpoints, scope=scope)
        text = canonical_text(marked)
        cuts = [_quoted(marker) for marker in (_ACCOUNT, _SERVER, _SETTING)]
        if all(text.count(cut) == 1 for cut in cuts):  # no provider field equals a marker
            before, rest = text.split(cuts[0])
            between, rest = rest.split(cuts[1])
            after_server, after = rest.split(cuts[2])
            return cls((before, between, after_server, after))
        return _Uncut(provider, endpoints, scope)

    def binding(self, setting: SettingFields) -> str:
        before, between, after_server, after = self.parts
        account = setting.account
        text = "".join(
            (
                before,
                "null" if account is None else _quoted(account),
                between,
                _quoted(setting.server.lower()),
                after_server,
                _quoted(setting.setting_id),
                after,
            )
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Uncut(_Template):
    """The template of a provider whose fields hold a marker: every binding written whole."""

    __slots__ = ("_endpoints", "_provider", "_scope")

    def __init__(self, provider: ProviderFields, endpoints: str, scope: tuple[str, ...]) -> None:
        super().__init__(("", "", "", ""))
        self._provider, self._endpoints, self._scope = provider, endpoints, scope

    def binding(self, setting: SettingFields) -> str:
        fields = canonical_fields(
            self._provider, setting, endpoints=self._endpoints, scope=self._scope
        )
        return hashlib.sha256(canonical_text(fields).encode("utf-8")).hexdigest()


class _Markers:
    """A setting whose three per-setting fields are markers no real value holds."""

    setting_id = "\x00tokenpost binding setting\x00"
    account = "\x00tokenpost binding account\x00"
    server = "\x00tokenpost binding server\x00"


_MARKERS: Final = _Markers()
_SETTING: Final = _Markers.setting_id
_ACCOUNT: Final = _Markers.account
_SERVER: Final = _Markers.server
# A JSON string as `canonical_text` writes it (ensure_ascii=False).
_quoted: Final[Callable[[str], str]] = json.encoder.encode_basestring

# Templates by provider fields, endpoints and scope; a store has few. Cleared when full.
_TEMPLATES: dict[tuple[object, ...], _Template] = {}
_MAX_TEMPLATES: Final = 256
