"""The status table's rows as HTML, each rendered again only when what it shows has changed.

A row (``partials/status_row.html``) shows its setting's `rows.Row` (already in the page's
language), the token actions the visitor's role allows, and the minutes left before its expiry
(as `components/expiry.html` counts them); nothing else of the visit, no CSRF token and no
account name. So the HTML of one row serves every visit with the same row, role, language and
minute, and a page of 200 settings renders only the rows that changed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Final

import jinja2
from markupsafe import Markup

from tokenpost.web.memo import Memo
from tokenpost.web.rows import Row

ROW_TEMPLATE: Final = "partials/status_row.html"
# Two languages x two roles x a countdown or two per setting, for the settings of a large home.
_LIMIT: Final = 40_000


def install(env: jinja2.Environment) -> None:
    """Give `env`'s templates ``status_rows(rows)``: the HTML of the rows, one after the other;
    each row's kept per environment (one per web page)."""
    memo: Memo[Markup] = Memo(_LIMIT)

    @jinja2.pass_context
    def status_rows(context: jinja2.runtime.Context, rows: Sequence[Row]) -> Markup:
        now: float = context["now"]
        is_admin: bool = context["is_admin"]
        lang: str = context["lang"]
        shared = {"now": now, "is_admin": is_admin, "lang": lang}
        shared["token_actions"] = context["token_actions"]
        html = "".join(
            memo.get(
                (row, is_admin, lang, minutes_left(row.status.expires_at, now)),
                functools.partial(_render, env, row, shared),
            )
            for row in rows
        )
        return Markup(html)  # noqa: S704 - each part is a rendered, autoescaped row

    env.globals["status_rows"] = status_rows


def minutes_left(expires_at: float | None, now: float) -> int | None:
    """What the row's countdown shows: whole minutes left, rounded up; 0 once expired."""
    if expires_at is None:
        return None
    return math.ceil((expires_at - now) / 60) if expires_at > now else 0


def _render(env: jinja2.Environment, row: Row, shared: dict[str, Any]) -> Markup:
    return Markup(env.get_template(ROW_TEMPLATE).render(row=row, **shared))  # noqa: S704 - autoescaped
