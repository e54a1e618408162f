"""Language choice, catalogs, and a check that no msgid in the code ships untranslated."""

from __future__ import annotations

import collections
import gettext
import re
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import tokenpost
from tokenpost.errors import OperationError, UsageError
from tokenpost.i18n import (
    LOCALE_DIR,
    SUPPORTED,
    language_of_locale,
    load_translations,
    resolve_language,
    state_label,
    translator,
)
from tokenpost.text import N_
from tokenpost.tokens.state_id import StateId

PACKAGE_DIR = Path(tokenpost.__file__).parent
GERMAN_PO = LOCALE_DIR / "de" / "LC_MESSAGES" / "tokenpost.po"
# `_ = t.gettext; _("...")`, `t.gettext("...")`, `N_("...")` and plural `ngettext`.
KEYWORDS = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2)}

# The CLI's strings, added to the catalog ahead of the code that will use them.
CLI_STRINGS = {
    "Setting": "Einstellung",
    "State": "Status",
    "Account": "Konto",
    "Provider": "Anbieter",
    "Expires": "Läuft ab",
    "Reason": "Grund",
    "Delete the token of {setting}?": "Token von {setting} löschen?",
    "Open {uri} and enter the code {code}": "Öffnen Sie {uri} und geben Sie den Code {code} ein",
    "Waiting for authorization… {remaining} left": "Warten auf Autorisierung… noch {remaining}",
    "Open this address in a browser: {url}": "Öffnen Sie diese Adresse in einem Browser: {url}",
    "Authorization ended: {reason}": "Autorisierung beendet: {reason}",
    "Authorization cancelled.": "Autorisierung abgebrochen.",
}


def german_catalog() -> Catalog:
    with GERMAN_PO.open("rb") as po:
        return read_po(po)


def code_msgids() -> set[str | tuple[str, ...]]:
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        PACKAGE_DIR, method_map=[("**.py", "python")], keywords=KEYWORDS
    ):
        # Calls with a variable instead of a literal (`t.gettext(label)`) extract as None.
        if isinstance(message, str):
            found.add(message)
        elif all(isinstance(part, str) for part in message):
            found.add(tuple(message))
    return found


@pytest.mark.parametrize(
    ("state_id", "lang", "label"),
    [
        (StateId.NOT_ACQUIRED, "en", "Not acquired"),
        (StateId.WAITING_FOR_AUTHORIZATION, "en", "Waiting for authorization"),
        (StateId.ACQUIRED, "en", "Acquired"),
        (StateId.INVALID, "en", "Invalid"),
        (StateId.NOT_ACQUIRED, "de", "Nicht abgerufen"),
        (StateId.WAITING_FOR_AUTHORIZATION, "de", "Warten auf Autorisierung"),
        (StateId.ACQUIRED, "de", "Abgerufen"),
        (StateId.INVALID, "de", "Ungültig"),
    ],
)
def test_state_label(state_id: StateId, lang: str, label: str) -> None:
    assert state_label(state_id, lang) == label
    assert state_label(state_id.value, lang) == label


def test_state_label_refuses_unknown_states_and_languages() -> None:
    with pytest.raises(ValueError, match="'expired'"):
        state_label("expired", "en")
    with pytest.raises(UsageError):
        state_label(StateId.ACQUIRED, "fr")


def test_supported_languages() -> None:
    assert SUPPORTED == ("en", "de")


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (None, {}, "en"),
        ("de", {}, "de"),
        ("en", {"TOKENPOST_LANG": "de", "LC_ALL": "de_DE.UTF-8"}, "en"),
        (" DE ", {}, "de"),
        (None, {"TOKENPOST_LANG": "de"}, "de"),
        (None, {"TOKENPOST_LANG": "de_AT.UTF-8"}, "de"),
        (None, {"TOKENPOST_LANG": "de", "LC_ALL": "en_US.UTF-8"}, "de"),
        (None, {"TOKENPOST_LANG": "fr"}, "en"),
        (None, {"TOKENPOST_LANG": "", "LANG": "de_DE.UTF-8"}, "de"),
        (None, {"LANG": "de_DE.UTF-8"}, "de"),
        (None, {"LANG": "de_CH"}, "de"),
        (None, {"LANG": "de_DE@euro"}, "de"),
        (None, {"LC_MESSAGES": "de_DE.UTF-8", "LANG": "en_GB.UTF-8"}, "de"),
        (None, {"LC_ALL": "de_DE.UTF-8", "LC_MESSAGES": "en_US.UTF-8"}, "de"),
        (None, {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "de_DE.UTF-8"}, "de"),
        # POSIX: the first variable set decides, even when it names no supported language.
        (None, {"LC_ALL": "C", "LANG": "de_DE.UTF-8"}, "en"),
        (None, {"LC_ALL": "fr_FR.UTF-8", "LANG": "de_DE.UTF-8"}, "en"),
        (None, {"LANG": "POSIX"}, "en"),
        (None, {"LANG": "C.UTF-8"}, "en"),
        (None, {"LANGUAGE": "de"}, "en"),
    ],
)
def test_resolve_language(flag: str | None, environ: dict[str, str], expected: str) -> None:
    assert resolve_language(flag, environ) == expected


@pytest.mark.parametrize("flag", ["fr", "", "deutsch", "de_DE"])
def test_bad_lang_flag_is_a_usage_error_naming_the_supported_ones(flag: str) -> None:
    with pytest.raises(UsageError, match="en, de") as caught:
        resolve_language(flag, {"LANG": "de_DE.UTF-8"})
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("locale_name", "language"),
    [
        ("de_DE.UTF-8", "de"),
        ("de_DE.UTF-8@euro", "de"),
        ("de-AT", "de"),
        ("EN_us", "en"),
        ("de", "de"),
        ("C", "c"),
        ("", ""),
    ],
)
def test_language_of_locale(locale_name: str, language: str) -> None:
    assert language_of_locale(locale_name) == language


def test_english_is_the_source_language() -> None:
    english = translator("en")
    assert type(english) is gettext.NullTranslations
    assert english.gettext("Acquired") == "Acquired"


def test_german_translator_is_loaded_once() -> None:
    assert translator("de") is translator("de")
    assert translator("de").gettext("Acquired") == "Abgerufen"
    assert translator("de").gettext("a string nobody translated") == "a string nobody translated"


def test_unsupported_language_is_refused() -> None:
    with pytest.raises(UsageError, match="'fr'"):
        translator("fr")


def test_missing_catalog_is_reported_not_silently_english(tmp_path: Path) -> None:
    with pytest.raises(OperationError, match="de message catalog is missing"):
        load_translations("de", tmp_path)
    assert load_translations("en", tmp_path).gettext("Invalid") == "Invalid"


def test_n_marks_without_translating() -> None:
    assert N_("Acquired") == "Acquired"


def test_compiled_catalog_matches_the_po() -> None:
    # Fails when the .po was edited but not recompiled: run scripts/bootstrap.
    german = translator("de")
    messages = [message for message in german_catalog() if message.id]
    assert messages
    for message in messages:
        if isinstance(message.id, tuple):  # a plural: msgstr[0] for one, msgstr[1] for more
            assert isinstance(message.string, tuple)
            assert german.ngettext(*message.id, 1) == message.string[0]
            assert german.ngettext(*message.id, 2) == message.string[1]
        else:
            assert german.gettext(message.id) == message.string


def test_po_entries_are_complete_and_keep_their_placeholders() -> None:
    for message in german_catalog():
        if not message.id:
            continue
        assert message.string, f"untranslated: {message.id!r}"
        assert not message.fuzzy, f"fuzzy: {message.id!r}"
        assert placeholders(message.string) == placeholders(message.id), message.id


def placeholders(text: object) -> set[str]:
    parts = text if isinstance(text, tuple) else (text,)
    return {
        field
        for part in parts
        for _literal, field, _spec, _conversion in string.Formatter().parse(str(part))
        if field is not None
    }


def test_cli_strings_are_translated() -> None:
    german = translator("de")
    for english, expected in CLI_STRINGS.items():
        assert german.gettext(english) == expected


def test_extraction_finds_the_marked_strings() -> None:
    # Guards the next test against passing vacuously: these are marked with N_ in i18n.py.
    assert {"Not acquired", "Invalid", "Waiting for authorization"} <= code_msgids()


def test_every_msgid_in_the_code_has_a_german_translation() -> None:
    catalog = german_catalog()
    missing = []
    for msgid in sorted(code_msgids(), key=str):
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        entry = catalog.get(key)
        translations = entry.string if entry is not None else ""
        parts = translations if isinstance(translations, tuple) else (translations,)
        if entry is None or entry.fuzzy or not all(parts):
            missing.append(msgid)
    assert not missing, f"add German translations to {GERMAN_PO}: {missing}"


def test_no_msgid_is_in_the_po_twice() -> None:
    # The catalog merges as a union of lines (.gitattributes): two branches adding the same
    # msgid would leave two entries, and a reader would silently keep only one of them.
    text = GERMAN_PO.read_text(encoding="utf-8")
    entries = re.findall(r'^msgid ((?:".*"\n)+)', text, flags=re.MULTILINE)
    twice = sorted(entry for entry, count in collections.Counter(entries).items() if count > 1)
    assert not twice, f"msgids in {GERMAN_PO} more than once: {twice}"
