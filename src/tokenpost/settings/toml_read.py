"""Reading a settings document from TOML (the stdlib `tomllib`), strictly.

Every problem is reported at once: TOML syntax (with its position, never the text), unknown keys,
wrong types, missing keys, and then the rules of `settings.validate` for every item that could be
read. Keys that a newer tokenpost added with a default (a POP setting's `leave_on_server` and
`command`, everything in `[alerts]`) may be left out, so older files still import.

The text must be bounded by the caller (the CLI reads at most `MAX_DOCUMENT_BYTES`): `tomllib`
holds it whole. Nesting deeper than the parser's recursion allows is reported as a problem like
any other, never as a RecursionError.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Final, TypeVar

from tokenpost.errors import FieldProblem
from tokenpost.secret import Secret
from tokenpost.settings.document import ConfigDocument, item_problems, raise_if
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
from tokenpost.text import N_, Text

MAX_DOCUMENT_BYTES: Final = 1024 * 1024  # a settings file is a few KiB; this is plenty
_TOML_POSITION: Final = re.compile(r"\((?:at line (\d+), column (\d+)|at end of document)\)")
_PLAIN_MESSAGE: Final = re.compile(r"[A-Za-z ]+")
_TOP_LEVEL: Final = frozenset({"providers", "smtp", "pop", "alerts"})
_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


def parse_toml(
    text: str, *, known_providers: Mapping[str, Provider] | None = None
) -> ConfigDocument:
    """Read a settings document and check it, reporting every problem at once.

    Settings may use providers of the document or of `known_providers` (the stored ones); the
    document's win. Missing secrets are not problems here: merge the stored ones with
    `merge_secrets`, then call `validate_document`.

    Raises:
        ValidationError: the text is not TOML (the problem names the line), a key is unknown or
            of the wrong type, or a setting breaks a rule of `settings.validate`.
    """
    doc, problems = read_document(text, known_providers=known_providers)
    raise_if(problems)
    return doc


def read_document(
    text: str, *, known_providers: Mapping[str, Provider] | None = None
) -> tuple[ConfigDocument, tuple[FieldProblem, ...]]:
    """The items of a settings document that could be read cleanly, and every problem found
    (as `parse_toml` reports them), so a caller can add problems of its own before raising."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return ConfigDocument(), (FieldProblem("toml", _decode_rule(exc)),)
    except RecursionError:
        return ConfigDocument(), (FieldProblem("toml", _TOO_DEEP),)
    problems: list[FieldProblem] = []
    providers = _read_named(data, "providers", _read_provider, problems)
    smtp = _read_single(data, "smtp", _read_smtp, problems)
    pops = _read_named(data, "pop", _read_pop, problems)
    alerts = _read_single(data, "alerts", _read_alerts, problems)
    problems += [FieldProblem(key, N_("unknown key")) for key in data if key not in _TOP_LEVEL]
    # Items that could not be read are reported above; checking their placeholders adds noise.
    readable = ConfigDocument(
        providers=tuple(p for p, ok in providers if ok),
        smtp=smtp[0] if smtp is not None and smtp[1] else None,
        pop=tuple(p for p, ok in pops if ok),
        alerts=alerts[0] if alerts is not None and alerts[1] else None,
    )
    lookup = {**(known_providers or {}), **{p.name: p for p, _ in providers}}
    problems += item_problems(readable, lookup, require_secrets=False)
    return readable, tuple(problems)


_TOO_DEEP: Final = N_("nested too deeply (arrays or inline tables inside each other)")


def _decode_rule(exc: tomllib.TOMLDecodeError) -> Text:
    # tomllib quotes offending characters, which may be part of a password: keep only messages
    # made of plain words (tomllib's English, shown as it is), and always the position.
    message = str(exc)
    position = _TOML_POSITION.search(message)
    head = message[: position.start()].strip() if position else message
    reason = Text.verbatim(head) if _PLAIN_MESSAGE.fullmatch(head) else Text("Invalid TOML")
    if position is None:
        return reason
    if position.group(1) is None:
        return Text("{reason} (at end of document)", reason=reason)
    return Text(
        "{reason} (at line {line}, column {column})",
        reason=reason,
        line=int(position.group(1)),
        column=int(position.group(2)),
    )


class _TableReader:
    """Reads one TOML table into typed values, noting each problem under the table's path.

    A missing or mistyped key gives a placeholder value and a problem; `finish` reports the keys
    nobody asked for and says whether the table was read cleanly.
    """

    def __init__(self, table: Mapping[str, object], path: str, problems: list[FieldProblem]):
        self._table = table
        self._path = path
        self._problems = problems
        self._asked: set[str] = set()
        self._clean = True

    def text(self, key: str) -> str:
        value = None if self._missing(key) else self.optional_text(key)
        return "" if value is None else value

    def optional_text(self, key: str) -> str | None:
        value = self._get(key)
        if value is None or isinstance(value, str):
            return value
        return self._fail(key, N_("must be a string"), None)

    def integer(self, key: str) -> int:
        return 0 if self._missing(key) else self.optional_integer(key, 0)

    def optional_integer(self, key: str, default: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return self._fail(key, N_("must be an integer"), default)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        return self._fail(key, N_("must be true or false"), default)

    def choice(self, key: str, kind: type[_E]) -> _E:
        value = None if self._missing(key) else self.optional_choice(key, kind)
        return next(iter(kind)) if value is None else value

    def optional_choice(self, key: str, kind: type[_E]) -> _E | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, str) and value in kind._value2member_map_:
            return kind(value)
        choices = ", ".join(m.value for m in kind)
        return self._fail(key, Text("must be one of {choices}", choices=choices), None)

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return self._fail(key, N_("must be a list of strings"), None)

    def secret(self, key: str) -> Secret | None:
        value = self.optional_text(key)
        return None if value is None else Secret(value)

    def finish(self) -> bool:
        for key in self._table:
            if key not in self._asked:
                self._fail(key, N_("unknown key"), None)
        return self._clean

    def _get(self, key: str) -> object | None:
        self._asked.add(key)
        return self._table.get(key)

    def _missing(self, key: str) -> bool:
        if key in self._table:
            return False
        self._asked.add(key)
        self._fail(key, N_("required"), None)
        return True

    def _fail(self, key: str, rule: str | Text, placeholder: _T) -> _T:
        # Rules never quote the value: it may be a password.
        self._problems.append(FieldProblem(f"{self._path}.{key}", rule))
        self._clean = False
        return placeholder


_Read = Callable[[str, _TableReader], _T]


def _read_named(
    data: Mapping[str, object], group: str, read: _Read[_T], problems: list[FieldProblem]
) -> list[tuple[_T, bool]]:
    tables = data.get(group, {})
    if not isinstance(tables, dict):
        problems.append(FieldProblem(group, N_("must be a table")))
        return []
    found = (_read_table(t, f"{group}.{n}", n, read, problems) for n, t in tables.items())
    return [item for item in found if item is not None]


def _read_single(
    data: Mapping[str, object], key: str, read: _Read[_T], problems: list[FieldProblem]
) -> tuple[_T, bool] | None:
    return None if key not in data else _read_table(data[key], key, "", read, problems)


def _read_table(
    table: object, path: str, name: str, read: _Read[_T], problems: list[FieldProblem]
) -> tuple[_T, bool] | None:
    """The item and whether it was read cleanly; None when `table` is not a table."""
    if not isinstance(table, dict):
        problems.append(FieldProblem(path, N_("must be a table")))
        return None
    reader = _TableReader(table, path, problems)
    item = read(name, reader)
    return item, reader.finish()


def _read_smtp(_: str, r: _TableReader) -> SmtpSetting:
    return SmtpSetting(
        server=r.text("server"),
        port=r.integer("port"),
        security=r.choice("security", Security),
        timeout=r.integer("timeout"),
        sender_name=r.text("sender_name"),
        sender_address=r.text("sender_address"),
        auth=r.choice("auth", AuthMethod),
        provider=r.optional_text("provider"),
        account=r.optional_text("account"),
        password=r.secret("password"),
        ca_file=r.optional_text("ca_file"),
    )


def _read_provider(name: str, r: _TableReader) -> Provider:
    return Provider(
        name=name,
        preset=r.choice("preset", Preset),
        client_id=r.text("client_id"),
        client_secret=r.secret("client_secret"),
        flow=r.optional_choice("flow", Flow),
        tenant=r.optional_text("tenant"),
        issuer=r.optional_text("issuer"),
        authorization_endpoint=r.optional_text("authorization_endpoint"),
        token_endpoint=r.optional_text("token_endpoint"),
        device_authorization_endpoint=r.optional_text("device_authorization_endpoint"),
        revocation_endpoint=r.optional_text("revocation_endpoint"),
        scope=r.strings("scope"),
        smtp_scope=r.strings("smtp_scope"),
        pop_scope=r.strings("pop_scope"),
        ca_file=r.optional_text("ca_file"),
        redirect_uri=r.optional_text("redirect_uri"),
        proxy=r.optional_text("proxy"),
    )


def _read_pop(name: str, r: _TableReader) -> PopSetting:
    return PopSetting(
        name=name,
        server=r.text("server"),
        port=r.integer("port"),
        security=r.choice("security", Security),
        check_interval=r.integer("check_interval"),
        auth=r.choice("auth", AuthMethod),
        deliver_to=r.text("deliver_to"),
        provider=r.optional_text("provider"),
        account=r.optional_text("account"),
        password=r.secret("password"),
        ca_file=r.optional_text("ca_file"),
        leave_on_server=r.boolean("leave_on_server", False),
        command=r.optional_text("command"),
    )


def _read_alerts(_: str, r: _TableReader) -> AlertSettings:
    default = AlertSettings()
    return AlertSettings(
        recipients=r.strings("recipients") or default.recipients,
        hook=r.optional_text("hook"),
        refresh_failing_after=r.optional_integer(
            "refresh_failing_after", default.refresh_failing_after
        ),
        receive_failing_after=r.optional_integer(
            "receive_failing_after", default.receive_failing_after
        ),
    )
