"""store_records.RowReader: a row read again with the same content is not decoded again; a row
changed in any column is checked again; what it remembers is bounded."""

from __future__ import annotations

import pytest

from tokenpost.adapters import store_codec as codec
from tokenpost.adapters import store_records as records
from tokenpost.adapters.crypto import Cipher
from tokenpost.adapters.store_mac import MAC_COLUMN, sealed
from tokenpost.errors import DamagedRecordError
from tokenpost.secret import Secret
from tokenpost.settings.model import AuthMethod, PopSetting, Security
from tokenpost.tokens.state import Acquired, Invalid


class CountingCipher(Cipher):
    """The store's cipher, counting the MACs it checks (one per row authenticated)."""

    checks = 0

    def mac_matches(self, message: bytes, tag: object) -> bool:
        self.checks += 1
        return super().mac_matches(message, tag)


def pop_row(cipher: Cipher, name: str) -> dict[str, object]:
    setting = PopSetting(
        name, "pop.example", 995, Security.TLS, 300, AuthMethod.PASSWORD, f"/var/mail/{name}",
        password=Secret(f"PW-{name}"),
    )  # fmt: skip
    return sealed(cipher, "pop", codec.pop_to_row(setting, cipher))


def token_row(cipher: Cipher, setting_id: str) -> dict[str, object]:
    state = Acquired(Secret("AT-" + setting_id), 2e9, 1.9e9, Secret("RT-" + setting_id))
    public, secrets = codec.encode_state(state)
    blob = cipher.encrypt(codec.dumps(secrets).encode(), aad=setting_id.encode())
    row = {"setting_id": setting_id, "state": "acquired", "public": codec.dumps(public),
           "secrets": blob, "binding": "b", "version": 1, "updated_at": 1.9e9}  # fmt: skip
    return sealed(cipher, records.TOKENS_TABLE, row)


@pytest.fixture
def cipher() -> CountingCipher:
    return CountingCipher(bytes(range(32)))


def test_rows_read_again_are_not_checked_again(cipher: CountingCipher) -> None:
    reader = records.RowReader(cipher)
    rows = [pop_row(cipher, f"box{n}") for n in range(5)]
    first = reader.intact(records.POP, rows)
    assert [p.name for p in first] == [f"box{n}" for n in range(5)]
    assert cipher.checks == 5
    again = [dict(row) for row in rows]  # new row objects, as every query returns
    assert reader.intact(records.POP, again) == first
    assert reader.damaged(records.POP, again) == []
    assert cipher.checks == 5
    tokens = [token_row(cipher, "pop:box0"), token_row(cipher, "smtp")]
    assert reader.token_records(tokens) == reader.token_records([dict(t) for t in tokens])
    assert cipher.checks == 7


@pytest.mark.parametrize(
    ("column", "value"),
    [("server", "evil.example"), ("port", 110), ("security", "none"), ("name", "other")],
)
def test_a_row_changed_after_it_was_read_is_damaged(
    cipher: CountingCipher, column: str, value: object
) -> None:
    # The changed row keeps the MAC of the row read before: the remembered answer is not used.
    reader = records.RowReader(cipher)
    row = pop_row(cipher, "fax")
    assert reader.read(records.POP, row).name == "fax"
    changed = {**row, column: value}
    with pytest.raises(DamagedRecordError, match="changed outside tokenpost"):
        reader.read(records.POP, changed)
    assert [d.record_id for d in reader.damaged(records.POP, [changed])] == [
        "pop:" + str(changed["name"])
    ]
    assert reader.read(records.POP, dict(row)).name == "fax"  # the intact row reads as before


def test_a_damaged_row_read_again_is_damaged_again(cipher: CountingCipher) -> None:
    reader = records.RowReader(cipher)
    row = {**pop_row(cipher, "fax"), MAC_COLUMN: b"\x00" * 32}
    for _ in range(2):
        with pytest.raises(DamagedRecordError, match="tokenpost pop add fax"):
            reader.read(records.POP, dict(row))
    assert reader.intact(records.POP, [row]) == []
    assert cipher.checks == 1


def test_a_changed_token_row_reads_as_invalid(cipher: CountingCipher) -> None:
    reader = records.RowReader(cipher)
    row = token_row(cipher, "pop:fax")
    assert isinstance(reader.token_record("pop:fax", row).state, Acquired)
    changed = {**row, "binding": "other"}
    record = reader.token_record("pop:fax", changed)
    assert isinstance(record.state, Invalid)
    assert record.binding == "other"
    # The same content under another setting's name is that setting's (damaged) token.
    # The same content read as another setting's token does not decrypt there: Invalid.
    assert isinstance(reader.token_record("pop:other", row).state, Invalid)
    assert isinstance(reader.token_record("pop:fax", dict(row)).state, Acquired)


def test_what_it_remembers_is_bounded(cipher: CountingCipher) -> None:
    # Rows no longer read are forgotten: after enough other rows, the first is checked again.
    reader = records.RowReader(cipher)
    first = pop_row(cipher, "first")
    reader.read(records.POP, first)
    for n in range(3 * records.MIN_TURNOVER):
        assert (
            reader.intact(records.POP, [{**first, "port": -1 - n}]) == []
        )  # remembered as damaged
    checks = cipher.checks
    reader.read(records.POP, dict(first))
    assert cipher.checks == checks + 1
