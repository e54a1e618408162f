"""The language of a page: the switch kept in the session, else the browser's Accept-Language,
else English."""

from __future__ import annotations

from tokenpost.i18n import DEFAULT, SUPPORTED, language_of_locale


def from_accept_language(header: str | None) -> str | None:
    """The supported language the browser prefers most (RFC 9110 §12.5.4), or None.

    ``de-AT;q=0.9, en;q=0.8`` → ``de``. Entries with q=0 are refused; ``*`` and unsupported
    languages are skipped.
    """
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")[:32]):  # a header is short; a flood is cut
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        lang = language_of_locale(tag)
        if quality > 0 and lang in SUPPORTED:
            ranked.append((-quality, index, lang))
    return min(ranked)[2] if ranked else None


def choose(session_lang: str | None, accept_language: str | None) -> str:
    """The page's language: the session's choice, then Accept-Language, then English."""
    if session_lang is not None and session_lang in SUPPORTED:
        return session_lang
    return from_accept_language(accept_language) or DEFAULT
