"""Settings as a TOML document, for version control: export, parse, and keep stored secrets.

The document has the tables ``[providers.<name>]``, ``[smtp]``, ``[pop.<name>]`` and ``[alerts]``;
keys are the CLI options with ``_`` for ``-``. We write TOML v1.0.0 ourselves (basic strings,
§"String"; quoted keys, §"Keys") here; `toml_read` reads it with the stdlib `tomllib`. Secrets are
left out unless asked for, so export → edit → `parse_toml` → `merge_secrets` → `validate_document`
keeps stored passwords.

Every problem of a document is reported at once, its field named by its path in the document
("smtp.port", "providers.m365.client_id", "pop.fax.check_interval"); see `settings.document`.
The comments at the top are written in the language of the `gettext` given to `export_toml`;
keys and values are the same in every language.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import fields
from typing import Final

from tokenpost.errors import FieldProblem, ValidationError
from tokenpost.secret import Secret
from tokenpost.settings.document import (
    SUBJECT,
    ConfigDocument,
    document_problems,
    duplicate_problems,
    merge_secrets,
    raise_if,
    validate_document,
)
from tokenpost.settings.model import AlertSettings, PopSetting, Provider, SmtpSetting
from tokenpost.settings.toml_read import parse_toml
from tokenpost.text import N_, Gettext

__all__ = [
    "SUBJECT",
    "ConfigDocument",
    "document_problems",
    "export_toml",
    "merge_secrets",
    "parse_toml",
    "validate_document",
]

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
# TOML's short escapes; every other character that needs one gets \uXXXX.
_ESCAPES: Final = {ch: "\\" + e for ch, e in zip('"\\\b\t\n\f\r', '"\\btnfr', strict=True)}
# Control, format (bidi overrides, zero-width) and line/paragraph separators are written as \u
# escapes so a reviewer sees every character that is there.
_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})
# Comment lines, each a msgid (without the "# "), translated when written.
_HEADER: Final = (
    N_("tokenpost settings: providers, the SMTP setting, the POP settings and alerts."),
    N_("Keys are the command-line options with '_' for '-'; durations are in seconds."),
)
_NO_SECRETS: Final = (
    N_("Secrets (client_secret, password) are left out; importing keeps the stored ones."),
)
_SECRETS_WARNING: Final = (
    N_("WARNING: this file contains secrets (client_secret, password) in clear text."),
    N_("Keep it out of shared version control and readable by administrators only."),
)

# -- export ---------------------------------------------------------------------------------------


def _english(message: str) -> str:
    return message


def export_toml(
    doc: ConfigDocument, *, include_secrets: bool = False, gettext: Gettext = _english
) -> str:
    """The document as TOML: items sorted by name, keys in model order, a header comment in the
    language of `gettext` (English by default).

    The same document always gives the same text. Secrets are written only with
    `include_secrets`, and then the header says so.

    Raises:
        ValidationError: two items share a name, or a string is not valid Unicode (a lone
            surrogate from an undecodable path): TOML cannot hold either.
    """
    raise_if(duplicate_problems(doc))
    comments = [*_HEADER, *(_SECRETS_WARNING if include_secrets else _NO_SECRETS)]
    lines = [_comment(gettext(line)) for line in comments]
    for provider in sorted(doc.providers, key=lambda p: p.name):
        path = f"providers.{provider.name}"
        lines += ["", f"[providers.{_key(provider.name)}]"]
        lines += _pairs(provider, path, include_secrets=include_secrets)
    if doc.smtp is not None:
        lines += ["", "[smtp]", *_pairs(doc.smtp, "smtp", include_secrets=include_secrets)]
    for pop in sorted(doc.pop, key=lambda p: p.name):
        lines += ["", f"[pop.{_key(pop.name)}]"]
        lines += _pairs(pop, f"pop.{pop.name}", include_secrets=include_secrets)
    if doc.alerts is not None:
        lines += ["", "[alerts]", *_pairs(doc.alerts, "alerts", include_secrets=include_secrets)]
    return "\n".join(lines) + "\n"


def _pairs(
    item: Provider | SmtpSetting | PopSetting | AlertSettings, path: str, *, include_secrets: bool
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
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(_string(v, path) for v in value) + "]"
    raise TypeError(f"{path}: no TOML form for {type(value).__name__}")


def _string(text: str, path: str) -> str:
    """A TOML basic string; every character round-trips through tomllib."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        problem = FieldProblem(path, N_("is not valid Unicode text, so TOML cannot hold it"))
        raise ValidationError([problem], subject=SUBJECT) from None
    return '"' + "".join(_escape(ch) for ch in text) + '"'


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if unicodedata.category(ch) in _ESCAPED_CATEGORIES:
        code = ord(ch)
        return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"
    return ch


def _comment(text: str) -> str:
    """A TOML comment line; a line break in a translation must not end the comment."""
    return "# " + " ".join(text.split())


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _string(name, name)
