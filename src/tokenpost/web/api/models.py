"""The JSON the API takes and gives, as pydantic models (they make the OpenAPI document).

Secrets are write-only: a request may carry a password or a client secret, no answer ever does
(``has_password``, ``has_client_secret`` say whether one is stored). No answer carries a token,
an authorization code or a PKCE verifier.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tokenpost.settings.model import AuthMethod, Flow, Preset, Security
from tokenpost.web.api.codes import ErrorCode

# Text a setting holds: one line, no control characters, bounded. The settings rules say more.
Line = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$", max_length=2048)]
Seconds = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Port = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]

SETTING_ID_PATTERN = r"^(smtp|pop:[A-Za-z0-9][A-Za-z0-9_.-]{0,62})$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ---------------------------------------------------------------------------------------


class Problem(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="Stable: programs branch on it (see the README).")
    message: str = Field(description="What went wrong, in the language of Accept-Language.")
    field: str | None = Field(None, description="The field at fault, when one is.")
    fix: str | None = Field(None, description="What to do about it, when known.")
    reason: str | None = Field(
        None, description="A stable word refining the code (address_refused: why; …)."
    )
    problems: list[Problem] = Field(
        default_factory=list, description="validation_failed: every field at fault, each rule."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


# -- status ---------------------------------------------------------------------------------------

StateId = Literal["not_acquired", "waiting_for_authorization", "acquired", "invalid"]


class SettingStatus(BaseModel):
    """One setting as `token status --json` shows it, and what the web page adds."""

    id: str = Field(description="smtp or pop:NAME")
    auth: AuthMethod | None = Field(description="null: the stored setting is damaged")
    state: StateId | None = Field(description="null: the setting does not use OAuth 2.0")
    label: str | None = Field(description="The state's label, in the language asked for.")
    account: str | None
    provider: str | None
    expires_at: str | None = Field(description="UTC, ISO 8601")
    obtained_at: str | None = Field(description="When the token in force was last refreshed.")
    reason: str | None
    user_code: str | None = Field(description="Administrators only: the pending device code.")
    verification_uri: str | None = Field(description="Administrators only.")
    refresh_failures: int
    previous_state: StateId | None
    previous_label: str | None
    previous_expires_at: str | None
    previous_reason: str | None
    in_force: bool | None = Field(description="A token serves mail now (null: no OAuth 2.0).")
    next_check: str | None = Field(description="POP settings: the next check by serve.")


class StatusList(BaseModel):
    format_version: Literal[1] = 1
    settings: list[SettingStatus]


# -- settings -------------------------------------------------------------------------------------


class SmtpIn(_In):
    """The whole SMTP setting (as `smtp set`). `password` is write-only: left out (null), the
    stored one is kept while the method stays password."""

    server: Line
    port: Port
    security: Security
    timeout: Seconds
    sender_name: Line
    sender_address: Line
    auth: AuthMethod
    provider: Line | None = None
    account: Line | None = None
    password: Line | None = Field(None, json_schema_extra={"writeOnly": True})
    ca_file: Line | None = None


class SmtpOut(BaseModel):
    server: str
    port: int
    security: Security
    timeout: int
    sender_name: str
    sender_address: str
    auth: AuthMethod
    provider: str | None
    account: str | None
    has_password: bool
    ca_file: str | None


class PopIn(_In):
    """A whole POP setting (as `pop add`); its name is in the path. `password` as for SMTP."""

    server: Line
    port: Port
    security: Security
    check_interval: Seconds
    auth: AuthMethod
    deliver_to: Line
    provider: Line | None = None
    account: Line | None = None
    password: Line | None = Field(None, json_schema_extra={"writeOnly": True})
    ca_file: Line | None = None
    leave_on_server: bool = False
    command: Line | None = None


class PopOut(BaseModel):
    id: str
    name: str
    server: str
    port: int
    security: Security
    check_interval: int
    auth: AuthMethod
    deliver_to: str
    provider: str | None
    account: str | None
    has_password: bool
    ca_file: str | None
    leave_on_server: bool
    command: str | None


class PopList(BaseModel):
    pop: list[PopOut]
    damaged: list[str] = Field(description="POP settings the store cannot read: give them again.")


class ProviderIn(_In):
    """A whole provider (as `provider add`); its name is in the path. `client_secret` is
    write-only: left out (null), the stored one is kept unless `remove_client_secret`."""

    preset: Preset
    client_id: Line
    client_secret: Line | None = Field(None, json_schema_extra={"writeOnly": True})
    remove_client_secret: bool = False
    flow: Flow | None = None
    tenant: Line | None = None
    issuer: Line | None = None
    authorization_endpoint: Line | None = None
    token_endpoint: Line | None = None
    device_authorization_endpoint: Line | None = None
    revocation_endpoint: Line | None = None
    scope: list[Line] | None = Field(None, max_length=64)
    smtp_scope: list[Line] | None = Field(None, max_length=64)
    pop_scope: list[Line] | None = Field(None, max_length=64)
    ca_file: Line | None = None
    redirect_uri: Line | None = None
    proxy: Line | None = None


class ProviderOut(BaseModel):
    name: str
    preset: Preset
    client_id: str
    has_client_secret: bool
    flow: Flow | None = Field(description="As set; null: the preset's default.")
    effective_flow: Flow
    tenant: str | None
    issuer: str | None
    authorization_endpoint: str | None
    token_endpoint: str | None
    device_authorization_endpoint: str | None
    revocation_endpoint: str | None
    scope: list[str] | None
    smtp_scope: list[str] | None
    pop_scope: list[str] | None
    ca_file: str | None
    redirect_uri: str | None
    proxy: str | None


class ProviderList(BaseModel):
    providers: list[ProviderOut]
    damaged: list[str] = Field(description="Providers the store cannot read: give them again.")


class Alerts(_In):
    recipients: list[Line] = Field(default_factory=list, max_length=256)
    hook: Line | None = None
    refresh_failing_after: Seconds = 3600
    receive_failing_after: Seconds = 3600


class Discarded(BaseModel):
    """A token the change discarded, and what revoking it at its provider gave."""

    setting: str
    revoked: bool | None
    detail: str


class SmtpSaved(BaseModel):
    smtp: SmtpOut
    discarded: list[Discarded]


class PopSaved(BaseModel):
    pop: PopOut
    discarded: list[Discarded]


class ProviderSaved(BaseModel):
    provider: ProviderOut
    discarded: list[Discarded]


class Removed(BaseModel):
    removed: str
    discarded: list[Discarded]


# -- tokens ---------------------------------------------------------------------------------------


class DevicePrompt(BaseModel):
    """Open `verification_uri` and enter `user_code` (RFC 8628 §3.3)."""

    kind: Literal["device"] = "device"
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    message: str | None
    expires_at: str
    expires_in: int


class BrowserPrompt(BaseModel):
    """Open `authorization_url`; then POST the address the browser ended on to
    ``…/authorization/address`` (unless the registered redirect URI finishes it)."""

    kind: Literal["browser"] = "browser"
    authorization_url: str
    redirect_uri: str
    can_paste: bool
    expires_at: str
    expires_in: int


class Authorization(BaseModel):
    """The setting's token state, and the pending authorization's prompt (administrators
    only; null when none is pending)."""

    setting: str
    state: StateId
    label: str
    prompt: Annotated[DevicePrompt | BrowserPrompt, Field(discriminator="kind")] | None
    status: SettingStatus


class AddressIn(_In):
    address: Annotated[str, StringConstraints(max_length=16 * 1024)] = Field(
        description="The address the browser ended on, as it was (with code and state)."
    )


class Deleted(BaseModel):
    setting: str
    revoked: bool | None = Field(description="null: nothing to revoke, or no endpoint for it")
    detail: str
    status: SettingStatus


# -- checks ---------------------------------------------------------------------------------------


class CheckStep(BaseModel):
    step: str = Field(description="settings, encryption, connect, tls, greeting, ehlo, capa, …")
    label: str
    ok: bool
    detail: str


class CheckReport(BaseModel):
    """`tokenpost check --json`, and each step's label."""

    setting: str
    ok: bool
    steps: list[CheckStep]
    fix: str | None
