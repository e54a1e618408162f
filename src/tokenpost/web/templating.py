"""Jinja2 set-up: the templates shipped in the package, autoescaped, translated per page.

Every word on a page goes through tokenpost's gettext catalog: ``{% trans %}…{% endtrans %}`` or
``_("…")`` in the templates (the i18n test extracts them with babel's Jinja2 extractor and
requires a German translation of each). Placeholders use ``str.format`` braces, as in the rest of
tokenpost: ``_("Delete the token of {setting}?").format(setting=…)`` (the values are escaped).
The language is that of the page being rendered (`render` sets it for the duration of one
render, so concurrent pages in different languages never mix).
"""

from __future__ import annotations

import contextvars
import gettext
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jinja2

from tokenpost.i18n import state_label, translator
from tokenpost.web import row_html

TEMPLATES: Final = Path(__file__).parent / "templates"

_lang: contextvars.ContextVar[str] = contextvars.ContextVar("tokenpost_web_lang", default="en")


def _translations() -> gettext.NullTranslations:
    return translator(_lang.get())


def _gettext(message: str) -> str:
    return _translations().gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return _translations().ngettext(singular, plural, n)


def utc_time(when: float | None) -> str:
    """A time as the CLI shows it: ``2026-12-03 14:05 UTC`` ('' for None)."""
    if when is None:
        return ""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso_time(when: float | None) -> str:
    """A time for the `datetime` attribute of ``<time>`` and for live.js."""
    if when is None:
        return ""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # The templates ship in the package: no stat of the file at every include (the status
        # table includes a row template per setting).
        auto_reload=False,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Not newstyle: "%" in a message stays itself and placeholders are str.format braces.
    env.install_gettext_callables(_gettext, _ngettext, newstyle=False)  # type: ignore[attr-defined]
    env.filters["utc"] = utc_time
    env.filters["iso"] = iso_time
    env.globals["state_label"] = lambda state: state_label(state, _lang.get())
    row_html.install(env)
    return env


def render(env: jinja2.Environment, name: str, lang: str, context: Mapping[str, Any]) -> str:
    """Render template `name` in `lang`."""
    token = _lang.set(lang)
    try:
        return env.get_template(name).render(lang=lang, **context)
    finally:
        _lang.reset(token)
