"""Translations: gettext catalogs for English and German (domain ``tokenpost``).

English is the source language, so its translator is a `gettext.NullTranslations`; German comes
from ``locale/de/LC_MESSAGES/tokenpost.mo``, compiled from the ``.po`` in git by the build hook
(``hatch_build.py``) at install time.

Convention for code that shows text: ``_ = translator(lang).gettext`` and then ``_("...")``, with
the literal string inside the call, so babel's extractor finds every msgid (the tests check that
the German catalog translates all of them). A msgid that must be written where no language is known
yet (a constant, a table) is marked with `N_` and translated where it is shown.

`state_label` gives the four token state labels: they are a contract (DESIGN.md) and live here,
below `tokenpost.tokens` in the layers, so every entry point can show them.

The process's language is set once, early, by `use_language` (the CLI's `main` does it from
``--lang`` and the environment before click parses anything): `active()` is then its translator,
click's own messages ("Missing option", "Usage:") come from tokenpost's catalog as well (click
looks them up in gettext's global domain, which `use_language` points at this catalog), and help
texts are translated as they are shown (`cli.translated`). Messages made deep inside services are
`text.Text` values, translated where they are shown.

Language choice follows POSIX: the first of ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` that is set and
non-empty is the locale (``de_DE.UTF-8`` → ``de``); ``C`` and ``POSIX`` are English. ``LANGUAGE``
(a GNU priority list) is not consulted.
"""

from __future__ import annotations

import functools
import gettext
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from tokenpost.errors import OperationError, UsageError
from tokenpost.text import translate
from tokenpost.tokens.state_id import LABELS, StateId

__all__ = [
    "DEFAULT",
    "DOMAIN",
    "LOCALE_DIR",
    "SUPPORTED",
    "active",
    "active_language",
    "language_of_locale",
    "load_translations",
    "resolve_language",
    "show",
    "state_label",
    "translator",
    "use_language",
]

DOMAIN: Final = "tokenpost"
SUPPORTED: Final = ("en", "de")
DEFAULT: Final = "en"
LANG_VARIABLE: Final = "TOKENPOST_LANG"
LOCALE_DIR: Final = Path(__file__).parent / "locale"

# POSIX precedence: LC_ALL overrides LC_MESSAGES, which overrides LANG.
_LOCALE_VARIABLES: Final = ("LC_ALL", "LC_MESSAGES", "LANG")


def state_label(state_id: str, lang: str) -> str:
    """The device manual's label of a token state in `lang` ("Acquired", "Abgerufen", …).

    Args:
        state_id: a `tokens.state_id.StateId` (or its value).
        lang: one of `SUPPORTED`.

    Raises:
        ValueError: `state_id` is not one of the four states.
        UsageError: `lang` is not supported.
    """
    try:
        label = LABELS[StateId(state_id)]
    except ValueError:
        raise ValueError(f"unknown token state {state_id!r}") from None
    return translator(lang).gettext(label)


def resolve_language(flag: str | None, environ: Mapping[str, str]) -> str:
    """The language to show text in: one of `SUPPORTED`.

    Args:
        flag: the ``--lang`` option, or None when it was not given.
        environ: the process environment (``TOKENPOST_LANG``, ``LC_ALL``, ``LC_MESSAGES``,
            ``LANG``).

    Returns:
        ``--lang`` if given; else ``TOKENPOST_LANG``; else the language of the POSIX locale; else
        ``"en"``. A language from the environment that tokenpost does not support gives ``"en"``.

    Raises:
        UsageError: ``--lang`` names a language that is not supported.
    """
    if flag is not None:
        lang = flag.strip().lower()
        if lang not in SUPPORTED:
            raise UsageError("--lang must be one of: {languages}", languages=", ".join(SUPPORTED))
        return lang
    if chosen := environ.get(LANG_VARIABLE):
        return _supported_or_default(chosen)
    for name in _LOCALE_VARIABLES:
        if value := environ.get(name):
            return _supported_or_default(value)
    return DEFAULT


def _supported_or_default(locale_name: str) -> str:
    lang = language_of_locale(locale_name)
    return lang if lang in SUPPORTED else DEFAULT


def language_of_locale(locale_name: str) -> str:
    """The language part of a locale name, lower case: ``de_DE.UTF-8@euro`` → ``de``.

    BCP 47 tags (``de-AT``) are accepted too. ``C`` and ``POSIX`` give ``c`` and ``posix``.
    """
    for separator in (".", "@", "_", "-"):
        locale_name = locale_name.split(separator, 1)[0]
    return locale_name.strip().lower()


@functools.cache
def translator(lang: str) -> gettext.NullTranslations:
    """The translations for `lang` from the installed catalogs, loaded once per process.

    Raises:
        UsageError: `lang` is not one of `SUPPORTED`.
        OperationError: the compiled catalog is missing (tokenpost was not installed properly).
    """
    return load_translations(lang, LOCALE_DIR)


def load_translations(lang: str, localedir: Path) -> gettext.NullTranslations:
    """The translations for `lang` from the catalogs under `localedir`, read now (not cached).

    Raises:
        UsageError: `lang` is not one of `SUPPORTED`.
        OperationError: `localedir` has no compiled catalog for `lang`.
    """
    if lang not in SUPPORTED:
        raise UsageError(
            "language {lang!r} is not supported; use one of: {languages}",
            lang=lang,
            languages=", ".join(SUPPORTED),
        )
    if lang == DEFAULT:
        return gettext.NullTranslations()
    try:
        return gettext.translation(DOMAIN, localedir=localedir, languages=[lang])
    except FileNotFoundError:
        # Falling back to English here would ship untranslated pages without anyone noticing.
        raise OperationError(
            "the {lang} message catalog is missing under {directory}; reinstall tokenpost",
            lang=lang,
            directory=str(localedir),
        ) from None


_active: list[str] = [DEFAULT]


def use_language(lang: str) -> gettext.NullTranslations:
    """Make `lang` the language of this process: `active()`, and click's own messages.

    Click translates through the stdlib's global gettext domain with the language from the
    environment, so this binds that domain to tokenpost's catalog and sets ``LANGUAGE`` (the GNU
    variable gettext consults first) to `lang`. Commands tokenpost starts inherit it.

    Raises:
        UsageError: `lang` is not supported. OperationError: its catalog is missing.
    """
    translations = translator(lang)
    _active[0] = lang
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = lang
    return translations


def active_language() -> str:
    """The language set by `use_language` (English until then)."""
    return _active[0]


def active() -> gettext.NullTranslations:
    """The translator of the language set by `use_language` (English until then)."""
    return translator(_active[0])


def show(value: object, lang: str | None = None) -> str:
    """A message-like value (`Text`, TokenpostError, FieldProblem, str) in `lang`, by default
    the active language. A plain string is shown as it is (it is data, or already translated)."""
    return translate(value, translator(lang or _active[0]).gettext)
