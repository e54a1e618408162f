"""Web account and API token rows as records, or as damage (`store_records`'s rules).

A row whose MAC does not authenticate (a viewer's role changed to administrator, a password hash
or token digest replaced, a row renamed) or whose columns cannot be read is damaged: it is left
out of every listing and never signs anyone in. Removing it works as for an intact one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tokenpost.account_ports import AccountRecord, ApiTokenRecord
from tokenpost.accounts import Account, ApiTokenInfo, Role
from tokenpost.adapters.crypto import Cipher
from tokenpost.adapters.store_records import Kind
from tokenpost.errors import StoreCorruptError
from tokenpost.text import Text

WEB_ACCOUNTS_TABLE: Final = "web_accounts"
API_TOKENS_TABLE: Final = "api_tokens"


def account_to_row(account: Account, password_hash: str) -> dict[str, object]:
    return {
        "name": account.name,
        "role": account.role.value,
        "password_hash": password_hash,
        "created_at": account.created_at,
    }


def api_token_to_row(info: ApiTokenInfo, digest: str) -> dict[str, object]:
    return {
        "name": info.name,
        "role": info.role.value,
        "digest": digest,
        "created_at": info.created_at,
    }


def _account_from_row(row: Mapping[str, Any], cipher: Cipher) -> AccountRecord:
    what = Text("web account {name!r}", name=_name(row))
    account = Account(_text(row, "name", what), _role(row, what), _time(row, what))
    return AccountRecord(account, _text(row, "password_hash", what))


def _api_token_from_row(row: Mapping[str, Any], cipher: Cipher) -> ApiTokenRecord:
    what = Text("API token {name!r}", name=_name(row))
    info = ApiTokenInfo(_text(row, "name", what), _role(row, what), _time(row, what))
    return ApiTokenRecord(info, _text(row, "digest", what))


def _name(row: Mapping[str, Any]) -> str:
    return str(row.get("name"))


def _text(row: Mapping[str, Any], column: str, what: Text) -> str:
    value = row.get(column)
    if not isinstance(value, str) or not value:
        raise StoreCorruptError("{what} in the store has no {column}", what=what, column=column)
    return value


def _role(row: Mapping[str, Any], what: Text) -> Role:
    try:
        return Role(str(row.get("role")))
    except ValueError:
        raise StoreCorruptError("{what} in the store has no known role", what=what) from None


def _time(row: Mapping[str, Any], what: Text) -> float:
    value = row.get("created_at")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise StoreCorruptError("{what} in the store has no {column}", what=what, column="created_at")


ACCOUNTS: Final = Kind(
    WEB_ACCOUNTS_TABLE,
    record_id=lambda row: "account:" + _name(row),
    decode=_account_from_row,
    label=lambda row: Text("web account {name!r}", name=_name(row)),
    fix=lambda row: Text(
        "remove it with 'tokenpost admin remove {name}', then add it again with"
        " 'tokenpost admin add {name}'",
        name=_name(row),
    ),
)
API_TOKENS: Final = Kind(
    API_TOKENS_TABLE,
    record_id=lambda row: "api_token:" + _name(row),
    decode=_api_token_from_row,
    label=lambda row: Text("API token {name!r}", name=_name(row)),
    fix=lambda row: Text(
        "revoke it with 'tokenpost admin token revoke {name}' and create a new one",
        name=_name(row),
    ),
)
