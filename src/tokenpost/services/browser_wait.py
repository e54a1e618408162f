"""Waiting for the browser to come back in the authorization-code flow (RFC 6749 §4.1, RFC 8252).

Whichever comes first ends the wait:

- the browser follows the provider's redirect to the loopback listener (`ports.RedirectListener`);
- the administrator pastes the address the browser ended on (`ports.LineSource`): a browser on
  another device follows the redirect to ``http://localhost:PORT/…?code=…``, which cannot load
  there, and its address bar still shows it;
- the code expires (`AuthorizationEndedError`, ``expired_token``).

When nothing reaches the listener, the provider has most likely refused the redirect URI (it is
not registered exactly) and shows its own error page, which tokenpost never sees. So after
`hint_after` seconds, and again `HINT_BEFORE_EXPIRY_S` before the code expires, a `RedirectHint`
names the redirect URI to register and where each portal takes it — unless a request reached the
listener meanwhile.

A redirect to the listener that does not check out (state, iss) ends the flow: the listener takes
one redirect. A pasted address that does not check out (another address, state, iss, no code) is
reported through `on_refused` and waiting goes on; a pasted `error` (access_denied) ends the flow.
The pasted text is never logged or shown: it may hold the code and the state.

Mix-up defence (RFC 9700 §4.4): the redirect path is the one the administrator registered, the
same for every provider, so a path per provider is no longer available to tell them apart; the
per-flow `state` (CSRF) and the `iss` check (RFC 9207) in `oauth.authcode` do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from tokenpost.clock import Clock
from tokenpost.errors import (
    AuthorizationEndedError,
    RemoteProtocolError,
    TokenpostError,
    UsageError,
)
from tokenpost.oauth import authcode
from tokenpost.oauth.pending import BrowserPending
from tokenpost.ports import LineSource, RedirectListener
from tokenpost.secret import Secret
from tokenpost.settings.model import Preset
from tokenpost.text import Text

HINT_AFTER_S: Final = 60.0
"""Seconds without any request to the listener before the first hint."""
HINT_BEFORE_EXPIRY_S: Final = 120.0
"""The second hint comes this long before the code expires."""


@dataclass(frozen=True, slots=True)
class RedirectHint:
    """Nothing came back yet: `registered` is the redirect URI the provider must have registered
    exactly, `redirect_uri` the one sent (with its port), `text` says where to register it."""

    registered: str
    redirect_uri: str
    expires_at: float
    text: Text


def _ignore_hint(hint: RedirectHint) -> None:
    del hint


def _ignore_refusal(error: TokenpostError) -> None:
    del error


@dataclass(frozen=True, slots=True)
class BrowserHooks:
    """What the caller of a browser flow offers besides the listener: lines pasted on its
    terminal (None: nobody can paste), and where hints and refused pastes are shown."""

    pasted: LineSource | None = None
    on_hint: Callable[[RedirectHint], None] = _ignore_hint
    on_refused: Callable[[TokenpostError], None] = _ignore_refusal


NO_BROWSER_HOOKS: Final = BrowserHooks()


def redirect_hint_text(
    preset: Preset, registered: str, redirect_uri: str, *, can_paste: bool
) -> Text:
    """The hint for a flow that hears nothing back: the redirect URI to register, where the
    preset's portal takes it, what a provider's error page means, and pasting if possible."""
    portal = {
        Preset.MICROSOFT: Text(
            "At Microsoft: in the Entra admin center, under App registrations, the app,"
            ' Authentication, add the platform "Mobile and desktop applications" with the'
            " redirect URI {uri}.",
            uri=registered,
        ),
        Preset.GOOGLE: Text(
            'At Google: an OAuth client of the type "Desktop app" needs no registered redirect'
            " URI; a client of another type refuses it: create a Desktop app client and use its"
            " client ID."
        ),
        Preset.GENERIC: Text(
            "Register it in the provider's settings of the client (often called redirect URI,"
            " callback URL or reply URL)."
        ),
    }[preset]
    hint = Text(
        "No answer from the browser yet. The provider sends the browser back only to a redirect"
        " URI registered for the client, here {uri} exactly. {portal} An error page at the"
        " provider about the redirect URI means that it is not registered.",
        uri=registered,
        portal=portal,
    )
    if not can_paste:
        return hint
    paste = Text(
        "If the browser runs on another device, copy the address it ended on (it starts with"
        " {redirect_uri}) from its address bar and paste it here.",
        redirect_uri=redirect_uri,
    )
    return Text("{hint} {paste}", hint=hint, paste=paste)


@dataclass
class RedirectWait:
    """One wait for the code of `pending`; `code()` runs it."""

    pending: BrowserPending
    listener: RedirectListener
    clock: Clock
    hooks: BrowserHooks
    hint: RedirectHint
    hint_after: float = HINT_AFTER_S

    @classmethod
    def start(
        cls,
        pending: BrowserPending,
        listener: RedirectListener,
        clock: Clock,
        hooks: BrowserHooks,
        *,
        preset: Preset,
        registered: str,
        hint_after: float = HINT_AFTER_S,
    ) -> RedirectWait:
        """The wait for a flow just started, its hint made for the provider's `preset` and the
        `registered` redirect URI."""
        text = redirect_hint_text(
            preset, registered, listener.redirect_uri, can_paste=hooks.pasted is not None
        )
        hint = RedirectHint(registered, listener.redirect_uri, pending.expires_at, text)
        return cls(pending, listener, clock, hooks, hint, hint_after)

    async def code(self) -> Secret:
        """The authorization code, from the listener or a pasted address.

        Raises:
            AuthorizationEndedError: the code expired, or the provider redirected with an error.
            RemoteProtocolError: the redirect to the listener did not check out.
        """
        hints = self._hint_times()
        redirect = asyncio.ensure_future(self.listener.wait_for_redirect())
        line = self._next_line()
        try:
            while True:
                now = self.clock.now()
                if now >= self.pending.expires_at:
                    raise AuthorizationEndedError(
                        "the authorization expired before the browser came back",
                        error="expired_token",
                    )
                await self._first_of(redirect, line, min([self.pending.expires_at, *hints[:1]]))
                if redirect.done():
                    return authcode.parse_redirect(self.pending, redirect.result())
                if line is not None and line.done():
                    text = line.result()
                    code = self._pasted(text)
                    if code is not None:
                        return code
                    line = None if text is None else self._next_line()
                elif hints and self.clock.now() >= hints[0]:
                    hints.pop(0)
                    if self.listener.requests == 0:
                        self.hooks.on_hint(self.hint)
        finally:
            await _cancel(redirect, line)

    def _hint_times(self) -> list[float]:
        start, end = self.clock.now(), self.pending.expires_at
        first = start + self.hint_after
        times = [first, end - HINT_BEFORE_EXPIRY_S]
        return sorted({t for t in times if start < t < end and t >= first})

    def _next_line(self) -> asyncio.Future[str | None] | None:
        if self.hooks.pasted is None:
            return None
        return asyncio.ensure_future(self.hooks.pasted.next_line())

    async def _first_of(
        self,
        redirect: asyncio.Future[str],
        line: asyncio.Future[str | None] | None,
        wake_at: float,
    ) -> None:
        """Wait until the redirect, a line or `wake_at` comes (on the service's clock)."""
        timer = asyncio.ensure_future(self.clock.sleep(wake_at - self.clock.now()))
        waiting: set[asyncio.Future[Any]] = {redirect, timer}
        if line is not None:
            waiting.add(line)
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel(timer)

    def _pasted(self, text: str | None) -> Secret | None:
        """The code in a pasted address, or None after reporting why it was refused (an empty
        line or the end of input is not reported)."""
        if text is None or not text.strip():
            return None
        try:
            return authcode.parse_pasted_redirect(self.pending, text)
        except (UsageError, RemoteProtocolError) as refused:
            self.hooks.on_refused(refused)
            return None


async def _cancel(*futures: asyncio.Future[Any] | None) -> None:
    """Cancel what is still running and wait for it to end."""
    running = [f for f in futures if f is not None and not f.done()]
    for future in running:
        future.cancel()
    await asyncio.gather(*running, return_exceptions=True)
