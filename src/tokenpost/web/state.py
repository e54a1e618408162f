"""What every request of one web page shares: the services, the sessions, the templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import jinja2

from tokenpost.web.config import WebConfig
from tokenpost.web.memo import Memo
from tokenpost.web.sessions import Sessions
from tokenpost.web.throttle import LoginThrottle

if TYPE_CHECKING:
    from tokenpost.web.rows import Row
    from tokenpost.wiring import App


@dataclass
class WebState:
    """`token_actions` are the templates included in each setting's row of the status page (and
    on its settings page), each with the row's `row` and `is_admin`: the buttons acting on a
    token. [Delete] is one; a router that adds a token action adds its template here."""

    app: App
    config: WebConfig
    sessions: Sessions
    throttle: LoginThrottle
    env: jinja2.Environment
    token_actions: list[str] = field(default_factory=list)
    # What requests derive from the status of every setting (`rows.all_rows`, the API's status),
    # kept under the key it was made from: two languages, two roles, the last few changes.
    kept_rows: Memo[list[Row]] = field(default_factory=lambda: Memo(16))
    kept_json: Memo[bytes] = field(default_factory=lambda: Memo(16))
