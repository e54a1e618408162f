"""What the web page is told when it is built: everything `create_app` needs that is not a
service of `wiring.App`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from tokenpost.settings.model import PopSetting
from tokenpost.web.throttle import LockoutPolicy

SESSION_IDLE_S: Final = 1800.0


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Settings of one web page.

    Attributes:
        secure_cookies: mark the session cookie Secure. `serve` serves HTTPS or loopback only,
            where browsers keep Secure cookies, so it is always on there.
        session_idle_s: a session unused this long ends (the next request goes to the login).
        lockout: when repeated failed logins lock an account or a client address.
        next_check: when a POP setting is checked next (the running daemon's receiver), or
            None where no daemon runs beside the page.
        allow_plaintext: the connection test allows security none for a mail server on
            loopback (`serve --allow-plaintext`).
    """

    secure_cookies: bool = True
    session_idle_s: float = SESSION_IDLE_S
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    next_check: Callable[[PopSetting], float] | None = None
    allow_plaintext: bool = False
