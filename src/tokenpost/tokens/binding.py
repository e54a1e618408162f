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
    """The binding (sha256 hex of a canonical JSON object) of a token for `setting`.

    Args:
        provider: the setting's provider.
        setting: the SMTP or POP setting the token is for.
        endpoints: endpoints the caller resolved beyond the provider's fields (e.g. by RFC 8414
            discovery), canonically written; empty when none.
        scope: the effective scope requested for the setting's use. Order and repetition do not
            matter (RFC 6749 §3.3: scope is a set).
    """
    fields = {
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
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
