"""Rows as records, or as damage: how both stores read a row (issue 8, items 3 and 6).

A row is *damaged* when its MAC is missing or wrong (`store_mac`: changed outside tokenpost) or
when it cannot be decoded (`store_codec`: unreadable JSON, a secret that does not decrypt). One
damaged row never takes the others down:

- a settings row (provider, SMTP, POP, alerts) is left out of every listing; reading it by name
  raises DamagedRecordError, and `damaged` names it with the fix (`ports.SettingsStore`);
- a token row reads as Invalid at its stored version and binding, with the reason and the fix,
  so `token status` shows it and `token delete` / `token get` overwrite it by compare-and-set.

`SqlStore` and `SqliteReader` both read through here, so they give the same answers and the same
messages. Nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Generic, TypeVar, cast

from tokenpost.adapters import store_codec as codec
from tokenpost.adapters.crypto import Cipher
from tokenpost.adapters.store_mac import authentic
from tokenpost.errors import DamagedRecordError, StoreCorruptError
from tokenpost.ports import DamagedRecord, TokenRecord
from tokenpost.settings.model import POP_PREFIX, SMTP_ID
from tokenpost.text import Text
from tokenpost.tokens.state import Invalid, NotAcquired, TokenState

_T = TypeVar("_T")
Row = Mapping[str, Any]
TOKENS_TABLE: Final = "tokens"


class Kind(Generic[_T]):
    """One kind of settings record: its table, how a row names the record (``pop:NAME``…), how
    it is decoded, what it is called in messages, and how an administrator rewrites it.

    A plain class, not a dataclass: `token status` imports this module, and making a dataclass
    costs start-up time (bench/startup.py)."""

    __slots__ = ("decode", "fix", "label", "record_id", "table")

    def __init__(
        self,
        table: str,
        *,
        record_id: Callable[[Row], str],
        decode: Callable[[Row, Cipher], _T],
        label: Callable[[Row], Text],
        fix: Callable[[Row], Text],
    ) -> None:
        self.table = table
        self.record_id = record_id
        self.decode = decode
        self.label = label
        self.fix = fix


def _name(row: Row) -> str:
    return str(row.get("name"))


PROVIDERS: Final = Kind(
    "providers",
    record_id=lambda row: "provider:" + _name(row),
    decode=codec.provider_from_row,
    label=lambda row: Text("provider {name!r}", name=_name(row)),
    fix=lambda row: Text(
        "add it again with 'tokenpost provider add {name}' and all its options", name=_name(row)
    ),
)
SMTP: Final = Kind(
    "smtp",
    record_id=lambda row: SMTP_ID,
    decode=codec.smtp_from_row,
    label=lambda row: Text("setting {setting}", setting=SMTP_ID),
    fix=lambda row: Text("set it again with 'tokenpost smtp set' and all its options"),
)
POP: Final = Kind(
    "pop",
    record_id=lambda row: POP_PREFIX + _name(row),
    decode=codec.pop_from_row,
    label=lambda row: Text("setting {setting}", setting=POP_PREFIX + _name(row)),
    fix=lambda row: Text(
        "set it again with 'tokenpost pop add {name}' and all its options, or remove it with"
        " 'tokenpost pop remove {name}'",
        name=_name(row),
    ),
)
ALERTS: Final = Kind(
    "alerts",
    record_id=lambda row: "alerts",
    decode=codec.alerts_from_row,
    label=lambda row: Text("alert settings row"),
    fix=lambda row: Text(
        "reset them with 'tokenpost alerts clear', then set them again with 'tokenpost alerts set'"
    ),
)


def read(kind: Kind[_T], cipher: Cipher, row: Row) -> _T:
    """The record in `row`.

    Raises:
        DamagedRecordError: the row does not authenticate or cannot be decoded; the message
            names the record and the fix.
    """
    problem = _problem(cipher, kind.table, row, lambda: kind.label(row))
    if problem is None:
        try:
            return kind.decode(row, cipher)
        except StoreCorruptError as error:
            problem = error.text
    raise DamagedRecordError("{problem}; {fix}", problem=problem, fix=kind.fix(row))


def intact(kind: Kind[_T], cipher: Cipher, rows: Iterable[Row]) -> list[_T]:
    """The records of the rows that are not damaged, in the rows' order."""
    return RowReader(cipher).intact(kind, list(rows))


def damaged(kind: Kind[Any], cipher: Cipher, rows: Iterable[Row]) -> list[DamagedRecord]:
    """The damaged rows among `rows`, each with the reason and the fix, in the rows' order."""
    return RowReader(cipher).damaged(kind, list(rows))


def _problem(cipher: Cipher, table: str, row: Row, label: Callable[[], Text]) -> Text | None:
    """Why the row does not authenticate, naming it by `label()` (made only then), or None."""
    if authentic(cipher, table, row):
        return None
    return Text(
        "{what} in the store was changed outside tokenpost: it does not authenticate with the"
        " store's key",
        what=label(),
    )


class RowReader:
    """`read`, `intact`, `damaged` and `token_record` with one store key, remembering what
    each row read to: a row read again with the same content, every column (its MAC among
    them) equal, costs a dictionary lookup instead of a MAC check, a decryption and a decode.

    What a row reads to depends only on its content, its table and the key, so a remembered
    answer is the answer (DESIGN invariant 2 holds: a row changed in any column is a new
    key and is checked again). A status, or a scheduler pass after a change, of ten thousand
    settings decodes only the rows that changed. The memory is bounded: entries not looked up
    since the last two turnovers are dropped, and a turnover comes after twice the largest
    read, at least `MIN_TURNOVER` entries.
    """

    __slots__ = ("_names", "_older", "_recent", "_turnover", "cipher")

    def __init__(self, cipher: Cipher) -> None:
        self.cipher = cipher
        self._recent: dict[object, object] = {}
        self._older: dict[object, object] = {}
        # One tuple of column names per row shape (a table has one): shared by every key.
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._turnover = MIN_TURNOVER

    def read(self, kind: Kind[_T], row: Row) -> _T:
        """As the module's `read`."""
        outcome = self._recall(kind.table, row, lambda: _outcome(kind, self.cipher, row))
        if isinstance(outcome, _Damage):
            raise DamagedRecordError(outcome.text)
        return cast(_T, outcome)  # what `_outcome` returned for this kind

    def intact(self, kind: Kind[_T], rows: Sequence[Row]) -> list[_T]:
        """The records of the rows that are not damaged, in the rows' order."""
        self._expect(len(rows))
        found = []
        for row in rows:
            try:
                found.append(self.read(kind, row))
            except DamagedRecordError:
                continue
        return found

    def damaged(self, kind: Kind[Any], rows: Sequence[Row]) -> list[DamagedRecord]:
        """The damaged rows among `rows`, each with the reason and the fix, in the rows'
        order."""
        self._expect(len(rows))
        found = []
        for row in rows:
            try:
                self.read(kind, row)
            except DamagedRecordError as error:
                found.append(DamagedRecord(kind.record_id(row), error.text))
        return found

    def token_record(self, setting_id: str, row: Row | None) -> TokenRecord:
        """As the module's `token_record`."""
        if row is None:
            return token_record(self.cipher, setting_id, None)
        outcome = self._recall(
            TOKENS_TABLE + ":" + setting_id,
            row,
            lambda: token_record(self.cipher, setting_id, row),
        )
        return cast(TokenRecord, outcome)

    def token_records(self, rows: Sequence[Row]) -> list[TokenRecord]:
        """Each row of the `tokens` table, in order, as `token_record` reads it."""
        self._expect(len(rows))
        return [self.token_record(str(row["setting_id"]), row) for row in rows]

    def _expect(self, count: int) -> None:
        self._turnover = max(self._turnover, 2 * count)

    def _recall(self, table: str, row: Row, work: Callable[[], object]) -> object:
        names = tuple(row)
        names = self._names.setdefault(names, names)
        key = (table, names, tuple(row.values()))
        try:
            outcome = self._recent.get(key, _MISSING)
        except TypeError:  # a value that cannot be a key (none of our drivers returns one)
            return work()
        if outcome is _MISSING:
            outcome = self._older.pop(key, _MISSING)
            if outcome is _MISSING:
                outcome = work()
            if len(self._recent) >= self._turnover:
                self._older, self._recent = self._recent, {}
            self._recent[key] = outcome
        return outcome


MIN_TURNOVER: Final = 4096
_MISSING: Final = object()


class _Damage:
    """A remembered damaged settings row: the text its DamagedRecordError carries."""

    __slots__ = ("text",)

    def __init__(self, text: Text) -> None:
        self.text = text


def _outcome(kind: Kind[Any], cipher: Cipher, row: Row) -> object:
    try:
        return read(kind, cipher, row)
    except DamagedRecordError as error:
        return _Damage(error.text)


# --- tokens -------------------------------------------------------------------------------------


def token_record(cipher: Cipher, setting_id: str, row: Row | None) -> TokenRecord:
    """A `tokens` row as a TokenRecord; no row reads as Not acquired at version 0, and a damaged
    row as Invalid (with the reason and the fix) at its stored version and binding. Never
    raises for what the row holds."""
    if row is None:
        return TokenRecord(setting_id, NotAcquired(), binding="", version=0, updated_at=0.0)
    updated_at = _number(row.get("updated_at"))
    problem = _problem(
        cipher, TOKENS_TABLE, row, lambda: Text("token of {setting}", setting=setting_id)
    )
    state: TokenState
    if problem is None:
        try:
            state = decode_token(cipher, setting_id, row["public"], row["secrets"])
        except StoreCorruptError as error:
            problem = Text("the token of {setting}: {problem}", setting=setting_id, problem=error)
    if problem is not None:
        state = Invalid(reason=damage_reason(setting_id, problem), since=updated_at)
    return TokenRecord(
        setting_id,
        state,
        binding=str(row.get("binding")),
        version=_version(row.get("version")),
        updated_at=updated_at,
    )


def damage_reason(setting_id: str, problem: Text) -> Text:
    """The reason of a damaged token's Invalid state, with the fix (shown in the reader's
    language: `token status --lang de` shows it in German)."""
    return Text(
        "{problem}; delete the token and obtain it again: 'tokenpost token delete {setting}',"
        " then 'tokenpost token get {setting}'",
        problem=problem,
        setting=setting_id,
    )


def decode_token(cipher: Cipher, setting_id: str, public_text: Any, blob: Any) -> TokenState:
    """A token state from its row's `public` JSON and encrypted `secrets` blob.

    Raises:
        StoreCorruptError: the JSON is unreadable or the blob does not authenticate.
    """
    if not isinstance(public_text, str | bytes):
        raise StoreCorruptError("{what} in the store is not valid JSON", what=_PUBLIC)
    public = codec.loads_object(public_text, _PUBLIC)
    secrets: dict[str, Any] = {}
    if blob is not None:
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise StoreCorruptError("the encrypted part of a token is not binary data")
        plaintext = cipher.decrypt(bytes(blob), aad=setting_id.encode())
        secrets = codec.loads_object(plaintext, Text("the encrypted part"))
    return codec.decode_state(public, secrets)


_PUBLIC: Final = Text("the public part")


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return 0.0


def _version(value: object) -> int:
    # A version that is not a number (damaged) can still be overwritten: the compare-and-set
    # of version 0 inserts, which this row's primary key refuses, so the writer re-reads. The
    # stored value is kept when it is an integer, the only kind tokenpost writes.
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
