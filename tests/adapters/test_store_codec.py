from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.adapters import store_codec as codec
from tokenpost.adapters.crypto import Cipher
from tokenpost.errors import StoreCorruptError
from tokenpost.oauth.authcode import BrowserPending
from tokenpost.oauth.rfc8628 import DevicePending
from tokenpost.secret import Secret
from tokenpost.settings.model import (
    AlertSettings,
    AuthMethod,
    Flow,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
)
from tokenpost.text import Text
from tokenpost.tokens.state import (
    Acquired,
    Invalid,
    NotAcquired,
    TokenState,
    WaitingForAuthorization,
)

CIPHER = Cipher(bytes(range(32)))

DEVICE = DevicePending(
    device_code=Secret("DEVICE-CODE"),
    user_code="WDJB-MJHT",
    verification_uri="https://microsoft.com/devicelogin",
    expires_at=1_700_000_900.0,
    interval=5.0,
    next_poll_at=1_700_000_005.0,
)
BROWSER = BrowserPending(
    authorization_url="https://accounts.example/auth?x=1",
    redirect_uri="http://127.0.0.1:8400/cb",
    state=Secret("STATE-VALUE"),
    verifier=Secret("PKCE-VERIFIER"),
    expires_at=1_700_000_600.0,
)
ACQUIRED = Acquired(
    access_token=Secret("ACCESS"),
    expires_at=1_700_003_600.0,
    obtained_at=1_700_000_000.0,
    refresh_token=Secret("REFRESH"),
    scope=("https://outlook.office.com/SMTP.Send", "offline_access"),
)


# --- a strategy for every token state, built from the dataclasses' own type hints ---------------
# Built generically so that a field added to a state or flow is generated (and must round-trip)
# without a change here.


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        arms = typing.get_args(hint)
        return st.one_of(*(st.none() if a is types.NoneType else strategy_for(a) for a in arms))
    if origin is tuple:
        return st.lists(strategy_for(typing.get_args(hint)[0]), max_size=3).map(tuple)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        Secret: st.text(max_size=30).map(Secret),
        float: st.floats(allow_nan=False, allow_infinity=False),
        int: st.integers(),
        str: st.text(max_size=30),
        bool: st.booleans(),
        Text: st.text(max_size=30).map(Text.verbatim)
        | st.builds(lambda x: Text("settings changed: {x}", x=x), st.text(max_size=10)),
    }
    if hint in simple:
        return simple[hint]
    if hint in codec.STATE_TAGS:
        fields = {name: strategy_for(h) for name, h in typing.get_type_hints(hint).items()}
        return st.builds(hint, **fields)
    raise TypeError(f"no strategy for {hint!r}: teach the store codec and this test about it")


STATES = strategy_for(TokenState)


def replace_secrets(value: Any) -> Any:
    """`value` with every Secret, however deep, replaced by a different one."""
    if isinstance(value, Secret):
        return Secret(value.reveal() + "-changed")
    if isinstance(value, tuple):
        return tuple(replace_secrets(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: replace_secrets(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)
    return value


def reachable_dataclasses(hint: Any) -> set[type]:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union, tuple):
        return set().union(*(reachable_dataclasses(a) for a in typing.get_args(hint)))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        found = {hint}
        for field_hint in typing.get_type_hints(hint).values():
            found |= reachable_dataclasses(field_hint)
        return found
    return set()


# --- token states ---------------------------------------------------------------------------------


@given(STATES)
def test_every_state_round_trips_through_json(state: TokenState) -> None:
    public, secrets = codec.encode_state(state)
    stored_public = json.loads(codec.dumps(public))
    stored_secrets = json.loads(codec.dumps(secrets))
    assert codec.decode_state(stored_public, stored_secrets) == state


@given(STATES)
def test_public_part_never_depends_on_a_secret(state: TokenState) -> None:
    public, _ = codec.encode_state(state)
    other_public, _ = codec.encode_state(replace_secrets(state))
    assert codec.dumps(public) == codec.dumps(other_public)


@given(STATES)
def test_every_field_is_encoded(state: TokenState) -> None:
    public, _ = codec.encode_state(state)

    def check(encoded: Any, value: Any) -> None:
        names = {f.name for f in dataclasses.fields(value)}
        assert set(encoded) == names | {codec.TYPE_KEY}
        for name in names:
            nested = getattr(value, name)
            if type(nested) in codec.STATE_TAGS:
                check(encoded[name], nested)

    check(public, state)


def test_every_state_and_flow_class_has_a_tag() -> None:
    assert reachable_dataclasses(TokenState) == set(codec.STATE_TAGS)
    assert len(set(codec.STATE_TAGS.values())) == len(codec.STATE_TAGS)


@pytest.mark.parametrize(
    ("state", "paths"),
    [
        (NotAcquired(), set()),
        (NotAcquired(note="denied"), set()),
        (Invalid(reason="invalid_grant", since=1.0), set()),
        (ACQUIRED, {"access_token", "refresh_token"}),
        (dataclasses.replace(ACQUIRED, refresh_token=None), {"access_token"}),
        (WaitingForAuthorization(DEVICE, 1.0), {"flow.device_code"}),
        (WaitingForAuthorization(BROWSER, 1.0), {"flow.state", "flow.verifier"}),
        (
            WaitingForAuthorization(DEVICE, 1.0, previous=ACQUIRED),
            {"flow.device_code", "previous.access_token", "previous.refresh_token"},
        ),
    ],
)
def test_secrets_are_keyed_by_their_path(state: TokenState, paths: set[str]) -> None:
    public, secrets = codec.encode_state(state)
    assert set(secrets) == paths
    text = codec.dumps(public)
    for value in secrets.values():
        assert value not in text


def test_public_part_is_readable() -> None:
    public, _ = codec.encode_state(WaitingForAuthorization(DEVICE, 1.0))
    assert public[codec.TYPE_KEY] == "waiting_for_authorization"
    flow = public["flow"]
    assert isinstance(flow, dict)
    assert flow["user_code"] == "WDJB-MJHT"
    assert flow["device_code"] == {codec.SECRET_KEY: "flow.device_code"}


def test_ints_for_float_fields_come_back_as_floats() -> None:
    public, secrets = codec.encode_state(Invalid(reason="r", since=5))
    state = codec.decode_state(public, secrets)
    assert isinstance(state, Invalid)
    assert type(state.since) is float


@pytest.mark.parametrize(("cls", "field"), [(DevicePending, "backoff"), (Acquired, "failures")])
def test_a_field_missing_from_an_older_row_takes_its_default(cls: type, field: str) -> None:
    if field not in {f.name for f in dataclasses.fields(cls)}:
        pytest.skip(f"{cls.__name__} has no field {field}")
    state = WaitingForAuthorization(DEVICE, 1.0, previous=ACQUIRED)
    public, secrets = codec.encode_state(state)
    part: Any = public["flow"] if cls is DevicePending else public["previous"]
    del part[field]
    assert codec.decode_state(public, secrets) == state  # defaults: backoff 0.0, failures 0


def _corrupt(change: str) -> tuple[dict[str, Any], dict[str, str]]:
    public, secrets = codec.encode_state(WaitingForAuthorization(DEVICE, 1.0, previous=ACQUIRED))
    p: Any = json.loads(codec.dumps(public))
    s = dict(secrets)
    match change:
        case "unknown tag":
            p[codec.TYPE_KEY] = "pending"
        case "nested tag not allowed there":
            p["previous"][codec.TYPE_KEY] = "not_acquired"
        case "unknown field":
            p["colour"] = "blue"
        case "missing required field":
            del p["flow"]["user_code"]
        case "wrong scalar type":
            p["started_at"] = "yesterday"
        case "bool for a float":
            p["started_at"] = True
        case "missing secret":
            del s["flow.device_code"]
        case "secret stored in the clear":
            p["flow"]["device_code"] = "DEVICE-CODE"
        case "list expected":
            p["previous"]["scope"] = "a b"
        case "not an object":
            p["flow"] = [1, 2]
    return p, s


@pytest.mark.parametrize(
    "change",
    [
        "unknown tag",
        "nested tag not allowed there",
        "unknown field",
        "missing required field",
        "wrong scalar type",
        "bool for a float",
        "missing secret",
        "secret stored in the clear",
        "list expected",
        "not an object",
    ],
)
def test_unreadable_states_are_reported_without_values(change: str) -> None:
    public, secrets = _corrupt(change)
    with pytest.raises(StoreCorruptError, match="token state is unreadable") as caught:
        codec.decode_state(public, secrets)
    for value in ("DEVICE-CODE", "ACCESS", "REFRESH"):
        assert value not in str(caught.value)


def test_dumps_is_canonical_and_strict() -> None:
    assert codec.dumps({"b": 1, "a": [1.5, None]}) == '{"a":[1.5,null],"b":1}'
    with pytest.raises(ValueError, match="Out of range float"):
        codec.dumps({"a": float("nan")})


@pytest.mark.parametrize("text", ["", "not json", "[1]", '"s"', b"\xff"])
def test_loads_object_refuses_non_objects(text: str | bytes) -> None:
    with pytest.raises(StoreCorruptError, match="the part"):
        codec.loads_object(text, "the part")


# --- settings -------------------------------------------------------------------------------------

PROVIDER = Provider(
    name="m365",
    preset=Preset.MICROSOFT,
    client_id="client-1",
    client_secret=Secret("CLIENT-SECRET"),
    flow=Flow.DEVICE,
    tenant="organizations",
    scope=("a", "b c"),
    smtp_scope=(),
)
SMTP = SmtpSetting(
    server="smtp.office365.com",
    port=587,
    security=Security.STARTTLS,
    timeout=30,
    sender_name="Printer",
    sender_address="printer@example.com",
    auth=AuthMethod.PASSWORD,
    password=Secret("SMTP-PASSWORD"),
)
POP = PopSetting(
    name="fax",
    server="outlook.office365.com",
    port=995,
    security=Security.TLS,
    check_interval=300,
    auth=AuthMethod.OAUTH2,
    deliver_to="/var/spool/fax",
    provider="m365",
    account="fax@example.com",
    password=Secret("POP-PASSWORD"),
)


def test_provider_row_round_trip() -> None:
    row = codec.provider_to_row(PROVIDER, CIPHER)
    assert row["preset"] == "microsoft"
    assert row["flow"] == "device"
    assert row["scope"] == '["a","b c"]'
    assert row["smtp_scope"] == "[]"
    assert row["pop_scope"] is None
    assert isinstance(row["client_secret"], bytes)
    assert b"CLIENT-SECRET" not in row["client_secret"]
    assert codec.provider_from_row(row, CIPHER) == PROVIDER


def test_mail_rows_round_trip() -> None:
    smtp_row = codec.smtp_to_row(SMTP, CIPHER)
    pop_row = codec.pop_to_row(POP, CIPHER)
    assert codec.smtp_from_row(smtp_row, CIPHER) == SMTP
    assert codec.pop_from_row(pop_row, CIPHER) == POP
    assert set(smtp_row) == {f.name for f in dataclasses.fields(SmtpSetting)}
    assert set(pop_row) == {f.name for f in dataclasses.fields(PopSetting)}


@pytest.mark.parametrize(
    ("blob_aad", "expected"),
    [
        (b"provider:m365", True),
        (b"provider:other", False),
        (b"smtp:password", False),
    ],
)
def test_client_secret_is_bound_to_its_provider(blob_aad: bytes, expected: bool) -> None:
    row = codec.provider_to_row(PROVIDER, CIPHER)
    row["client_secret"] = CIPHER.encrypt(b"CLIENT-SECRET", aad=blob_aad)
    if expected:
        assert codec.provider_from_row(row, CIPHER) == PROVIDER
    else:
        with pytest.raises(StoreCorruptError, match=r"provider 'm365' .*client_secret"):
            codec.provider_from_row(row, CIPHER)


def test_password_is_bound_to_its_setting() -> None:
    assert codec.mail_aad("pop:fax") == b"pop:fax:password"
    assert codec.provider_aad("m365") == b"provider:m365"
    row = codec.pop_to_row(POP, CIPHER)
    row["password"] = codec.smtp_to_row(SMTP, CIPHER)["password"]
    with pytest.raises(StoreCorruptError, match=r"setting pop:fax .*password"):
        codec.pop_from_row(row, CIPHER)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("security", "ssl"),
        ("port", "995"),
        ("server", None),
        ("password", "clear text"),
        ("name", None),
    ],
)
def test_unreadable_setting_rows(column: str, value: object) -> None:
    row = codec.pop_to_row(POP, CIPHER)
    row[column] = value
    with pytest.raises(StoreCorruptError):
        codec.pop_from_row(row, CIPHER)


@pytest.mark.parametrize("value", ["not json", '"a"', "[1]", '{"a": 1}'])
def test_unreadable_scope_column(value: str) -> None:
    row = codec.provider_to_row(PROVIDER, CIPHER)
    row["scope"] = value
    with pytest.raises(StoreCorruptError, match="scope"):
        codec.provider_from_row(row, CIPHER)


def test_pop_options_round_trip_and_read_from_sqlite_integers() -> None:
    leave = dataclasses.replace(POP, leave_on_server=True, command="lp -d 'Fax 2'")
    row = codec.pop_to_row(leave, CIPHER)
    assert (row["leave_on_server"], row["command"]) == (True, "lp -d 'Fax 2'")
    assert codec.pop_from_row(row, CIPHER) == leave
    for stored, value in ((1, True), (0, False)):  # SQLite's booleans, as sqlite3 returns them
        read = codec.pop_from_row({**row, "leave_on_server": stored}, CIPHER)
        assert read.leave_on_server is value


@pytest.mark.parametrize("value", [2, -1, "true", 1.0, None])
def test_an_unreadable_leave_on_server_column(value: object) -> None:
    row = codec.pop_to_row(POP, CIPHER)
    row["leave_on_server"] = value
    with pytest.raises(StoreCorruptError, match="leave_on_server"):
        codec.pop_from_row(row, CIPHER)


def test_alert_rows_round_trip() -> None:
    alerts = AlertSettings(
        recipients=("a@example.com", "b@example.com"),
        hook="/usr/bin/notify",
        refresh_failing_after=120,
        receive_failing_after=86400,
    )
    row = codec.alerts_to_row(alerts, CIPHER)
    assert row["recipients"] == '["a@example.com","b@example.com"]'
    assert set(row) == {f.name for f in dataclasses.fields(AlertSettings)}
    assert codec.alerts_from_row(row, CIPHER) == alerts
    empty = codec.alerts_to_row(AlertSettings(), CIPHER)
    assert (empty["recipients"], empty["hook"]) == ("[]", None)
    assert codec.alerts_from_row(empty, CIPHER) == AlertSettings()


@pytest.mark.parametrize(
    ("column", "value"),
    [("recipients", "a@example.com"), ("recipients", None), ("refresh_failing_after", "60")],
)
def test_unreadable_alert_rows(column: str, value: object) -> None:
    row = codec.alerts_to_row(AlertSettings(), CIPHER)
    row[column] = value
    with pytest.raises(StoreCorruptError, match=f"alert settings .*{column}"):
        codec.alerts_from_row(row, CIPHER)
