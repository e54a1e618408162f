"""Settings as a TOML document, for version control: export, parse, and keep stored secrets.

The document has the tables ``[providers.<name>]``, ``[smtp]`` and ``[pop.<name>]``; keys are the
CLI options with ``_`` for ``-``. We write TOML v1.0.0 ourselves (basic strings, §"String"; quoted
keys, §"Keys") and read it with the stdlib `tomllib`. Secrets are left out unless asked for, so
export → edit → `parse_toml` → `merge_secrets` → `validate_document` keeps stored passwords.

Every problem of a document is reported at once, its field named by its path in the document
("smtp.port", "providers.m365.client_id", "pop.fax.check_interval").
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Final, TypeVar

from tokenpost.errors import FieldProblem, ValidationError
from tokenpost.secret import Secret
from tokenpost.settings.model import (
    AuthMethod,
    Flow,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
)
from tokenpost.settings.validate import pop_problems, provider_problems, smtp_problems

SUBJECT: Final = "settings file"
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
# TOML's short escapes; every other character that needs one gets \uXXXX.
_ESCAPES: Final = {ch: "\\" + e for ch, e in zip('"\\\b\t\n\f\r', '"\\btnfr', strict=True)}
# Control, format (bidi overrides, zero-width) and line/paragraph separators are written as \u
# escapes so a reviewer sees every character that is there.
_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})
_HEADER: Final = (
    "# tokenpost settings: providers, the SMTP setting and the POP settings.",
    "# Keys are the command-line options with '_' for '-'; durations are in seconds.",
)
_NO_SECRETS: Final = (
    "# Secrets (client_secret, password) are left out; importing keeps the stored ones.",
)
_SECRETS_WARNING: Final = (
    "# WARNING: this file contains secrets (client_secret, password) in clear text.",
    "# Keep it out of shared version control and readable by administrators only.",
)
_TOML_POSITION: Final = re.compile(r"\((at line \d+, column \d+|at end of document)\)")
_PLAIN_MESSAGE: Final = re.compile(r"[A-Za-z ]+")
_TOP_LEVEL: Final = frozenset({"providers", "smtp", "pop"})
_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    """Everything an administrator edits: providers, the SMTP setting, the POP settings."""

    providers: tuple[Provider, ...] = ()
    smtp: SmtpSetting | None = None
    pop: tuple[PopSetting, ...] = ()


# -- export ---------------------------------------------------------------------------------------


def export_toml(doc: ConfigDocument, *, include_secrets: bool = False) -> str:
    """The document as TOML: items sorted by name, keys in model order, a header comment.

    The same document always gives the same text. Secrets are written only with
    `include_secrets`, and then the header says so.

    Raises:
        ValidationError: two items share a name, or a string is not valid Unicode (a lone
            surrogate from an undecodable path): TOML cannot hold either.
    """
    _raise_if(_duplicate_problems(doc), subject=SUBJECT)
    lines = [*_HEADER, *(_SECRETS_WARNING if include_secrets else _NO_SECRETS)]
    for provider in sorted(doc.providers, key=lambda p: p.name):
        path = f"providers.{provider.name}"
        lines += ["", f"[providers.{_key(provider.name)}]"]
        lines += _pairs(provider, path, include_secrets=include_secrets)
    if doc.smtp is not None:
        lines += ["", "[smtp]", *_pairs(doc.smtp, "smtp", include_secrets=include_secrets)]
    for pop in sorted(doc.pop, key=lambda p: p.name):
        lines += ["", f"[pop.{_key(pop.name)}]"]
        lines += _pairs(pop, f"pop.{pop.name}", include_secrets=include_secrets)
    return "\n".join(lines) + "\n"


def _pairs(
    item: Provider | SmtpSetting | PopSetting, path: str, *, include_secrets: bool
) -> list[str]:
    pairs = []
    for field in fields(item):
        value = getattr(item, field.name)
        if field.name == "name" or value is None:
            continue  # the name is the table key
        if isinstance(value, Secret):
            if not include_secrets:
                continue
            value = value.reveal()  # into the file the administrator asked for
        pairs.append(f"{field.name} = {_value(value, f'{path}.{field.name}')}")
    return pairs


def _value(value: object, path: str) -> str:
    if isinstance(value, str):  # StrEnums too: their value is the string
        return _string(value, path)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(_string(v, path) for v in value) + "]"
    raise TypeError(f"{path}: no TOML form for {type(value).__name__}")


def _string(text: str, path: str) -> str:
    """A TOML basic string; every character round-trips through tomllib."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        problem = FieldProblem(path, "is not valid Unicode text, so TOML cannot hold it")
        raise ValidationError([problem], subject=SUBJECT) from None
    return '"' + "".join(_escape(ch) for ch in text) + '"'


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if unicodedata.category(ch) in _ESCAPED_CATEGORIES:
        code = ord(ch)
        return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"
    return ch


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _string(name, name)


# -- parse ----------------------------------------------------------------------------------------


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
    data = _load(text)
    problems: list[FieldProblem] = []
    providers = _read_named(data, "providers", _read_provider, problems)
    smtp = (
        None if "smtp" not in data else _read_table(data["smtp"], "smtp", "", _read_smtp, problems)
    )
    pops = _read_named(data, "pop", _read_pop, problems)
    problems += [FieldProblem(key, "unknown key") for key in data if key not in _TOP_LEVEL]
    # Items that could not be read are reported above; checking their placeholders adds noise.
    readable = ConfigDocument(
        providers=tuple(p for p, ok in providers if ok),
        smtp=smtp[0] if smtp is not None and smtp[1] else None,
        pop=tuple(p for p, ok in pops if ok),
    )
    lookup = {**(known_providers or {}), **{p.name: p for p, _ in providers}}
    problems += _item_problems(readable, lookup, require_secrets=False)
    _raise_if(problems, subject=SUBJECT)
    return readable


def _load(text: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError([FieldProblem("toml", _decode_rule(exc))], subject=SUBJECT) from None


def _decode_rule(exc: tomllib.TOMLDecodeError) -> str:
    # tomllib quotes offending characters, which may be part of a password: keep only messages
    # made of plain words, and always the position.
    message = str(exc)
    position = _TOML_POSITION.search(message)
    head = message[: position.start()].strip() if position else message
    reason = head if _PLAIN_MESSAGE.fullmatch(head) else "Invalid TOML"
    return f"{reason} ({position.group(1)})" if position else reason


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
        return self._fail(key, "must be a string", None)

    def integer(self, key: str) -> int:
        if self._missing(key):
            return 0
        value = self._get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return self._fail(key, "must be an integer", 0)

    def choice(self, key: str, kind: type[_E]) -> _E:
        value = None if self._missing(key) else self.optional_choice(key, kind)
        return next(iter(kind)) if value is None else value

    def optional_choice(self, key: str, kind: type[_E]) -> _E | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, str) and value in kind._value2member_map_:
            return kind(value)
        return self._fail(key, "must be one of " + ", ".join(m.value for m in kind), None)

    def scope(self, key: str) -> tuple[str, ...] | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return self._fail(key, "must be a list of strings", None)

    def secret(self, key: str) -> Secret | None:
        value = self.optional_text(key)
        return None if value is None else Secret(value)

    def finish(self) -> bool:
        for key in self._table:
            if key not in self._asked:
                self._fail(key, "unknown key", None)
        return self._clean

    def _get(self, key: str) -> object | None:
        self._asked.add(key)
        return self._table.get(key)

    def _missing(self, key: str) -> bool:
        if key in self._table:
            return False
        self._asked.add(key)
        self._fail(key, "required", None)
        return True

    def _fail(self, key: str, rule: str, placeholder: _T) -> _T:
        # Rules never quote the value: it may be a password.
        self._problems.append(FieldProblem(f"{self._path}.{key}", rule))
        self._clean = False
        return placeholder


def _read_named(
    data: Mapping[str, object],
    group: str,
    read: Callable[[str, _TableReader], _T],
    problems: list[FieldProblem],
) -> list[tuple[_T, bool]]:
    tables = data.get(group, {})
    if not isinstance(tables, dict):
        problems.append(FieldProblem(group, "must be a table"))
        return []
    found = (_read_table(t, f"{group}.{n}", n, read, problems) for n, t in tables.items())
    return [item for item in found if item is not None]


def _read_table(
    table: object,
    path: str,
    name: str,
    read: Callable[[str, _TableReader], _T],
    problems: list[FieldProblem],
) -> tuple[_T, bool] | None:
    """The item and whether it was read cleanly; None when `table` is not a table."""
    if not isinstance(table, dict):
        problems.append(FieldProblem(path, "must be a table"))
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
        scope=r.scope("scope"),
        smtp_scope=r.scope("smtp_scope"),
        pop_scope=r.scope("pop_scope"),
        ca_file=r.optional_text("ca_file"),
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
    )


# -- validate and merge ---------------------------------------------------------------------------


def document_problems(
    doc: ConfigDocument,
    *,
    known_providers: Mapping[str, Provider] | None = None,
    require_secrets: bool = True,
) -> tuple[FieldProblem, ...]:
    """Every rule the document breaks, fields named by their path in the document."""
    lookup = {**(known_providers or {}), **{p.name: p for p in doc.providers}}
    return (
        *_duplicate_problems(doc),
        *_item_problems(doc, lookup, require_secrets=require_secrets),
    )


def validate_document(
    doc: ConfigDocument,
    *,
    known_providers: Mapping[str, Provider] | None = None,
    require_secrets: bool = True,
) -> None:
    """Raise `ValidationError` with every problem of `doc` (see `document_problems`)."""
    problems = document_problems(
        doc, known_providers=known_providers, require_secrets=require_secrets
    )
    _raise_if(problems, subject=SUBJECT)


def merge_secrets(new: ConfigDocument, old: ConfigDocument) -> ConfigDocument:
    """`new`, with each secret it omits taken from the item of the same name in `old`.

    A secret is kept only while it would still go where it went: a client secret to the same
    client at the same provider endpoints, a password to the same server and account under a
    password method. Pointing an item elsewhere must not carry the old secret along.
    """
    old_providers = {p.name: p for p in old.providers}
    old_pops = {p.name: p for p in old.pop}
    return ConfigDocument(
        providers=tuple(_keep_client_secret(p, old_providers.get(p.name)) for p in new.providers),
        smtp=None if new.smtp is None else _keep_password(new.smtp, old.smtp),
        pop=tuple(_keep_password(p, old_pops.get(p.name)) for p in new.pop),
    )


def _keep_client_secret(new: Provider, old: Provider | None) -> Provider:
    if new.client_secret is not None or old is None or old.client_secret is None:
        return new
    if _secret_destination(new) != _secret_destination(old):
        return new
    return replace(new, client_secret=old.client_secret)


def _secret_destination(p: Provider) -> tuple[str | None, ...]:
    # Everything that decides which server receives the client secret (RFC 6749 §2.3.1,
    # RFC 8628 §3.1, RFC 7009 §2.1 all authenticate the client).
    return (
        p.preset,
        p.client_id,
        p.tenant,
        p.issuer,
        p.token_endpoint,
        p.device_authorization_endpoint,
        p.revocation_endpoint,
    )


_MailT = TypeVar("_MailT", SmtpSetting, PopSetting)


def _keep_password(new: _MailT, old: _MailT | None) -> _MailT:
    if new.password is not None or old is None or old.password is None:
        return new
    if new.auth not in (AuthMethod.PASSWORD, AuthMethod.APOP):
        return new
    if (new.server, new.account) != (old.server, old.account):
        return new
    return replace(new, password=old.password)


def _item_problems(
    doc: ConfigDocument, lookup: Mapping[str, Provider], *, require_secrets: bool
) -> Iterator[FieldProblem]:
    for provider in doc.providers:
        found = provider_problems(provider, require_secrets=require_secrets)
        yield from _prefixed(f"providers.{provider.name}", found)
    if doc.smtp is not None:
        yield from _prefixed(
            "smtp", smtp_problems(doc.smtp, lookup, require_secrets=require_secrets)
        )
    for pop in doc.pop:
        found = pop_problems(pop, lookup, require_secrets=require_secrets)
        yield from _prefixed(f"pop.{pop.name}", found)


def _prefixed(prefix: str, problems: Iterable[FieldProblem]) -> Iterator[FieldProblem]:
    return (FieldProblem(f"{prefix}.{p.field}", p.rule) for p in problems)


def _duplicate_problems(doc: ConfigDocument) -> Iterator[FieldProblem]:
    for group, names in (
        ("providers", [p.name for p in doc.providers]),
        ("pop", [p.name for p in doc.pop]),
    ):
        for name in sorted({n for n in names if names.count(n) > 1}):
            yield FieldProblem(f"{group}.{name}", "duplicate name")


def _raise_if(problems: Iterable[FieldProblem], *, subject: str) -> None:
    found = tuple(problems)
    if found:
        raise ValidationError(found, subject=subject)
