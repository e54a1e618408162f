"""How token states and settings become rows, and back (the store's only serialisation).

Token states are split in two: `public`, a JSON object with every non-secret field (state id,
expiries, user code, verification URIs, reasons, counters), and `secrets`, the revealed value of
every `Secret` keyed by its path (``access_token``, ``previous.refresh_token``,
``flow.device_code``…). The store encrypts `secrets` as one blob per row. In `public` a secret
field holds only a reference, ``{"@secret": PATH}``, and a nested state or flow holds
``{"@type": TAG, …fields}``.

Both directions walk the dataclass fields, so a field added to a state or flow dataclass is stored
without a change here; decoding follows the field's type hints and rejects anything else, and a
field missing from an older row takes the dataclass default. Settings map field by field onto
table columns of the same names (a new settings field needs a column and a migration); the alert
settings are one row the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

from tokenpost.adapters.crypto import Cipher
from tokenpost.errors import StoreCorruptError
from tokenpost.oauth.pending import BrowserPending, DevicePending
from tokenpost.secret import Secret
from tokenpost.settings.model import (
    POP_PREFIX,
    SMTP_ID,
    AlertSettings,
    PopSetting,
    Provider,
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

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = dict[str, JsonValue]

TYPE_KEY: Final = "@type"
SECRET_KEY: Final = "@secret"  # noqa: S105 - a JSON key naming a reference, not a secret

# Stable tags: they are written to the store. The four states use their StateId values.
STATE_TAGS: Final[Mapping[type, str]] = {
    NotAcquired: "not_acquired",
    WaitingForAuthorization: "waiting_for_authorization",
    Acquired: "acquired",
    Invalid: "invalid",
    DevicePending: "device",
    BrowserPending: "browser",
}
_CLASS_BY_TAG: Final = {tag: cls for cls, tag in STATE_TAGS.items()}
_TOP_LEVEL: Final = (NotAcquired, WaitingForAuthorization, Acquired, Invalid)

_T = TypeVar("_T")


class _Mismatch(Exception):
    """A stored value does not fit a type hint; the text names the field, never the value."""

    def __init__(self, text: Text) -> None:
        super().__init__(str(text))
        self.text = text


# --- token states -------------------------------------------------------------------------------


def encode_state(state: TokenState) -> tuple[JsonObject, dict[str, str]]:
    """Split `state` into its public JSON object and its revealed secrets (path → value)."""
    secrets: dict[str, str] = {}
    public = _encode_dataclass(state, "", secrets)
    return public, secrets


def decode_state(public: Mapping[str, Any], secrets: Mapping[str, str]) -> TokenState:
    """Rebuild a state from `encode_state`'s output.

    Raises:
        StoreCorruptError: unknown tag or field, a value of the wrong type, or a missing secret.
    """
    try:
        state = _decode_dataclass(public, _TOP_LEVEL, secrets, "state")
    except _Mismatch as exc:
        raise StoreCorruptError(
            "a stored token state is unreadable: {problem}", problem=exc.text
        ) from None
    if not isinstance(state, _TOP_LEVEL):  # unreachable: _decode_dataclass checked the tag
        raise StoreCorruptError("a stored token state has an unexpected type")
    return state


def dumps(value: JsonObject | Mapping[str, str]) -> str:
    """Canonical JSON text for a column (sorted keys, no NaN)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def loads_object(text: str | bytes, what: Text) -> dict[str, Any]:
    """Parse a JSON object read from the store.

    Raises:
        StoreCorruptError: not JSON, or not an object.
    """
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise StoreCorruptError("{what} in the store is not valid JSON", what=what) from None
    if not isinstance(value, dict):
        raise StoreCorruptError("{what} in the store is not a JSON object", what=what)
    return value


def _encode_dataclass(value: DataclassInstance, path: str, secrets: dict[str, str]) -> JsonObject:
    tag = STATE_TAGS.get(type(value))
    if tag is None:
        raise TypeError(f"{type(value).__name__} is not a token state or flow")
    encoded: JsonObject = {TYPE_KEY: tag}
    for field in dataclasses.fields(value):
        field_path = f"{path}.{field.name}" if path else field.name
        encoded[field.name] = _encode_value(getattr(value, field.name), field_path, secrets)
    return encoded


def _encode_value(value: object, path: str, secrets: dict[str, str]) -> JsonValue:
    if isinstance(value, Secret):
        secrets[path] = value.reveal()
        return {SECRET_KEY: path}
    if isinstance(value, Text):
        encoded: JsonValue = value.to_json()
        return encoded
    if isinstance(value, StrEnum):
        return value.value
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, tuple):
        return [_encode_value(item, f"{path}[{i}]", secrets) for i, item in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dataclass(value, path, secrets)
    raise TypeError(f"field {path} has a type the store cannot encode: {type(value).__name__}")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Resolved field type hints (the dataclasses use postponed annotations)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


# A decoder turns a stored JSON value into a field's value, or raises _Mismatch naming `where`.
_Decoder: TypeAlias = Callable[[object, Mapping[str, str], str], object]
_DECODERS: dict[Any, _Decoder] = {}
_FIELDS: dict[type, tuple[frozenset[str], tuple[tuple[str, _Decoder], ...]]] = {}


def _decoder(hint: Any) -> _Decoder:
    """The decoder of a type hint, worked out once per hint (a status decodes every token)."""
    found = _DECODERS.get(hint)
    if found is None:
        found = _DECODERS[hint] = _make_decoder(hint)
    return found


def _make_decoder(hint: Any) -> _Decoder:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return _union_decoder(typing.get_args(hint))
    if hint is Secret:
        return _decode_secret
    if hint is Text:
        return lambda raw, secrets, where: _decode_text(raw, where)
    if origin is tuple:
        item_hint, ellipsis = typing.get_args(hint)
        return _tuple_decoder(_decoder(item_hint), is_tuple=ellipsis is Ellipsis)
    if hint in _CLASS_BY_TAG.values():
        return lambda raw, secrets, where: _decode_dataclass(raw, (hint,), secrets, where)
    return _scalar_decoder(hint)


def _scalar_decoder(hint: Any) -> _Decoder:
    if hint not in (float, int, str):
        return lambda raw, secrets, where: _decode_scalar(raw, hint, where)

    def scalar(raw: object, secrets: Mapping[str, str], where: str) -> object:
        return raw if type(raw) is hint else _decode_scalar(raw, hint, where)

    return scalar


def _union_decoder(arms: tuple[Any, ...]) -> _Decoder:
    nullable = types.NoneType in arms
    decoders = tuple(_decoder(arm) for arm in arms if arm is not types.NoneType)

    def union(raw: object, secrets: Mapping[str, str], where: str) -> object:
        if raw is None and nullable:
            return None
        for decode in decoders:
            try:
                return decode(raw, secrets, where)
            except _Mismatch:
                continue
        raise _Mismatch(Text("{where}: value fits none of the expected types", where=where))

    return union


def _tuple_decoder(item: _Decoder, *, is_tuple: bool) -> _Decoder:
    def items(raw: object, secrets: Mapping[str, str], where: str) -> object:
        if not is_tuple or not isinstance(raw, list):
            raise _Mismatch(Text("{where}: expected a list", where=where))
        return tuple(item(value, secrets, f"{where}[]") for value in raw)

    return items


def _fields(cls: type) -> tuple[frozenset[str], tuple[tuple[str, _Decoder], ...]]:
    """The keys a stored `cls` may hold, and each field's name and decoder."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = _hints(cls)
        fields = tuple((name, _decoder(hint)) for name, hint in hints.items())
        found = _FIELDS[cls] = (frozenset(hints) | {TYPE_KEY}, fields)
    return found


def _decode_dataclass(
    raw: object, allowed: tuple[type, ...], secrets: Mapping[str, str], where: str
) -> object:
    if not isinstance(raw, dict):
        raise _Mismatch(Text("{where}: expected an object", where=where))
    tag = raw.get(TYPE_KEY)
    cls = _CLASS_BY_TAG.get(tag) if isinstance(tag, str) else None
    if cls is None or cls not in allowed:
        raise _Mismatch(Text("{where}: unexpected type tag", where=where))
    known, fields = _fields(cls)
    if not known.issuperset(raw):
        unknown = set(raw) - known
        raise _Mismatch(
            Text("{where}: unknown fields {fields}", where=where, fields=", ".join(sorted(unknown)))
        )
    kwargs = {
        name: decode(raw[name], secrets, f"{where}.{name}")
        for name, decode in fields
        if name in raw
    }
    try:
        return cls(**kwargs)
    except TypeError:
        raise _Mismatch(Text("{where}: required fields are missing", where=where)) from None


def _decode_secret(raw: object, secrets: Mapping[str, str], where: str) -> Secret:
    if not isinstance(raw, dict) or set(raw) != {SECRET_KEY}:
        raise _Mismatch(Text("{where}: expected a secret reference", where=where))
    value = secrets.get(raw[SECRET_KEY])
    if not isinstance(value, str):
        raise _Mismatch(
            Text("{where}: the encrypted part of the row lacks this secret", where=where)
        )
    return Secret(value)


def _decode_text(raw: object, where: str) -> Text:
    """A stored `Text`; a plain string (rows written before texts were stored) is shown as it is."""
    if isinstance(raw, str):
        return Text.verbatim(raw)
    if not Text.is_json(raw):
        raise _Mismatch(Text("{where}: expected a text", where=where))
    try:
        return Text.from_json(typing.cast(Mapping[str, Any], raw))
    except (TypeError, ValueError):
        raise _Mismatch(Text("{where}: not a readable text", where=where)) from None


def _decode_scalar(raw: object, hint: Any, where: str) -> object:
    if hint is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if hint is int and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if hint is str and isinstance(raw, str):
        return raw
    if hint is bool and isinstance(raw, bool):
        return raw
    if isinstance(hint, type) and issubclass(hint, StrEnum) and isinstance(raw, str):
        try:
            return hint(raw)
        except ValueError:
            raise _Mismatch(
                Text("{where}: not a known {kind}", where=where, kind=hint.__name__)
            ) from None
    if hint in (float, int, str, bool) or isinstance(hint, type):
        kind = getattr(hint, "__name__", str(hint))
        raise _Mismatch(Text("{where}: expected a value of type {kind}", where=where, kind=kind))
    raise TypeError(f"{where}: the store cannot decode fields of type {hint!r}")


# --- settings -----------------------------------------------------------------------------------

Row: TypeAlias = dict[str, object]
_AadFor: TypeAlias = Callable[[str], bytes]


def provider_aad(name: str, field: str = "client_secret") -> bytes:
    """Associated data for a provider's secret: ``provider:NAME`` (other fields get a suffix)."""
    suffix = "" if field == "client_secret" else f":{field}"
    return f"provider:{name}{suffix}".encode()


def mail_aad(setting_id: str, field: str = "password") -> bytes:
    """Associated data for a mail setting's secret: ``SETTING_ID:password``."""
    return f"{setting_id}:{field}".encode()


def provider_to_row(provider: Provider, cipher: Cipher) -> Row:
    return _settings_to_row(provider, cipher, functools.partial(provider_aad, provider.name))


def provider_from_row(row: Mapping[Any, Any], cipher: Cipher) -> Provider:
    name = _row_key(row, "name", lambda: Text("a provider"))
    aad = functools.partial(provider_aad, name)
    return _settings_from_row(
        Provider, row, cipher, aad, lambda: Text("provider {name!r}", name=name)
    )


def smtp_to_row(setting: SmtpSetting, cipher: Cipher) -> Row:
    return _settings_to_row(setting, cipher, functools.partial(mail_aad, setting.setting_id))


def smtp_from_row(row: Mapping[Any, Any], cipher: Cipher) -> SmtpSetting:
    aad = functools.partial(mail_aad, SMTP_ID)
    return _settings_from_row(
        SmtpSetting, row, cipher, aad, lambda: Text("setting {setting}", setting=SMTP_ID)
    )


def pop_to_row(setting: PopSetting, cipher: Cipher) -> Row:
    return _settings_to_row(setting, cipher, functools.partial(mail_aad, setting.setting_id))


def pop_from_row(row: Mapping[Any, Any], cipher: Cipher) -> PopSetting:
    setting_id = POP_PREFIX + _row_key(row, "name", lambda: Text("a POP setting"))
    aad = functools.partial(mail_aad, setting_id)
    return _settings_from_row(
        PopSetting, row, cipher, aad, lambda: Text("setting {setting}", setting=setting_id)
    )


def alerts_to_row(alerts: AlertSettings, cipher: Cipher) -> Row:
    return _settings_to_row(alerts, cipher, _alerts_aad)


def alerts_from_row(row: Mapping[Any, Any], cipher: Cipher) -> AlertSettings:
    return _settings_from_row(
        AlertSettings, row, cipher, _alerts_aad, lambda: Text("alert settings row")
    )


def _alerts_aad(field: str) -> bytes:
    return f"alerts:{field}".encode()  # binds a Secret field to this row, as for the others


def _row_key(row: Mapping[Any, Any], column: str, what: Callable[[], Text]) -> str:
    value = row.get(column)
    if not isinstance(value, str):
        raise StoreCorruptError("{what} in the store has no {column}", what=what(), column=column)
    return value


def _settings_to_row(
    value: Provider | SmtpSetting | PopSetting | AlertSettings, cipher: Cipher, aad: _AadFor
) -> Row:
    row: Row = {}
    for field in dataclasses.fields(value):
        item = getattr(value, field.name)
        if isinstance(item, Secret):
            row[field.name] = cipher.encrypt(item.reveal().encode(), aad=aad(field.name))
        elif isinstance(item, tuple):
            row[field.name] = _dumps_list(item)
        elif isinstance(item, StrEnum):
            row[field.name] = item.value
        else:
            row[field.name] = item
    return row


def _dumps_list(items: tuple[str, ...]) -> str:
    return json.dumps(list(items), separators=(",", ":"))


def _settings_from_row(
    cls: type[_T], row: Mapping[Any, Any], cipher: Cipher, aad: _AadFor, label: Callable[[], Text]
) -> _T:
    """A settings record from its row; `label()` names it in an error (made only then)."""
    kwargs: dict[str, object] = {}
    for name, arm, nullable in _columns(cls):
        raw = row.get(name)
        if type(raw) is arm:  # the common case: a plain str, int or float column, as stored
            kwargs[name] = raw
            continue
        try:
            kwargs[name] = _column_value(raw, arm, nullable, cipher, aad=aad, where=name)
        except _Mismatch as exc:
            raise StoreCorruptError(
                "{what} in the store is unreadable: {problem}", what=label(), problem=exc.text
            ) from None
    return cls(**kwargs)


_COLUMNS: dict[type, tuple[tuple[str, Any, bool], ...]] = {}


def _columns(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """Per field of a settings class: its column name, its one non-None type, and whether it
    may be NULL (settings fields are ``T`` or ``T | None``). Worked out once per class: a status
    of ten thousand settings decodes each row's columns with these."""
    columns = _COLUMNS.get(cls)
    if columns is None:
        found = []
        for name, hint in _hints(cls).items():
            union = typing.get_origin(hint) is types.UnionType
            arms = typing.get_args(hint) if union else (hint,)
            arm = next(a for a in arms if a is not types.NoneType)
            found.append((name, arm, types.NoneType in arms))
        columns = _COLUMNS[cls] = tuple(found)
    return columns


def _column_value(
    raw: object, arm: Any, nullable: bool, cipher: Cipher, *, aad: _AadFor, where: str
) -> object:
    if raw is None:
        if nullable:
            return None
        raise _Mismatch(Text("{where}: missing", where=where))
    if arm is Secret:
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise _Mismatch(Text("{where}: expected an encrypted value", where=where))
        try:
            return Secret(cipher.decrypt(bytes(raw), aad=aad(where)).decode())
        except (StoreCorruptError, UnicodeDecodeError):
            raise _Mismatch(
                Text(
                    "{where}: the encrypted value does not authenticate (altered, moved from"
                    " another row, or written with another key)",
                    where=where,
                )
            ) from None
    if typing.get_origin(arm) is tuple:
        try:
            items = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise _Mismatch(Text("{where}: expected a JSON list of strings", where=where))
        return tuple(items)
    if arm is bool and type(raw) is int and raw in (0, 1):
        return bool(raw)  # SQLite keeps booleans as 0 and 1; the stdlib reader sees those
    return _decode_scalar(raw, arm, where)
